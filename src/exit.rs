//! The exit codes of every subcommand: one type, used by `main`, by `job-end` to read how a job
//! ended, and checked against the table in docs/exit-codes.md by a test.

/// How a subcommand ended, as its process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success.
    Success = 0,
    /// The run failed (bad input, I/O, a locked folder, a shard that could not be committed);
    /// `verify` found a problem. The message says what to do; committed shards are safe.
    Failed = 1,
    /// A usage or configuration error: nothing was done, and running again would do the same.
    Usage = 2,
    /// `download` committed no new record while rows remain: running it again now would do the
    /// same (a Slurm chain stops on it).
    NoProgress = 3,
}

impl Exit {
    /// Every exit code, in order.
    pub const ALL: [Exit; 4] = [Exit::Success, Exit::Failed, Exit::Usage, Exit::NoProgress];

    pub const fn code(self) -> i32 {
        self as i32
    }

    /// The exit of a process that ended with `code`, if it is one of ours.
    pub fn from_code(code: i32) -> Option<Exit> {
        Exit::ALL.into_iter().find(|e| e.code() == code)
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> std::process::ExitCode {
        std::process::ExitCode::from(e as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exit-code table of docs/exit-codes.md lists exactly these codes.
    #[test]
    fn the_docs_table_lists_every_exit_code_and_no_other() {
        let table = include_str!("../docs/exit-codes.md");
        assert!(table.starts_with("# Exit codes"), "docs/exit-codes.md is the exit-code page");
        let rows: Vec<i32> = table
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .filter_map(|l| l.trim_start_matches('|').split('|').next()?.trim().parse().ok())
            .collect();
        assert_eq!(rows, Exit::ALL.map(Exit::code), "docs/exit-codes.md rows: {rows:?}");
        assert_eq!(Exit::from_code(3), Some(Exit::NoProgress));
        assert_eq!(Exit::from_code(137), None);
    }
}
