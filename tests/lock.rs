//! The writer lock with real processes: a second `download`, `prep --force` and an MPI job on a
//! locked folder are refused by name, a stale lock is taken over, readers need no lock.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use distributed_downloader::store::lock::{Holder, OutputLock};
use distributed_downloader::store::paths::lock_file;
use test_origin::{Behaviour, HostSpec, Origin};

use crate::download::{job, records, FAST};
use crate::util::*;

/// Waits for `child` at most `limit`; kills it (and fails) if it is still running then.
fn wait_bounded(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} still ran after {limit:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Records per URL across every committed shard.
fn records_per_url(out: &Path) -> HashMap<String, usize> {
    let (ok, failed) = records(out);
    let mut seen = HashMap::new();
    for u in ok.iter().map(|r| &r.url).chain(failed.iter().map(|r| &r.url)) {
        *seen.entry(u.clone()).or_default() += 1;
    }
    seen
}

/// Every file under `dir` with its bytes: what "untouched" compares.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.insert(p.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    files
}

#[test]
fn a_second_download_on_a_folder_being_downloaded_is_refused_at_once_by_pid() {
    // 60 images at 10 per second: the first download runs for about 6 s.
    let origin =
        Origin::start(vec![HostSpec::loopback(150, Behaviour::Slow { delay: Duration::from_millis(100) })]).unwrap();
    let urls: Vec<String> = (0..60).map(|i| origin.url(0, &format!("/img/w64-h48-{i}.jpg"))).collect();
    let job = job(&urls, 10, &format!("{FAST}INITIAL_RATE_LIMIT=10\nMAX_RATE_LIMIT=10\n"));
    let mut first = job.spawn(Stdio::null());
    let t = Instant::now();
    while !lock_file(&job.out).exists() && t.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(lock_file(&job.out).exists(), "the first download took no lock");

    let t = Instant::now();
    let second = job.download(&[]);
    let took = t.elapsed();
    assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
    assert!(took < Duration::from_secs(10), "refused after {took:?}");
    let message = stderr(&second);
    assert!(message.contains(&format!("is held by pid {} on host", first.id())), "{message}");
    assert!(message.contains("Wait for it to end"), "{message}");
    assert!(first.try_wait().unwrap().is_none(), "the refusal must happen while the first one runs");

    let status = wait_bounded(&mut first, Duration::from_secs(120), "the first download");
    assert!(status.success(), "{status:?}");
    let seen = records_per_url(&job.out);
    for u in &urls {
        assert_eq!(seen.get(u), Some(&1), "{u}: one record");
    }
    assert_eq!(seen.len(), urls.len());
    let log = origin.log(0).without_robots();
    for u in &urls {
        let path = u.strip_prefix(origin.base_url(0)).unwrap();
        assert_eq!(log.count_path(path), 1, "{path} fetched once");
    }
    assert!(!lock_file(&job.out).exists(), "released at the end");
}

