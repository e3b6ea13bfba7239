//! What the end of one job of a chain means for the rest: go on, or stop the chain (cancel the
//! jobs still queued) and say why. A pure decision; `commands` records it and calls `scancel`.

use super::record::JobKind;
use crate::exit::Exit;

#[derive(Debug, Clone, PartialEq)]
pub enum AfterJob {
    GoOn,
    Stop(String),
}

/// `remaining`: rows without a committed record after the job (`None` when unreadable);
/// `previous_failed`: the job before it in the chain recorded a failure (exit 1 or other).
pub fn after_job(kind: JobKind, exit_code: i32, remaining: Option<u64>, previous_failed: bool) -> AfterJob {
    match (kind, Exit::from_code(exit_code)) {
        (JobKind::Prep, Some(Exit::Success)) => AfterJob::GoOn,
        (JobKind::Prep, _) => AfterJob::Stop(format!(
            "prep failed (exit {exit_code}): see its log under logs/, fix the input or the config, and run `submit` again"
        )),
        (JobKind::Download, Some(Exit::Success)) if remaining == Some(0) => {
            AfterJob::Stop("complete: every row has a committed record".into())
        }
        (JobKind::Download, Some(Exit::Success)) => AfterJob::GoOn,
        (JobKind::Download, Some(Exit::NoProgress)) => AfterJob::Stop(format!(
            "nothing changed: the job committed no new record while {} rows remain (their hosts \
             failed, were parked or asked us to wait). The next jobs would do the same; see \
             `status`, and run `submit` again when the servers answer (or `download --retry-failed`)",
            remaining.map(|r| r.to_string()).unwrap_or_else(|| "some".into())
        )),
        (JobKind::Download, Some(Exit::Usage)) => AfterJob::Stop(
            "the download refused its configuration (exit 2): fix the config file as its log says, and run `submit` again"
                .into(),
        ),
        (JobKind::Download, _) if previous_failed => AfterJob::Stop(format!(
            "two jobs in a row failed (this one with exit {exit_code}): see their logs under logs/, then run `submit` again"
        )),
        (JobKind::Download, _) => AfterJob::GoOn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_goes_on_while_work_moves_and_stops_when_done_stuck_or_broken() {
        use AfterJob::GoOn;
        assert_eq!(after_job(JobKind::Prep, 0, None, false), GoOn);
        assert!(matches!(after_job(JobKind::Prep, 1, None, false), AfterJob::Stop(m) if m.contains("prep failed")));
        assert_eq!(after_job(JobKind::Download, 0, Some(500), false), GoOn, "the deadline stopped it: resume");
        assert!(
            matches!(after_job(JobKind::Download, 0, Some(0), false), AfterJob::Stop(m) if m.starts_with("complete"))
        );
        assert!(
            matches!(after_job(JobKind::Download, 3, Some(40), false), AfterJob::Stop(m) if m.contains("nothing changed") && m.contains("40 rows"))
        );
        assert!(matches!(after_job(JobKind::Download, 2, Some(40), false), AfterJob::Stop(_)));
        assert_eq!(after_job(JobKind::Download, 1, Some(40), false), GoOn, "one crash: the next job resumes");
        assert!(matches!(after_job(JobKind::Download, 1, Some(40), true), AfterJob::Stop(m) if m.contains("two jobs")));
    }
}
