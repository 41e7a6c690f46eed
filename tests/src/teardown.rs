//! Undoing what a test fixture changed on this machine (namespaces, mounts, cgroups,
//! containers, kernel settings). A fixture's `Drop` runs each step through a
//! [`Teardown`]: every step runs even when an earlier one failed, and the failures are
//! reported together at the end, so one missing tool or busy mount never leaves the rest
//! of the machine changed.
//!
//! Steps must not panic: a `Drop` that runs while a failed test unwinds would abort the
//! whole test process. They return `Err` with what went wrong instead, and the helpers
//! here ([`run`], [`signal`], [`unmount`]) never panic.

use std::fmt::Display;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::sys::signal::Signal;

/// Collects the failures of a fixture's teardown steps.
#[derive(Debug)]
pub struct Teardown {
    what: String,
    failures: Vec<String>,
}

impl Teardown {
    /// A teardown of `what` (named in the report, e.g. "fleet hosts dfl123x0").
    pub fn new(what: impl Into<String>) -> Teardown {
        Teardown {
            what: what.into(),
            failures: Vec::new(),
        }
    }

    /// Runs one step and records its failure; the next step runs either way.
    pub fn step(&mut self, name: impl Display, f: impl FnOnce() -> Result<(), String>) {
        if let Err(e) = f() {
            self.failures.push(format!("{name}: {e}"));
        }
    }

    /// What failed so far.
    pub fn failures(&self) -> &[String] {
        &self.failures
    }

    /// Reports what failed on stderr. When the test itself has not failed, a teardown
    /// that left something behind fails it: the machine is not as the test found it.
    pub fn finish(self) {
        if self.failures.is_empty() {
            return;
        }
        let report = format!(
            "teardown of {} left things undone ({} failed steps):\n  {}",
            self.what,
            self.failures.len(),
            self.failures.join("\n  ")
        );
        if std::thread::panicking() {
            eprintln!("{report}");
        } else {
            panic!("{report}");
        }
    }
}

/// Runs a command to completion; its stdout on success, or why it failed (it could not
/// start, or it exited non-zero with this stderr).
pub fn run(args: &[&str]) -> Result<String, String> {
    let (program, rest) = args.split_first().ok_or("no command given")?;
    let out = Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {args:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Sends `sig` to process `pid` through the libc; a process that is already gone is
/// not an error.
pub fn signal(pid: u32, sig: Signal) -> Result<(), String> {
    let raw = i32::try_from(pid).map_err(|_| format!("pid {pid} out of range"))?;
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(format!("{sig} to pid {pid}: {e}")),
    }
}

/// Unmounts `path`; if something still holds it, detaches it (the kernel frees it when
/// the last user goes). A path that is not mounted is not an error.
pub fn unmount(path: &Path) -> Result<(), String> {
    use nix::mount::{MntFlags, umount2};
    match umount2(path, MntFlags::empty()) {
        Ok(()) | Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => Ok(()),
        Err(_) => umount2(path, MntFlags::MNT_DETACH)
            .map_err(|e| format!("cannot unmount {}: {e}", path.display())),
    }
}

/// Removes a cgroup and the ones under it, deepest first. The kernel refuses while a
/// process that was just killed is still leaving, so each removal is tried for a while.
pub fn remove_cgroup(dir: &Path) -> Result<(), String> {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup(&e.path())?;
            }
        }
    }
    let mut last = None;
    for _ in 0..50 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => last = Some(e),
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Err(format!(
        "cannot remove cgroup {}: {}",
        dir.display(),
        last.map(|e| e.to_string()).unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_runs_and_failures_are_collected() {
        let mut t = Teardown::new("a fixture");
        let mut ran = Vec::new();
        t.step("first", || Err("no such tool".into()));
        t.step("second", || {
            ran.push("second");
            Ok(())
        });
        t.step("third", || run(&["/nonexistent/tool", "--flag"]).map(drop));
        assert_eq!(ran, ["second"]);
        assert_eq!(t.failures().len(), 2, "{:?}", t.failures());
        assert!(t.failures()[0].starts_with("first: no such tool"));
        assert!(t.failures()[1].contains("cannot run"), "{:?}", t.failures());
        let report = std::panic::catch_unwind(move || t.finish()).unwrap_err();
        let report = report.downcast_ref::<String>().unwrap();
        assert!(report.contains("a fixture") && report.contains("2 failed steps"));
    }

    #[test]
    fn a_clean_teardown_reports_nothing() {
        let mut t = Teardown::new("a fixture");
        t.step("ok", || Ok(()));
        t.finish();
    }

    #[test]
    fn signalling_a_process_that_is_gone_is_not_an_error() {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert_eq!(signal(pid, Signal::SIGTERM), Ok(()));
    }

    #[test]
    fn signal_reaches_a_running_process() {
        let mut child = Command::new("sleep").arg("60").spawn().unwrap();
        signal(child.id(), Signal::SIGTERM).unwrap();
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(Signal::SIGTERM as i32));
    }

    #[test]
    fn a_failing_command_names_its_stderr() {
        let e = run(&["sh", "-c", "echo broken >&2; exit 3"]).unwrap_err();
        assert!(e.contains("broken") && e.contains("3"), "{e}");
    }
}
