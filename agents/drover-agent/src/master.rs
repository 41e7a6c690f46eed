//! The agent's side of the agent ⇄ master protocol (see [`drover_api::agent`]): register
//! (retrying with backoff until the master answers), heartbeat every interval and at once
//! on any task change, and long-poll the assignments, reconciling the runner against
//! each answer. When the master is away the tasks keep running and the loops keep trying.
//!
//! Every answer is checked against the cluster the agent joined (see [`crate::cluster`]):
//! a master of another cluster, or of none, is refused (the registration is retried every
//! [`REFUSED_RETRY`] with an ERROR naming both ids), and no assignment of it is applied,
//! so no task is killed or started on its word.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use drover_api::agent::{AssignmentsQuery, HeartbeatRequest, RegisterRequest};
use drover_api::client::{ClientError, MasterClient};
use drover_api::node::HostInfo;
use drover_api::{Capability, PortRange, Resources};
use tokio::sync::watch;

use crate::cluster::{Membership, Verdict};
use crate::runner::TaskRunner;

/// How often an agent retries a master it refused (another cluster's, or one without
/// an id), logging the refusal at ERROR each time.
pub const REFUSED_RETRY: Duration = Duration::from_secs(10);

/// Longest wait the agent asks of an assignments long poll, in seconds.
pub const LONG_POLL_SECS: u64 = 30;
/// Longest a registration or heartbeat may take: the client only bounds connecting, and
/// a master that accepts but never answers must not stall the loop.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a bounded call to the master failed.
#[derive(Debug, thiserror::Error)]
enum CallError {
    /// The client's error.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// No answer within [`CALL_TIMEOUT`].
    #[error("the master did not answer within {0:?}")]
    Timeout(Duration),
}

impl CallError {
    fn status(&self) -> Option<u16> {
        match self {
            CallError::Client(e) => e.status(),
            CallError::Timeout(_) => None,
        }
    }
}

/// Runs `call` for at most [`CALL_TIMEOUT`].
async fn bounded<T>(
    call: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, CallError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(r) => r.map_err(CallError::from),
        Err(_) => Err(CallError::Timeout(CALL_TIMEOUT)),
    }
}

/// Everything the protocol loops need.
#[derive(Debug, Clone)]
pub struct Session {
    /// The master's API.
    pub client: MasterClient,
    /// This node's name.
    pub name: String,
    /// The agent's API base URL, as the master should reach it.
    pub address: String,
    /// Operator-set attributes.
    pub attributes: BTreeMap<String, String>,
    /// Offered resources (host totals less `reserved`).
    pub total: Resources,
    /// Resources held back for the host.
    pub reserved: Resources,
    /// Host ports for tasks.
    pub ports: PortRange,
    /// Most tasks the node runs at once.
    pub max_tasks: u32,
    /// Latest host facts, refreshed by the resource loop.
    pub host: watch::Receiver<HostInfo>,
    /// The tasks.
    pub runner: TaskRunner,
    /// True while the master knows this node. The heartbeat loop sends; the assignments
    /// loop waits on it before polling.
    pub registered: watch::Sender<bool>,
    /// The cluster this agent joined; checked against every answer of the master.
    pub membership: Arc<Membership>,
}

/// The wait before retry number `attempt` (1-based): 250 ms doubling to at most 5 s.
pub fn backoff(attempt: u32) -> Duration {
    let ms = 250u64.saturating_mul(1u64 << attempt.saturating_sub(1).min(5));
    Duration::from_millis(ms.min(5_000))
}

/// The heartbeat interval the master asked for, kept within sane bounds.
pub fn heartbeat_interval(ms: u64) -> Duration {
    Duration::from_millis(ms.clamp(100, 60_000))
}

impl Session {
    /// What the node can run besides processes: `docker` once an engine is found.
    fn capabilities(&self) -> Vec<Capability> {
        if self.runner.has_docker() {
            vec![Capability::Docker]
        } else {
            Vec::new()
        }
    }

    fn register_request(&self) -> RegisterRequest {
        RegisterRequest {
            name: self.name.clone(),
            address: self.address.clone(),
            version: drover_api::VERSION.to_string(),
            attributes: self.attributes.clone(),
            capabilities: self.capabilities(),
            total: self.total,
            reserved: self.reserved,
            ports: self.ports,
            max_tasks: Some(self.max_tasks),
            host: self.host.borrow().clone(),
            tasks: self.runner.reports(),
            specs: self.runner.active_specs(),
            cluster_id: self.membership.claim(),
        }
    }

    /// Registers, retrying with backoff until the master accepts; returns the
    /// heartbeat interval it asked for.
    async fn register(&self) -> Duration {
        let mut attempt = 0u32;
        loop {
            match bounded(self.client.register(&self.register_request())).await {
                Ok(resp) => match self.membership.admit(resp.cluster_id.as_ref()) {
                    Ok(Verdict::Accept) => {
                        tracing::info!(master = self.client.http().base(), node = %self.name, "registered with the master");
                        return heartbeat_interval(resp.heartbeat_interval_ms);
                    }
                    Ok(Verdict::Join(id)) => {
                        tracing::info!(master = self.client.http().base(), node = %self.name, cluster = %id, "registered with the master and joined its cluster");
                        return heartbeat_interval(resp.heartbeat_interval_ms);
                    }
                    Ok(Verdict::Refuse(why)) => {
                        tracing::error!(
                            master = self.client.http().base(),
                            "refusing this master: {why}"
                        );
                        tokio::time::sleep(REFUSED_RETRY).await;
                    }
                    Err(e) => {
                        tracing::error!(
                            "cannot remember the cluster joined, so not acting on the master (retrying): {e}"
                        );
                        tokio::time::sleep(REFUSED_RETRY).await;
                    }
                },
                Err(e) if e.status() == Some(409) => {
                    // The master refused this agent as one of another cluster; its message
                    // names both ids and what to do.
                    tracing::error!(
                        master = self.client.http().base(),
                        "the master refuses this agent (its tasks keep running; retrying every {}s): {e}",
                        REFUSED_RETRY.as_secs()
                    );
                    tokio::time::sleep(REFUSED_RETRY).await;
                }
                Err(e) => {
                    attempt += 1;
                    if attempt == 1 {
                        tracing::warn!("cannot register with the master (retrying): {e}");
                    } else {
                        tracing::debug!("cannot register with the master (attempt {attempt}): {e}");
                    }
                    tokio::time::sleep(backoff(attempt)).await;
                }
            }
        }
    }

