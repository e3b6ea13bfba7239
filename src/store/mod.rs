//! The output folder's one owner: its paths and file names, and how files in it are written.
//!
//! Commands and actors are clients of this module: they ask it for a path or hand it bytes, and
//! never spell a file name of the output folder themselves.
//!
//! - `paths`: every file and folder name of the output folder, and the folder of one batch.
//! - `atomic`: the one way a file there is written: a temporary name carrying host and pid,
//!   fsync of the file, a rename (or a link that never replaces), fsync of the folder.
//! - `lock`: the writer lock `writer.lock`: one writing process per output folder, stale locks taken over.
//! - `pause`: pause points for tests only, so a test can kill a process provably mid-write.

pub mod atomic;
pub mod lock;
pub mod pause;
pub mod paths;
