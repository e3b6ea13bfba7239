//! Tests of `lock`: refusals, release, stale locks taken over, races, Slurm jobs, MPI.

use super::*;
use std::cell::RefCell;

thread_local! {
    /// Runs once between a take-over's re-read of the stale lock and its removal: a test
    /// puts a second newcomer there, the interleaving a take-over must survive.
    static BEFORE_REMOVE: RefCell<Option<Box<dyn FnOnce()>>> = RefCell::new(None);
}

pub(super) fn before_remove() {
    if let Some(f) = BEFORE_REMOVE.with(|h| h.borrow_mut().take()) {
        f();
    }
}

/// A lock file in `out` as another process would have left it.
fn plant(out: &Path, edit: impl FnOnce(&mut Holder)) -> Holder {
    let mut h = Holder::me("download");
    edit(&mut h);
    fs::write(lock_file(out), serde_json::to_vec(&h).unwrap()).unwrap();
    h
}

fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

fn on_file(out: &Path) -> Holder {
    serde_json::from_slice(&fs::read(lock_file(out)).unwrap()).unwrap()
}

#[test]
fn a_second_writer_is_refused_by_the_holders_pid_and_host_and_told_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let first = OutputLock::acquire(dir.path(), "download").unwrap();
    let err = OutputLock::acquire(dir.path(), "prep").unwrap_err();
    assert!(matches!(err, LockError::Held { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&format!("pid {} on host {}", std::process::id(), host_name())), "{msg}");
    assert!(msg.contains("Wait for it to end") && msg.contains(&format!("kill {}", std::process::id())), "{msg}");
    assert_eq!(on_file(dir.path()).token, first.holder().token, "the refused one changed nothing");
}

#[test]
fn dropping_the_lock_releases_it_for_the_next_writer() {
    let dir = tempfile::tempdir().unwrap();
    let lock = OutputLock::acquire(dir.path(), "download").unwrap();
    let held = on_file(dir.path());
    assert_eq!((held.pid, held.command.as_str()), (std::process::id(), "download"));
    assert!(held.pid_start.is_some() && held.started.ends_with('Z'), "{held:?}");
    drop(lock);
    assert!(names(dir.path()).is_empty());
    OutputLock::acquire(dir.path(), "download").unwrap();
}

#[test]
fn a_lock_replaced_by_hand_is_not_removed_by_the_old_guard() {
    let dir = tempfile::tempdir().unwrap();
    let lock = OutputLock::acquire(dir.path(), "download").unwrap();
    let other = plant(dir.path(), |h| h.host = "elsewhere".into());
    drop(lock);
    assert_eq!(on_file(dir.path()), other);
}

#[test]
fn a_lock_of_a_dead_process_on_this_host_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let pid = dead_pid();
    plant(dir.path(), |h| h.pid = pid);
    let lock = OutputLock::acquire(dir.path(), "download").unwrap();
    assert_eq!(on_file(dir.path()).token, lock.holder().token);
    assert_eq!(names(dir.path()), ["writer.lock"], "no marker is left behind");
}

#[test]
fn a_live_pid_with_another_start_time_is_a_reused_pid_and_its_lock_is_stale() {
    let dir = tempfile::tempdir().unwrap();
    plant(dir.path(), |h| h.pid_start = h.pid_start.map(|s| s + 1));
    let lock = OutputLock::acquire(dir.path(), "download").unwrap();
    assert_eq!(on_file(dir.path()).token, lock.holder().token);
}

#[test]
fn a_lock_from_another_host_is_refused_with_how_to_clear_it() {
    let dir = tempfile::tempdir().unwrap();
    let planted = plant(dir.path(), |h| {
        h.host = "node-17.cluster".into();
        h.pid = dead_pid(); // dead here, which says nothing about node-17
        h.slurm_job = Some("4242".into());
    });
    let err = OutputLock::acquire(dir.path(), "download").unwrap_err();
    assert!(matches!(err, LockError::HeldElsewhere { .. }), "{err}");
    let msg = err.to_string();
    let path = lock_file(dir.path()).display().to_string();
    assert!(msg.contains("node-17.cluster") && msg.contains("squeue -j 4242"), "{msg}");
    assert!(msg.contains(&format!("ps -p {}", planted.pid)), "{msg}");
    assert!(msg.contains(&format!("remove the file {path}")), "{msg}");
    assert_eq!(on_file(dir.path()), planted, "kept");
}