#[test]
fn a_lock_left_by_a_dead_process_on_this_host_is_taken_over_and_the_download_completes() {
    let origin = Origin::start(vec![HostSpec::loopback(151, Behaviour::Ok)]).unwrap();
    let urls: Vec<String> = (0..6).map(|i| origin.url(0, &format!("/img/w64-h48-{i}.jpg"))).collect();
    let job = job(&urls, 10, FAST);
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    let mut stale = Holder::me("download");
    stale.pid = pid;
    std::fs::write(lock_file(&job.out), serde_json::to_vec(&stale).unwrap()).unwrap();

    let o = job.download(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let message = stderr(&o);
    assert!(message.contains("took over the lock") && message.contains(&format!("pid {pid} ")), "{message}");
    assert!(message.contains("that process is gone"), "{message}");
    assert_eq!(records_per_url(&job.out).len(), urls.len());
    assert!(!lock_file(&job.out).exists(), "released at the end");
}

#[test]
fn an_mpi_job_on_a_locked_folder_ends_with_the_message_and_no_rank_hangs() {
    let origin = Origin::start(vec![HostSpec::loopback(152, Behaviour::Ok)]).unwrap();
    let urls: Vec<String> = (0..4).map(|i| origin.url(0, &format!("/img/w64-h48-{i}.jpg"))).collect();
    let job = job(&urls, 10, FAST);
    let _held = OutputLock::acquire(&job.out, "test").unwrap();
    let logs = tempdir();
    let (out_log, err_log) = (logs.path().join("stdout"), logs.path().join("stderr"));
    let mut mpi =
        mpirun_cmd(2, &["--config", job.config.to_str().unwrap(), "download", "-o", job.out.to_str().unwrap()])
            .stdout(std::fs::File::create(&out_log).unwrap())
            .stderr(std::fs::File::create(&err_log).unwrap())
            .spawn()
            .expect("mpirun runs (scripts/setup.sh installs openmpi-bin)");
    let status = wait_bounded(&mut mpi, Duration::from_secs(60), "mpirun -n 2 download");
    let message = std::fs::read_to_string(&err_log).unwrap();
    assert!(!status.success(), "{message}");
    assert!(message.contains(&format!("is held by pid {} on host", std::process::id())), "{message}");
    assert!(message.contains("rank 0 could not lock the output folder"), "rank 1 got the refusal: {message}");
    assert!(origin.log(0).is_empty(), "no rank sent a request");
    assert!(records_per_url(&job.out).is_empty(), "nothing was stored");
}

#[test]
fn prep_force_on_a_locked_folder_is_refused_and_changes_nothing() {
    let urls: Vec<String> = (0..4).map(|i| format!("http://127.0.0.153/img/w64-h48-{i}.jpg")).collect();
    let job = job(&urls, 10, FAST);
    let held = OutputLock::acquire(&job.out, "test").unwrap();
    let before = snapshot(&job.out);
    let input = job.out.parent().unwrap().join("other.csv");
    std::fs::write(&input, "url\nhttp://127.0.0.153/img/w64-h48-other.jpg\n").unwrap();
    let cfg = job.config.to_str().unwrap();
    let o = run(&["--config", cfg, "prep", "-i", input.to_str().unwrap(), "-o", job.out.to_str().unwrap(), "--force"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("is held by pid {} on host", std::process::id())), "{}", stderr(&o));
    assert_eq!(snapshot(&job.out), before, "the folder is untouched");
    drop(held);
    run_ok(&["--config", cfg, "prep", "-i", input.to_str().unwrap(), "-o", job.out.to_str().unwrap(), "--force"]);
    assert_eq!(read_urls(&job.out).len(), 1, "once released, prep --force runs");
    assert!(!lock_file(&job.out).exists());
}

#[test]
fn status_reads_a_locked_folder_and_profile_is_refused() {
    let urls: Vec<String> = (0..4).map(|i| format!("http://127.0.0.154/img/w64-h48-{i}.jpg")).collect();
    let job = job(&urls, 10, FAST);
    let _held = OutputLock::acquire(&job.out, "test").unwrap();
    let cfg = job.config.to_str().unwrap();
    let status = run_ok(&["--config", cfg, "status", "-o", job.out.to_str().unwrap(), "--json"]);
    assert!(serde_json::from_str::<serde_json::Value>(&status).is_ok(), "{status}");
    let o = run(&["--config", cfg, "profile", "-o", job.out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains(&format!("is held by pid {}", std::process::id())), "{}", stderr(&o));
}

#[test]
fn job_end_removes_the_lock_its_crashed_job_left_and_keeps_any_other() {
    let urls = vec!["http://127.0.0.155/img/w64-h48-0.jpg".to_string()];
    let job = job(&urls, 10, FAST);
    let mut left = Holder::me("download");
    (left.host, left.slurm_job) = ("crashed-node".into(), Some("9001".into()));
    std::fs::write(lock_file(&job.out), serde_json::to_vec(&left).unwrap()).unwrap();
    let (cfg, out) = (job.config.to_str().unwrap(), job.out.to_str().unwrap());
    let other = run_ok(&["--config", cfg, "job-end", "-o", out, "--job", "9002", "--exit-code", "1"]);
    assert!(lock_file(&job.out).exists(), "job 9002 does not hold it: {other}");
    let o = run_ok(&["--config", cfg, "job-end", "-o", out, "--job", "9001", "--exit-code", "1"]);
    assert!(o.contains("removed the writer lock") && o.contains("crashed-node"), "{o}");
    assert!(!lock_file(&job.out).exists());
}
