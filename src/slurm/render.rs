//! The job scripts: the templates in `slurm/` (compiled into the binary) filled from the config
//! file's `SLURM_*` keys and the paths of this run. Nothing in a rendered script is typed by hand.

use std::path::Path;

use crate::config::SlurmSettings;

const DOWNLOAD_TEMPLATE: &str = include_str!("../../slurm/download.sbatch");
const PREP_TEMPLATE: &str = include_str!("../../slurm/prep.sbatch");

/// Where this job's scripts point: the binary, the config file and the output, all absolute.
#[derive(Debug, Clone)]
pub struct Paths<'a> {
    pub bin: &'a Path,
    pub config: &'a Path,
    pub out: &'a Path,
}

/// The download job's script.
pub fn download_script(s: &SlurmSettings, p: &Paths) -> String {
    let mut lines = common_lines(s);
    lines.push(format!("--nodes={}", s.nodes));
    lines.push(format!("--ntasks-per-node={}", s.tasks_per_node));
    lines.push(format!("--cpus-per-task={}", s.cpus_per_task));
    if let Some(mem) = &s.mem {
        lines.push(format!("--mem={mem}"));
    }
    lines.push(format!("--time={}", s.time));
    fill(DOWNLOAD_TEMPLATE, "dd-download", &lines, p, None)
}

/// The prep job's script: one task on one node.
pub fn prep_script(s: &SlurmSettings, p: &Paths, input: &Path) -> String {
    let mut lines = common_lines(s);
    lines.push("--nodes=1".into());
    lines.push("--ntasks=1".into());
    lines.push(format!("--cpus-per-task={}", s.prep_cpus));
    if let Some(mem) = &s.prep_mem {
        lines.push(format!("--mem={mem}"));
    }
    lines.push(format!("--time={}", s.prep_time));
    fill(PREP_TEMPLATE, "dd-prep", &lines, p, Some(input))
}

fn common_lines(s: &SlurmSettings) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(a) = &s.account {
        lines.push(format!("--account={a}"));
    }
    if let Some(p) = &s.partition {
        lines.push(format!("--partition={p}"));
    }
    if let Some(q) = &s.qos {
        lines.push(format!("--qos={q}"));
    }
    lines.extend(s.extra_args.iter().cloned());
    lines
}

fn fill(template: &str, name: &str, lines: &[String], p: &Paths, input: Option<&Path>) -> String {
    let sbatch: Vec<String> = lines.iter().map(|l| format!("#SBATCH {l}")).collect();
    let mut text = template
        .replace("{{JOB_NAME}}", name)
        .replace("{{SBATCH_LINES}}", &sbatch.join("\n"))
        .replace("{{BIN}}", &shell_quote(&p.bin.to_string_lossy()))
        .replace("{{CONFIG}}", &shell_quote(&p.config.to_string_lossy()))
        .replace("{{OUT}}", &shell_quote(&p.out.to_string_lossy()));
    if let Some(input) = input {
        text = text.replace("{{INPUT}}", &shell_quote(&input.to_string_lossy()));
    }
    text
}

/// `s` as one shell word: bare when it is made of safe characters, else in single quotes.
pub fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawConfig;

    fn settings(lines: &str) -> SlurmSettings {
        let mut raw = RawConfig { origin: "test".into(), ..Default::default() };
        for l in lines.lines().filter(|l| !l.is_empty()) {
            let (k, v) = l.split_once('=').unwrap();
            raw.values.insert(k.into(), v.into());
        }
        raw.validate().unwrap().slurm
    }

    fn paths() -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
        ("/opt/dd/bin/distributed-downloader".into(), "/home/me/job.env".into(), "/scratch/my gbif".into())
    }

    #[test]
    fn the_download_script_asks_for_what_the_config_says() {
        let s = settings(
            "SLURM_ACCOUNT=bio123\nSLURM_PARTITION=cpu\nSLURM_NODES=4\nSLURM_TASKS_PER_NODE=2\nSLURM_CPUS_PER_TASK=16\nSLURM_MEM=64G\nSLURM_TIME=12:00:00\nSLURM_EXTRA_ARGS=--constraint=skylake\n",
        );
        let (bin, config, out) = paths();
        let text = download_script(&s, &Paths { bin: &bin, config: &config, out: &out });
        for line in [
            "#SBATCH --account=bio123",
            "#SBATCH --partition=cpu",
            "#SBATCH --nodes=4",
            "#SBATCH --ntasks-per-node=2",
            "#SBATCH --cpus-per-task=16",
            "#SBATCH --mem=64G",
            "#SBATCH --time=12:00:00",
            "#SBATCH --constraint=skylake",
            "BIN=/opt/dd/bin/distributed-downloader",
            "CONFIG=/home/me/job.env",
            "OUT='/scratch/my gbif'",
            "srun --mpi=pmix --cpu-bind=none",
        ] {
            assert!(text.lines().any(|l| l.starts_with(line)), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("--qos"), "an unset key writes no line:\n{text}");
        assert!(!text.contains("{{"), "every placeholder is filled:\n{text}");
    }

    #[test]
    fn the_prep_script_runs_prep_on_one_task_with_the_input_quoted() {
        let s = settings("SLURM_PREP_MEM=32G\nSLURM_PREP_TIME=2:00:00\n");
        let (bin, config, out) = paths();
        let input = std::path::PathBuf::from("/data/it's multimedia.txt");
        let text = prep_script(&s, &Paths { bin: &bin, config: &config, out: &out }, &input);
        assert!(text.contains("#SBATCH --ntasks=1") && text.contains("#SBATCH --mem=32G"), "{text}");
        assert!(text.contains("#SBATCH --time=2:00:00"), "{text}");
        assert!(text.contains(r"prep --input '/data/it'\''s multimedia.txt'"), "{text}");
        assert!(!text.contains("{{"), "{text}");
    }

    #[test]
    fn shell_quoting_keeps_every_path_one_word() {
        assert_eq!(shell_quote("/a/b-c_d.e"), "/a/b-c_d.e");
        assert_eq!(shell_quote("/a b"), "'/a b'");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(shell_quote(""), "''");
    }
}
