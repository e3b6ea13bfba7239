//! Stopping a child process politely: SIGTERM (mpirun and nginx pass it on or shut down on it),
//! then SIGKILL once a grace period has passed.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// How often the child is checked while it shuts down.
const POLL: Duration = Duration::from_millis(20);

/// Sends SIGTERM to `child`, waits up to `grace` for it to exit, then kills it.
pub fn terminate(child: &mut Child, grace: Duration) {
    // If SIGTERM cannot be sent, the SIGKILL below still stops the child; errors from `kill` and
    // `wait` there only mean it has already exited.
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(POLL);
    }
    let _ = child.kill();
    let _ = child.wait();
}
