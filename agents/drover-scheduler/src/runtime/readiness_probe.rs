//! The readiness probes the app engine asks for ([`crate::engine::apps::ReadinessProbe`]): run
//! each over HTTP at most once per check interval, with its timeout and a bound on the
//! probes in flight, and keep the latest result per instance and check for the next
//! tick's snapshot.
//!
//! The results live in memory only: a restarted scheduler probes the instances of its
//! running deployments again. An HTTPS check is a TCP connect (no TLS client here).

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

// tokio's clock, which tests can pause and advance.
use tokio::time::Instant;

use chrono::Utc;
use drover_api::app::{AppHealthProtocol, ReadinessCheck};
use drover_api::deployment::{ReadinessCheckResult, ReadinessResponse};
use drover_api::task::TaskId;
use tokio::sync::{Notify, Semaphore};

use crate::engine::apps::ReadinessProbe;

/// Probes in flight at once; more wait for a permit (they count as in flight).
const CONCURRENT_PROBES: usize = 16;
/// Most of a body kept with `preserveLastResponse`.
const MAX_BODY: usize = 64 * 1024;

/// A probe's key: the instance and the check's name.
type Key = (TaskId, String);

/// When a probe last started and whether it is still running.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// No new probe before this instant (the check's interval after the last start).
    next_at: Instant,
    /// A probe of this key runs (or waits for a permit).
    in_flight: bool,
}

/// What the probes share: the results and the schedule.
#[derive(Default)]
struct Shared {
    results: HashMap<Key, ReadinessCheckResult>,
    slots: HashMap<Key, Slot>,
}

/// Runs readiness probes and remembers their results.
pub struct Prober {
    /// One client for every probe: no redirects followed (a 3xx is an answer like any
    /// other), no proxy.
    client: reqwest::Client,
    /// Bounds the probes in flight; each spawned probe holds a permit while it runs and
    /// drops it when it ends.
    limit: Arc<Semaphore>,
    /// Results and schedule; probes write their result here when they end.
    shared: Arc<StdMutex<Shared>>,
}

impl Default for Prober {
    fn default() -> Self {
        Prober::new()
    }
}

