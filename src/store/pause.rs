//! Pause points for tests only: a test proves that a kill landed inside a step (a merge, a
//! commit) by asking the process to stop there and wait to be killed.
//!
//! With `DD_TEST_PAUSE_AT=<name>` and `DD_TEST_PAUSE_MARKER=<file>` set, [`point`]`(name)`
//! creates the marker file and sleeps until the process is killed (at most
//! [`PAUSE_LIMIT`], so a forgotten variable cannot hang a job forever). Without them it does
//! nothing. The variables are named for tests so that no user sets them by accident.

use std::time::Duration;

/// The longest a pause point waits before going on: far longer than any test takes to kill.
pub const PAUSE_LIMIT: Duration = Duration::from_secs(600);

/// Stops here if a test asked for a pause at `name` (see the module doc).
pub fn point(name: &str) {
    let wanted = std::env::var("DD_TEST_PAUSE_AT").ok();
    if wanted.as_deref() != Some(name) {
        return;
    }
    if let Some(marker) = std::env::var_os("DD_TEST_PAUSE_MARKER") {
        // The marker is the test's proof; failing to write it only makes the test fail.
        let _ = std::fs::write(&marker, std::process::id().to_string());
    }
    std::thread::sleep(PAUSE_LIMIT);
}
