//! Health checks with Marathon's semantics: the counting ([`CheckCounter`], [`combine`])
//! is pure; the probes (HTTP GET, TCP connect, shell command: inside the container for
//! a container task, as Marathon runs them) and the loop that paces
//! them sit beside it.
//!
//! Per check: wait `delaySeconds`, then probe every `intervalSeconds`, each probe bounded
//! by `timeoutSeconds`. Failures during `gracePeriodSeconds` after the task started do not
//! count until the check has passed once. `maxConsecutiveFailures` failures in a row make
//! the check fail; one pass makes it pass. A task is healthy when every check passes and
//! unhealthy as soon as one fails.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use drover_api::task::{HealthCheck, HealthProtocol, HealthReport};

use crate::docker::Engine;

/// One check's running tally.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckCounter {
    /// Failures in a row that counted.
    pub consecutive_failures: u32,
    /// Whether the check has passed at least once (ends the grace period).
    pub passed_once: bool,
    /// `None` until decided; then whether the check passes.
    pub verdict: Option<bool>,
    /// What the last failure said (counted or not).
    pub last_failure: Option<String>,
    /// When the last probe finished.
    pub last_check_at: Option<DateTime<Utc>>,
}

impl CheckCounter {
    /// Records one probe's outcome. `in_grace` says whether the task is still inside the
    /// check's grace period; `max_failures` of 0 is taken as 1 (a failing check shows).
    pub fn record(
        &mut self,
        outcome: Result<(), String>,
        in_grace: bool,
        max_failures: u32,
        at: DateTime<Utc>,
    ) {
        self.last_check_at = Some(at);
        match outcome {
            Ok(()) => {
                self.consecutive_failures = 0;
                self.passed_once = true;
                self.verdict = Some(true);
            }
            Err(why) => {
                self.last_failure = Some(why);
                if in_grace && !self.passed_once {
                    return;
                }
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                if self.consecutive_failures >= max_failures.max(1) {
                    self.verdict = Some(false);
                }
            }
        }
    }
}

/// Folds the checks of one task: `Some(true)` when all pass, `Some(false)` when any
/// fails, `None` while undecided; with the report sent to the master.
pub fn combine(counters: &[CheckCounter]) -> (Option<bool>, HealthReport) {
    let verdict = if counters.iter().any(|c| c.verdict == Some(false)) {
        Some(false)
    } else if !counters.is_empty() && counters.iter().all(|c| c.verdict == Some(true)) {
        Some(true)
    } else {
        None
    };
    let worst = counters.iter().max_by_key(|c| c.consecutive_failures);
    let report = HealthReport {
        alive: verdict == Some(true),
        consecutive_failures: worst.map_or(0, |c| c.consecutive_failures),
        last_check_at: counters.iter().filter_map(|c| c.last_check_at).max(),
        last_failure: worst
            .filter(|c| c.consecutive_failures > 0)
            .and_then(|c| c.last_failure.clone())
            .or_else(|| {
                counters.iter().find_map(|c| {
                    if c.verdict == Some(false) {
                        c.last_failure.clone()
                    } else {
                        None
                    }
                })
            }),
    };
    (verdict, report)
}

/// What a probe needs to know about the task.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    /// The task's host ports (`portIndex` indexes them).
    pub host_ports: Vec<u16>,
    /// The task's environment, for COMMAND checks.
    pub env: BTreeMap<String, String>,
    /// The task's sandbox, the working directory of COMMAND checks.
    pub sandbox: PathBuf,
    /// The task's uid, gid and groups, so COMMAND checks run as the task does.
    pub user: Option<crate::task_user::Identity>,
    /// For a container task, its engine and container: COMMAND checks run inside it.
    pub container: Option<(Engine, String)>,
}

/// The port a check probes: its fixed `port`, else `host_ports[portIndex]` (index 0 by default).
pub fn check_port(check: &HealthCheck, host_ports: &[u16]) -> Option<u16> {
    check
        .port
        .or_else(|| host_ports.get(check.port_index.unwrap_or(0)).copied())
}

/// A duration from a validated, possibly fractional, number of seconds.
pub fn secs(s: f64) -> Duration {
    if s.is_finite() && s > 0.0 {
        Duration::from_secs_f64(s.min(86_400.0))
    } else {
        Duration::ZERO
    }
}

/// Runs one probe; `Err` says why it failed.
pub async fn probe(
    check: &HealthCheck,
    target: &ProbeTarget,
    http: &reqwest::Client,
) -> Result<(), String> {
    let timeout = secs(check.timeout_seconds).max(Duration::from_millis(10));
    match check.protocol {
        HealthProtocol::Http => {
            let port = check_port(check, &target.host_ports)
                .ok_or("the check names no port the task has")?;
            let path = check.path.as_deref().unwrap_or("/");
            let sep = if path.starts_with('/') { "" } else { "/" };
            let url = format!("http://127.0.0.1:{port}{sep}{path}");
            let resp = http
                .get(&url)
                .timeout(timeout)
                .send()
                .await
                .map_err(|e| format!("GET {url}: {e}"))?;
            let status = resp.status().as_u16();
            if (200..400).contains(&status) {
                Ok(())
            } else {
                Err(format!("GET {url} answered {status}"))
            }
        }
        HealthProtocol::Tcp => {
            let port = check_port(check, &target.host_ports)
                .ok_or("the check names no port the task has")?;
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(("127.0.0.1", port)))
                .await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("connect to port {port}: {e}")),
                Err(_) => Err(format!(
                    "connect to port {port}: timed out after {timeout:?}"
                )),
            }
        }
        HealthProtocol::Command => {
            let command = check
                .command
                .as_deref()
                .ok_or("the COMMAND check has no command")?;
            match &target.container {
                Some((engine, name)) => engine.exec_check(name, command, timeout).await,
                None => run_command(command, target, timeout).await,
            }
        }
    }
}

