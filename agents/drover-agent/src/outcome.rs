//! How an ended task is classified, pure: its exit record and whether a kill was asked
//! for in, its terminal state and message out.

use drover_api::task::{ExitStatus, TaskState};

use crate::sandbox::ExitRecord;

/// The message of a task whose process disappeared while the agent was not watching.
pub const VANISHED: &str = "process vanished while the agent was down";

/// The terminal state and message of a task that ended as `rec` says. A task someone
/// asked to kill is `killed` however it went; otherwise exit 0 is `finished` and
/// anything else (non-zero, a signal, never started) is `failed`.
pub fn classify(
    rec: &ExitRecord,
    kill_reason: Option<&str>,
    mem_limit_mib: f64,
) -> (TaskState, Option<String>) {
    let detail = match (&rec.status, &rec.error) {
        (Some(s), _) => describe(s),
        (None, Some(e)) => e.clone(),
        (None, None) => "ended for an unknown reason".to_string(),
    };
    if let Some(reason) = kill_reason {
        return (TaskState::Killed, Some(format!("{reason} ({detail})")));
    }
    if rec.oom_killed {
        return (
            TaskState::Failed,
            Some(format!(
                "out of memory: the kernel's OOM killer ended it at its limit of {mem_limit_mib} MiB ({detail})"
            )),
        );
    }
    match rec.status {
        Some(s) if s.success() => (TaskState::Finished, Some(detail)),
        _ => (TaskState::Failed, Some(detail)),
    }
}

/// `exited with code 3`, `killed by signal 9 (SIGKILL)`.
pub fn describe(s: &ExitStatus) -> String {
    match (s.code, s.signal) {
        (Some(c), _) => format!("exited with code {c}"),
        (None, Some(sig)) => match nix::sys::signal::Signal::try_from(sig) {
            Ok(name) => format!("killed by signal {sig} ({name})"),
            Err(_) => format!("killed by signal {sig}"),
        },
        (None, None) => "ended with an unknown status".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn rec(code: Option<i32>, signal: Option<i32>) -> ExitRecord {
        ExitRecord {
            status: Some(ExitStatus { code, signal }),
            error: None,
            oom_killed: false,
            finished_at: Utc::now(),
        }
    }

    #[test]
    fn exit_codes_map_to_states() {
        assert_eq!(
            classify(&rec(Some(0), None), None, 0.0).0,
            TaskState::Finished
        );
        let (s, m) = classify(&rec(Some(3), None), None, 0.0);
        assert_eq!(
            (s, m.as_deref()),
            (TaskState::Failed, Some("exited with code 3"))
        );
        let (s, m) = classify(&rec(None, Some(9)), None, 0.0);
        assert_eq!(s, TaskState::Failed);
        assert_eq!(m.as_deref(), Some("killed by signal 9 (SIGKILL)"));
    }

    #[test]
    fn a_requested_kill_is_killed_whatever_the_status() {
        for r in [
            rec(Some(0), None),
            rec(None, Some(15)),
            ExitRecord::error("killed before it started"),
        ] {
            let (s, m) = classify(&r, Some("asked"), 0.0);
            assert_eq!(s, TaskState::Killed);
            assert!(m.unwrap().starts_with("asked"));
        }
    }

    #[test]
    fn spawn_errors_and_oom_fail() {
        let (s, m) = classify(
            &ExitRecord::error("cannot start \"nope\": No such file"),
            None,
            0.0,
        );
        assert_eq!(
            (s, m.as_deref()),
            (
                TaskState::Failed,
                Some("cannot start \"nope\": No such file")
            )
        );
        let mut r = rec(None, Some(9));
        r.oom_killed = true;
        let (s, m) = classify(&r, None, 64.0);
        assert_eq!(s, TaskState::Failed);
        assert!(m.unwrap().contains("OOM killer"));
    }
}