    /// Registers, then heartbeats forever; registers again when the master forgets the node.
    pub async fn heartbeat_loop(self) {
        let mut changes = self.runner.subscribe();
        loop {
            let capabilities = self.capabilities();
            let interval = self.register().await;
            self.registered.send_replace(true);
            let mut failing = false;
            loop {
                changes.mark_unchanged();
                if self.capabilities() != capabilities {
                    tracing::info!("the node's capabilities changed; registering again");
                    break;
                }
                let req = HeartbeatRequest {
                    host: self.host.borrow().clone(),
                    tasks: self.runner.reports(),
                };
                match bounded(self.client.heartbeat(&self.name, &req)).await {
                    Ok(resp) if resp.registered => {
                        if failing {
                            tracing::info!("the master answers heartbeats again");
                        }
                        failing = false;
                    }
                    Ok(_) => {
                        tracing::info!(
                            "the master asks this node to register (again); registering"
                        );
                        break;
                    }
                    Err(e) if e.status() == Some(404) => {
                        tracing::info!(
                            "the master does not know this node ({e}); registering again"
                        );
                        break;
                    }
                    Err(e) => {
                        if !failing {
                            tracing::warn!("heartbeat failed (tasks keep running; retrying): {e}");
                        }
                        failing = true;
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    r = changes.changed() => {
                        if r.is_err() {
                            tokio::time::sleep(interval).await;
                        }
                    }
                }
            }
            self.registered.send_replace(false);
        }
    }

    /// Long-polls the node's assignments forever and reconciles the runner against each
    /// answer. Only an answer reconciles, so re-adopted tasks are never killed before the
    /// master has said what it wants.
    pub async fn assignments_loop(self) {
        let mut registered = self.registered.subscribe();
        let mut after: Option<String> = None;
        let mut failures = 0u32;
        loop {
            if registered.wait_for(|r| *r).await.is_err() {
                return;
            }
            let query = AssignmentsQuery {
                after: after.clone(),
                wait: Some(LONG_POLL_SECS),
            };
            match self.client.assignments(&self.name, &query).await {
                Ok(answer) => {
                    failures = 0;
                    if let Err(why) = self.membership.is_mine(answer.cluster_id.as_ref()) {
                        // A master that changed under the agent (restarted on another store)
                        // and still knows the node: act on nothing it says.
                        tracing::error!(
                            master = self.client.http().base(),
                            "not applying the master's assignments: {why}"
                        );
                        after = None;
                        tokio::time::sleep(REFUSED_RETRY).await;
                        continue;
                    }
                    let unchanged = after.as_deref() == Some(answer.revision.as_str());
                    // Reconciling makes a sandbox, writes a checkpoint and forks a shim per
                    // new task: seconds for a burst of hundreds. Off the runtime's one
                    // thread, so heartbeats and the API keep answering meanwhile (a stalled
                    // heartbeat gets the node marked unreachable and its tasks lost).
                    let runner = self.runner.clone();
                    let actions =
                        match tokio::task::spawn_blocking(move || runner.reconcile(&answer.tasks))
                            .await
                        {
                            Ok(actions) => actions,
                            Err(e) => {
                                // Ask afresh rather than take this revision as applied.
                                tracing::error!("reconciling the assignments failed: {e}");
                                after = None;
                                tokio::time::sleep(backoff(1)).await;
                                continue;
                            }
                        };
                    if !actions.is_empty() {
                        tracing::debug!(revision = %answer.revision, "reconciled: {actions:?}");
                    }
                    after = Some(answer.revision);
                    if unchanged {
                        // A poll that timed out; a short pause guards against a master
                        // that answers at once without waiting.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                Err(e) => {
                    failures += 1;
                    log_poll_error(&e, failures);
                    // The revision may mean nothing to a restarted master: ask afresh.
                    after = None;
                    tokio::time::sleep(backoff(failures)).await;
                }
            }
        }
    }
}

fn log_poll_error(e: &ClientError, failures: u32) {
    if failures == 1 {
        tracing::warn!("cannot fetch assignments (retrying): {e}");
    } else {
        tracing::debug!("cannot fetch assignments (attempt {failures}): {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_millis(500));
        assert_eq!(backoff(3), Duration::from_millis(1000));
        assert_eq!(backoff(10), Duration::from_millis(5000));
        assert_eq!(backoff(u32::MAX), Duration::from_millis(5000));
    }

    #[test]
    fn heartbeat_interval_is_bounded() {
        assert_eq!(heartbeat_interval(0), Duration::from_millis(100));
        assert_eq!(heartbeat_interval(5000), Duration::from_secs(5));
        assert_eq!(heartbeat_interval(u64::MAX), Duration::from_secs(60));
    }
}