async fn run_command(command: &str, target: &ProbeTarget, timeout: Duration) -> Result<(), String> {
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .env_clear()
        .envs(&target.env)
        .current_dir(&target.sandbox)
        .process_group(0)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(who) = &target.user {
        crate::task_user::drop_privileges_tokio(&mut cmd, who);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run the check command: {e}"))?;
    let pid = child.id();
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(s)) if s.success() => Ok(()),
        Ok(Ok(s)) => Err(match (s.code(), s.signal()) {
            (Some(c), _) => format!("command exited with {c}"),
            (None, Some(sig)) => format!("command killed by signal {sig}"),
            _ => "command failed".to_string(),
        }),
        Ok(Err(e)) => Err(format!("cannot wait for the check command: {e}")),
        Err(_) => {
            // The whole group, so a pipeline's other members die too.
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()).filter(|p| *p > 1) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.wait().await;
            Err(format!("command timed out after {timeout:?}"))
        }
    }
}

/// Receives each probe's outcome: the check's index, the outcome, and whether the task
/// was still within that check's grace period.
pub type Sink = Arc<dyn Fn(usize, Result<(), String>, bool) + Send + Sync>;

/// Paces check `index` forever (the caller aborts it when the task ends).
pub async fn check_loop(
    index: usize,
    check: HealthCheck,
    target: Arc<ProbeTarget>,
    started_at: DateTime<Utc>,
    http: reqwest::Client,
    sink: Sink,
) {
    tokio::time::sleep(secs(check.delay_seconds)).await;
    let interval = secs(check.interval_seconds).max(Duration::from_millis(50));
    let grace = secs(check.grace_period_seconds);
    loop {
        let next = tokio::time::Instant::now() + interval;
        let outcome = probe(&check, &target, &http).await;
        let age = (Utc::now() - started_at).to_std().unwrap_or(Duration::ZERO);
        sink(index, outcome, age < grace);
        tokio::time::sleep_until(next).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    #[test]
    fn grace_ignores_failures_until_the_first_pass() {
        let mut c = CheckCounter::default();
        for _ in 0..10 {
            c.record(Err("down".into()), true, 3, at());
        }
        assert_eq!(c.verdict, None);
        assert_eq!(c.consecutive_failures, 0);
        c.record(Ok(()), true, 3, at());
        assert_eq!(c.verdict, Some(true));
        // After a pass the grace period no longer shields failures.
        c.record(Err("down".into()), true, 3, at());
        assert_eq!(c.consecutive_failures, 1);
    }

    #[test]
    fn max_consecutive_failures_then_one_pass() {
        let mut c = CheckCounter::default();
        c.record(Ok(()), false, 3, at());
        c.record(Err("e1".into()), false, 3, at());
        c.record(Err("e2".into()), false, 3, at());
        assert_eq!(c.verdict, Some(true), "two failures of three allowed");
        c.record(Err("e3".into()), false, 3, at());
        assert_eq!(c.verdict, Some(false));
        c.record(Ok(()), false, 3, at());
        assert_eq!(c.verdict, Some(true));
        assert_eq!(c.consecutive_failures, 0);
    }

    #[test]
    fn zero_max_failures_means_one() {
        let mut c = CheckCounter::default();
        c.record(Err("x".into()), false, 0, at());
        assert_eq!(c.verdict, Some(false));
    }

    #[test]
    fn combine_needs_all_passing() {
        let pass = CheckCounter {
            verdict: Some(true),
            passed_once: true,
            ..Default::default()
        };
        let undecided = CheckCounter::default();
        let fail = CheckCounter {
            verdict: Some(false),
            consecutive_failures: 3,
            last_failure: Some("boom".into()),
            ..Default::default()
        };
        assert_eq!(combine(&[pass.clone(), pass.clone()]).0, Some(true));
        assert_eq!(combine(&[pass.clone(), undecided.clone()]).0, None);
        let (v, r) = combine(&[pass, fail, undecided]);
        assert_eq!(v, Some(false));
        assert!(!r.alive);
        assert_eq!(r.consecutive_failures, 3);
        assert_eq!(r.last_failure.as_deref(), Some("boom"));
        assert_eq!(combine(&[]).0, None);
    }

    #[test]
    fn port_choice() {
        let mut hc = HealthCheck::new(HealthProtocol::Tcp);
        assert_eq!(check_port(&hc, &[31000, 31001]), Some(31000));
        hc.port_index = Some(1);
        assert_eq!(check_port(&hc, &[31000, 31001]), Some(31001));
        hc.port_index = Some(5);
        assert_eq!(check_port(&hc, &[31000]), None);
        hc.port = Some(8080);
        assert_eq!(check_port(&hc, &[]), Some(8080));
    }
}
