//! A Python that has h5py (and whatever else a check imports), for the tests that read shards as
//! a user would: with plain h5py, outside our code.
//!
//! Looked for in this order: `DD_PYTHON` (then that one only), the venv `scripts/python-env.sh`
//! makes (`DD_PYENV`, else `~/.cache/distributed-downloader/pyenv`: Debian's h5py and PIL, and
//! pyarrow), `python3` on PATH, `/usr/bin/python3`.
//! A `python3` on PATH is often a pyenv or venv one without h5py while the system one has it, so
//! each is asked to import the modules rather than the first found being taken.
//!
//! When none has them, the check is skipped with a message that says what did not run and how to
//! install what is missing, unless coverage must not be lost silently: under CI (`CI` set), under
//! `make test` (which runs scripts/setup.sh, which installs python3-h5py and python3-pil, and then
//! sets `DD_REQUIRE_H5PY`), or when `DD_PYTHON` names a Python without them. There it fails.

use std::io::Write;
use std::process::Command;

/// The Pythons tried after the project's venv when `DD_PYTHON` is not set, in order.
const CANDIDATES: &[&str] = &["python3", "/usr/bin/python3"];

/// The venv's python that `scripts/python-env.sh` makes, if a home or `DD_PYENV` names it.
fn project_venv() -> Option<String> {
    let venv = match std::env::var("DD_PYENV").ok().filter(|v| !v.is_empty()) {
        Some(v) => std::path::PathBuf::from(v),
        None => std::path::PathBuf::from(std::env::var_os("HOME")?).join(".cache/distributed-downloader/pyenv"),
    };
    Some(venv.join("bin/python3").display().to_string())
}

/// A command running a Python that imports every one of `modules` (`h5py`, `PIL`), ready for
/// `-c <script>`; or `None` after printing that `check` (what the caller would prove with it)
/// is skipped. Panics where a missing module must fail (see the module doc).
pub fn python_with(modules: &[&str], check: &str) -> Option<Command> {
    let chosen = std::env::var("DD_PYTHON").ok().filter(|p| !p.is_empty());
    let venv = project_venv();
    let candidates: Vec<&str> = match &chosen {
        Some(p) => vec![p.as_str()],
        None => venv.iter().map(String::as_str).chain(CANDIDATES.iter().copied()).collect(),
    };
    let imports = format!("import {}", modules.join(", "));
    let mut tried = Vec::new();
    for python in candidates {
        match Command::new(python).args(["-c", &imports]).output() {
            Ok(o) if o.status.success() => return Some(Command::new(python)),
            Ok(o) => tried.push(format!("{python}: {}", last_line(&o.stderr))),
            Err(e) => tried.push(format!("{python}: {e}")),
        }
    }
    let missing = format!(
        "no Python imports {}.\n  tried: {}\n  install: scripts/setup.sh (python3-h5py, python3-pil, and \
         scripts/python-env.sh for pyarrow), or `pip install h5py pillow pyarrow`; or set DD_PYTHON to a Python \
         that has them",
        modules.join(" and "),
        tried.join("; "),
    );
    let required = if chosen.is_some() {
        Some("DD_PYTHON names a Python")
    } else if std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0") {
        Some("CI is set")
    } else if std::env::var_os("DD_REQUIRE_H5PY").is_some_and(|v| !v.is_empty() && v != "0") {
        Some("DD_REQUIRE_H5PY is set (make test, after scripts/setup.sh installed h5py)")
    } else {
        None
    };
    if let Some(why) = required {
        panic!("{check} cannot run: {missing}\n  This fails rather than skips, as {why}.");
    }
    // Straight to stderr, past the test harness's capture, so the skip shows in a passing run.
    // A message that cannot be written leaves nothing else to do: the check is skipped either way.
    let _ = writeln!(std::io::stderr(), "SKIPPED {check}: {missing}");
    None
}

/// The last line of a Python error, e.g. `ModuleNotFoundError: No module named 'h5py'`.
fn last_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr).lines().last().unwrap_or("failed").trim().to_string()
}