impl Prober {
    /// A prober with no results yet.
    pub fn new() -> Prober {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap_or_default();
        Prober {
            client,
            limit: Arc::new(Semaphore::new(CONCURRENT_PROBES)),
            shared: Arc::new(StdMutex::new(Shared::default())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        // Plain maps: a panic elsewhere while holding the lock leaves them usable.
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The latest result of every probe, for the snapshot.
    pub fn results(&self) -> Vec<ReadinessCheckResult> {
        self.lock().results.values().cloned().collect()
    }

    /// Forgets the results and schedule of every instance `keep` says no.
    pub fn retain(&self, keep: impl Fn(&TaskId) -> bool) {
        let mut s = self.lock();
        s.results.retain(|(t, _), _| keep(t));
        s.slots.retain(|(t, _), slot| slot.in_flight || keep(t));
    }

    /// Starts the probes of `probes` that are due (never run, or their interval passed
    /// since the last start, and none of theirs in flight). `host` gives a node's host;
    /// `wake` is poked when a probe turns an instance ready.
    pub fn start(
        &self,
        probes: Vec<ReadinessProbe>,
        host: impl Fn(&str) -> String,
        wake: &Arc<Notify>,
    ) {
        let now = Instant::now();
        for p in probes {
            let key: Key = (p.task.clone(), p.check.name.clone());
            {
                let mut s = self.lock();
                let due = s
                    .slots
                    .get(&key)
                    .is_none_or(|slot| !slot.in_flight && slot.next_at <= now);
                if !due {
                    continue;
                }
                let interval = Duration::try_from_secs_f64(p.check.interval_seconds)
                    .unwrap_or(Duration::from_secs(30));
                s.slots.insert(
                    key.clone(),
                    Slot {
                        next_at: now + interval,
                        in_flight: true,
                    },
                );
            }
            let host = host(&p.node);
            let client = self.client.clone();
            let limit = self.limit.clone();
            let shared = self.shared.clone();
            let wake = wake.clone();
            tokio::spawn(async move {
                let permit = limit.acquire_owned().await;
                let result = probe(&client, &host, &p).await;
                drop(permit);
                tracing::debug!(task = %p.task, check = %p.check.name, ready = result.ready, "readiness probe");
                let ready = result.ready;
                let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(slot) = s.slots.get_mut(&key) {
                    slot.in_flight = false;
                }
                s.results.insert(key, result);
                drop(s);
                if ready {
                    wake.notify_one();
                }
            });
        }
    }
}

/// The URL of a probe: `http://host:port/path` (IPv6 hosts in brackets).
pub fn probe_url(host: &str, port: u16, check: &ReadinessCheck) -> String {
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let path = if check.path.starts_with('/') {
        check.path.clone()
    } else {
        format!("/{}", check.path)
    };
    format!("http://{host}:{port}{path}")
}

/// Runs one probe within the check's timeout.
async fn probe(client: &reqwest::Client, host: &str, p: &ReadinessProbe) -> ReadinessCheckResult {
    let check = &p.check;
    let timeout =
        Duration::try_from_secs_f64(check.timeout_seconds).unwrap_or(Duration::from_secs(10));
    let mut result = ReadinessCheckResult {
        name: check.name.clone(),
        task_id: p.task.clone(),
        ready: false,
        last_response: None,
        message: None,
        checked_at: None,
    };
    let outcome = tokio::time::timeout(timeout, async {
        if check.protocol == AppHealthProtocol::Https {
            let addr = format!("{host}:{}", p.port);
            let addr = if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]:{}", p.port)
            } else {
                addr
            };
            return tokio::net::TcpStream::connect(addr)
                .await
                .map(|_| None)
                .map_err(|e| e.to_string());
        }
        let resp = client
            .get(probe_url(host, p.port, check))
            .send()
            .await
            .map_err(|e| describe(&e))?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = if check.preserve_last_response {
            read_body(resp).await
        } else {
            String::new()
        };
        Ok(Some(ReadinessResponse {
            status,
            content_type,
            body,
        }))
    })
    .await;
    result.checked_at = Some(Utc::now());
    match outcome {
        Err(_) => {
            result.message = Some(format!("no answer within {} s", check.timeout_seconds));
        }
        Ok(Err(e)) => result.message = Some(e),
        Ok(Ok(None)) => {
            result.ready = true;
            result.message = Some("HTTPS checked as a TCP connect".to_string());
        }
        Ok(Ok(Some(r))) => {
            result.ready = check.http_status_codes_for_ready.contains(&r.status);
            if !result.ready {
                result.message = Some(format!("answered {}", r.status));
            }
            if check.preserve_last_response {
                result.last_response = Some(r);
            }
        }
    }
    result
}

/// Up to [`MAX_BODY`] bytes of a body, as text.
async fn read_body(mut resp: reqwest::Response) -> String {
    let mut buf = Vec::new();
    while buf.len() < MAX_BODY {
        match resp.chunk().await {
            Ok(Some(c)) => buf.extend_from_slice(&c),
            _ => break,
        }
    }
    buf.truncate(MAX_BODY);
    String::from_utf8_lossy(&buf).into_owned()
}

/// A request error in a few words (`connection refused`), with its causes.
fn describe(e: &reqwest::Error) -> String {
    let mut s = if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(c) = source {
        s.push_str(": ");
        s.push_str(&c.to_string());
        source = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str) -> ReadinessCheck {
        ReadinessCheck {
            name: "readinessCheck".into(),
            protocol: AppHealthProtocol::Http,
            path: path.into(),
            port_name: "http".into(),
            interval_seconds: 30.0,
            timeout_seconds: 10.0,
            http_status_codes_for_ready: vec![200],
            preserve_last_response: false,
        }
    }

    #[test]
    fn urls() {
        assert_eq!(
            probe_url("10.0.0.5", 31000, &check("/ready")),
            "http://10.0.0.5:31000/ready"
        );
        assert_eq!(
            probe_url("::1", 80, &check("ready")),
            "http://[::1]:80/ready"
        );
    }
}
