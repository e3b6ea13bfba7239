//! The image checks of one rank on worker threads: the caller's thread reads shards (HDF5 takes
//! one global lock, so reads gain nothing from threads), the workers compute CRC-32s and decode.
//!
//! The queue between them is bounded, so memory holds at most a few images per worker however
//! large the output. A problem found by a worker comes back with the batch it belongs to; the
//! caller adds them to its report at the end ([`Pool::finish`]). Owns no check itself: what
//! an image is checked against is `image.rs`'s.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::{Scope, ScopedJoinHandle};

use super::image;
use super::report::Problem;
use crate::store::shards::record::SuccessRecord;

/// Images queued per worker: enough that a worker never waits for the reader between two
/// images, few enough that memory stays a handful of images.
const QUEUE_PER_WORKER: usize = 4;

/// One stored image to check, with what names it in a problem.
pub struct ImageJob {
    pub server: String,
    pub partition: u64,
    pub shard: PathBuf,
    /// Its record (without `data`): the format and size it must decode to, its uuid and URL.
    pub record: SuccessRecord,
    pub bytes: Vec<u8>,
    /// CRC-32 of the stored bytes when the shard records one.
    pub crc: Option<u32>,
}

impl ImageJob {
    /// The problem with this image, if it has one.
    pub fn check(self) -> Option<Problem> {
        let (kind, detail) = image::check(&self.record, &self.bytes, self.crc).err()?;
        Some(Problem {
            kind,
            server: self.server,
            partition: self.partition,
            shard: Some(self.shard),
            uuid: Some(self.record.uuid),
            url: Some(self.record.url),
            detail,
        })
    }
}

/// Worker threads checking images inside a [`std::thread::scope`].
pub struct Pool<'scope> {
    jobs: Option<SyncSender<ImageJob>>,
    found: Receiver<Problem>,
    workers: Vec<ScopedJoinHandle<'scope, ()>>,
}

impl<'scope> Pool<'scope> {
    /// Starts `threads` workers (at least one) in `scope`.
    pub fn start<'env>(scope: &'scope Scope<'scope, 'env>, threads: usize) -> Pool<'scope> {
        let threads = threads.max(1);
        let (jobs, queue) = mpsc::sync_channel::<ImageJob>(threads * QUEUE_PER_WORKER);
        let queue = Arc::new(Mutex::new(queue));
        let (report, found) = mpsc::channel();
        let workers = (0..threads)
            .map(|_| {
                let (queue, report) = (Arc::clone(&queue), report.clone());
                scope.spawn(move || loop {
                    // The lock is held only to take a job, never while checking one.
                    let next = queue.lock().map(|q| q.recv());
                    let Ok(Ok(job)) = next else { return };
                    if let Some(problem) = job.check() {
                        // The receiver lives until every worker has ended (see `finish`).
                        let _ = report.send(problem);
                    }
                })
            })
            .collect();
        Pool { jobs: Some(jobs), found, workers }
    }

    /// Queues `job`; waits while the queue is full.
    pub fn submit(&self, job: ImageJob) {
        if let Some(jobs) = &self.jobs {
            // Fails only if every worker has ended, which happens only after `finish`.
            let _ = jobs.send(job);
        }
    }

    /// Problems found so far (for progress lines).
    pub fn drain(&self) -> Vec<Problem> {
        self.found.try_iter().collect()
    }

    /// Waits for every queued image and returns the problems not yet drained.
    pub fn finish(mut self) -> Vec<Problem> {
        self.jobs = None;
        for worker in self.workers.drain(..) {
            // image::check catches a decoder's panic, so a worker ends only when the queue does.
            let _ = worker.join();
        }
        self.found.try_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::shards::record::test_plain_image;
    use crate::verify::report::Kind;

    fn job(uuid: &str, bytes: Vec<u8>) -> ImageJob {
        ImageJob {
            server: "a.org".into(),
            partition: 3,
            shard: PathBuf::from("shard-000000.h5"),
            record: test_plain_image(uuid, 2, 1, "rgb", vec![]),
            crc: Some(crc32fast::hash(&bytes)),
            bytes,
        }
    }

    #[test]
    fn every_queued_image_is_checked_and_only_the_bad_ones_come_back_named() {
        let problems = std::thread::scope(|s| {
            let pool = Pool::start(s, 3);
            for i in 0..200 {
                // Every 50th image is one byte short of its 2×1 RGB record.
                let len = if i % 50 == 7 { 5 } else { 6 };
                pool.submit(job(&format!("u{i}"), vec![1; len]));
            }
            let mut found = pool.drain();
            found.extend(pool.finish());
            found
        });
        let mut names: Vec<&str> = problems.iter().map(|p| p.uuid.as_deref().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["u107", "u157", "u57", "u7"]);
        assert!(problems.iter().all(|p| p.kind == Kind::Decode && p.partition == 3), "{problems:?}");
    }
}
