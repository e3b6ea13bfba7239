//! A fixed pool of threads for CPU work (decode, resize, encode, hash), off the event loop.
//!
//! The actors' event loop never runs a decode: a slow 100-megapixel TIFF must not stall the
//! per-host timers. Jobs are closures; each returns its result on a oneshot channel the caller
//! awaits. The pool does not bound its queue itself: callers hold a byte budget permit (see
//! `run.rs`) before submitting, so memory is bounded by backpressure.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Worker threads for a configured `CPU_THREADS`: the value itself, or for 0 the cores this
/// process may run on (under MPI or Slurm binding, the cores of its allocation). The one place
/// that decides it, for the pool and for the planner's estimate of a rank's capacity.
pub fn cpu_threads(configured: usize) -> usize {
    match configured {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n => n,
    }
}

pub struct CpuPool {
    sender: Option<mpsc::Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
    /// Workers running a job now.
    busy: Arc<std::sync::atomic::AtomicUsize>,
}

impl CpuPool {
    /// Starts `threads` workers (at least one).
    pub fn new(threads: usize) -> CpuPool {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let busy = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let threads = (0..threads.max(1))
            .map(|i| {
                let receiver = Arc::clone(&receiver);
                let busy = Arc::clone(&busy);
                std::thread::Builder::new()
                    .name(format!("cpu-{i}"))
                    .spawn(move || loop {
                        let job = match receiver.lock().expect("pool lock").recv() {
                            Ok(job) => job,
                            Err(_) => return,
                        };
                        busy.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        job();
                        busy.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                    })
                    .expect("spawn CPU worker")
            })
            .collect();
        CpuPool { sender: Some(sender), threads, busy }
    }

    /// Workers running a job now, and workers in all.
    pub fn busy(&self) -> (usize, usize) {
        (self.busy.load(std::sync::atomic::Ordering::Relaxed), self.threads.len())
    }

    /// Runs `f` on a worker; the receiver yields its result. A panic inside `f` drops the sender,
    /// which the caller sees as a closed channel (and records as a per-row error, not a crash).
    pub fn submit<T, F>(&self, f: F) -> oneshot::Receiver<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            if let Ok(v) = result {
                let _ = tx.send(v);
            }
        });
        if let Some(s) = &self.sender {
            let _ = s.send(job);
        }
        rx
    }
}

impl Drop for CpuPool {
    fn drop(&mut self) {
        self.sender.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_and_a_panicking_job_does_not_kill_the_pool() {
        let pool = CpuPool::new(2);
        let bad = pool.submit(|| -> u32 { panic!("hostile image") });
        let good: Vec<_> = (0..10u32).map(|i| pool.submit(move || i * 2)).collect();
        assert!(bad.blocking_recv().is_err());
        let sum: u32 = good.into_iter().map(|r| r.blocking_recv().unwrap()).sum();
        assert_eq!(sum, 90);
    }
}
