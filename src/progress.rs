//! Progress a person can read: a bar on a terminal, plain periodic lines in a log file.
//!
//! Slurm writes stderr to a file, where a redrawn bar is noise; there we print one line every
//! [`LOG_INTERVAL`] instead. Either way the text goes to stderr, so `--json` on stdout stays clean.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Time between plain progress lines when stderr is not a terminal: often enough to see a job
/// is alive in `tail -f`, rare enough that a day-long job logs a few thousand lines.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Steps on the bar: progress is given as a fraction of the whole.
const BAR_STEPS: u64 = 1000;

pub struct Progress {
    label: String,
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    /// A bar when stderr is a terminal, plain lines otherwise.
    pub fn new(label: &str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(BAR_STEPS);
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg}")
                    .expect("static template is valid"),
            );
            bar.set_prefix(label.to_string());
            bar
        });
        let now = Instant::now();
        Progress { label: label.to_string(), bar, started: now, last_line: now }
    }

    /// Reports `fraction` (0..=1) of the work done, with a short message such as "1.2M rows".
    pub fn update(&mut self, fraction: f64, message: &str) {
        let fraction = fraction.clamp(0.0, 1.0);
        match &self.bar {
            Some(bar) => {
                bar.set_position((fraction * BAR_STEPS as f64) as u64);
                bar.set_message(message.to_string());
            }
            None if self.last_line.elapsed() >= LOG_INTERVAL => {
                self.last_line = Instant::now();
                eprintln!(
                    "{}: {:5.1}% after {:.0} s, {}",
                    self.label,
                    fraction * 100.0,
                    self.started.elapsed().as_secs_f64(),
                    message
                );
            }
            None => {}
        }
    }

    /// Says which phase the work is in: a line in both modes.
    pub fn phase(&mut self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(format!("{}: {message}", self.label)),
            None => eprintln!("{}: {message}", self.label),
        }
    }

    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `1234567` as `1.2M`, for progress messages.
pub fn human_count(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}