#[test]
fn of_many_newcomers_racing_for_one_stale_lock_exactly_one_gets_it() {
    for _ in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let pid = dead_pid();
        plant(dir.path(), |h| h.pid = pid);
        let start = std::sync::Barrier::new(8);
        let results: Vec<Result<OutputLock, LockError>> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..8)
                .map(|i| {
                    let (out, start) = (dir.path(), &start);
                    s.spawn(move || {
                        start.wait();
                        OutputLock::acquire(out, &format!("t{i}"))
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let winners: Vec<&OutputLock> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "{:?}", results.iter().map(|r| r.as_ref().map(|_| ())).collect::<Vec<_>>());
        assert_eq!(on_file(dir.path()).token, winners[0].holder().token);
        for err in results.iter().filter_map(|r| r.as_ref().err()) {
            assert!(matches!(err, LockError::Held { .. }), "{err}");
        }
        drop(results);
        assert!(names(dir.path()).is_empty(), "the winner released it and no marker is left");
    }
}

#[test]
fn a_newcomer_that_comes_in_the_middle_of_a_take_over_does_not_get_the_lock_too() {
    let dir = tempfile::tempdir().unwrap();
    let pid = dead_pid();
    plant(dir.path(), |h| h.pid = pid);
    let late: std::rc::Rc<RefCell<Option<Result<OutputLock, LockError>>>> = Default::default();
    let (out, slot) = (dir.path().to_path_buf(), late.clone());
    BEFORE_REMOVE.with(|h| {
        *h.borrow_mut() = Some(Box::new(move || *slot.borrow_mut() = Some(OutputLock::acquire(&out, "late"))))
    });
    let first = OutputLock::acquire(dir.path(), "first").unwrap();
    let late = late.borrow_mut().take().expect("the late newcomer ran");
    let err = late.unwrap_err();
    assert!(matches!(err, LockError::TakeoverStuck { .. }) && err.to_string().contains(".takeover-"), "{err}");
    assert_eq!(on_file(dir.path()).token, first.holder().token);
    assert_eq!(names(dir.path()), ["writer.lock"]);
}

#[test]
fn job_end_releases_only_the_lock_of_its_own_slurm_job() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(release_for_job(dir.path(), "77").unwrap(), JobRelease::NotLocked);
    let planted = plant(dir.path(), |h| {
        h.host = "crashed-node".into();
        h.slurm_job = Some("77".into());
    });
    assert_eq!(release_for_job(dir.path(), "78").unwrap(), JobRelease::OtherHolder(Box::new(planted.clone())));
    assert_eq!(on_file(dir.path()), planted, "another job's lock is kept");
    plant(dir.path(), |h| h.slurm_job = None);
    assert!(matches!(release_for_job(dir.path(), "77").unwrap(), JobRelease::OtherHolder(_)));
    fs::write(lock_file(dir.path()), serde_json::to_vec(&planted).unwrap()).unwrap();
    assert_eq!(release_for_job(dir.path(), "77").unwrap(), JobRelease::Released(Box::new(planted)));
    assert!(names(dir.path()).is_empty());
}

#[test]
fn when_rank_0_is_refused_every_rank_gets_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let _held = OutputLock::acquire(dir.path(), "download").unwrap();
    let sent = std::cell::RefCell::new(Vec::new());
    let root = acquire_on_root(true, dir.path(), "download", |b| {
        *sent.borrow_mut() = b.clone();
        b
    });
    assert!(matches!(root, Err(LockError::Held { .. })));
    let other = acquire_on_root(false, dir.path(), "download", |_| sent.borrow().clone()).unwrap_err();
    let msg = other.to_string();
    assert!(msg.starts_with("rank 0 could not lock") && msg.contains(&format!("pid {}", std::process::id())), "{msg}");
}

#[test]
fn when_rank_0_gets_the_lock_it_alone_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let sent = std::cell::RefCell::new(Vec::new());
    let root = acquire_on_root(true, dir.path(), "download", |b| {
        *sent.borrow_mut() = b.clone();
        b
    });
    assert!(root.unwrap().is_some());
    assert!(acquire_on_root(false, dir.path(), "download", |_| sent.borrow().clone()).unwrap().is_none());
}

#[test]
fn an_unreadable_lock_is_refused_not_taken() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(lock_file(dir.path()), b"").unwrap();
    let err = OutputLock::acquire(dir.path(), "download").unwrap_err();
    assert!(matches!(err, LockError::Unreadable { .. }) && err.to_string().contains("it is empty"), "{err}");
    assert_eq!(fs::read(lock_file(dir.path())).unwrap(), b"");
    let missing = dir.path().join("nope");
    assert!(matches!(OutputLock::acquire(&missing, "download"), Err(LockError::NoFolder { .. })));
}

#[test]
fn process_probe_tells_live_dead_and_zombie_apart() {
    assert!(matches!(probe(std::process::id()), Liveness::Alive { start: Some(_) }));
    assert_eq!(probe(dead_pid()), Liveness::Dead);
    let zombie = std::process::Command::new("true").spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while probe(zombie.id()) != Liveness::Dead && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(probe(zombie.id()), Liveness::Dead, "an exited, unreaped child holds nothing");
    drop(zombie);
}
