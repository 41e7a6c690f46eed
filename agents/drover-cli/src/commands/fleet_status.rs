//! `drover fleet status`: every selected host's binaries (version, checksum) read over
//! SSH, and whether each is healthy as the master (or the scheduler) sees it.

use drover_api::client::SchedulerClient;
use drover_api::node::Node;
use drover_fleet::host::Role;
use drover_fleet::rollout;
use serde::Serialize;

use crate::cli::{FleetCommonArgs, GlobalArgs};
use crate::context::Context;
use crate::fleet_output;
use crate::output;

/// One row: a binary on a host.
#[derive(Debug, Serialize)]
struct Row {
    host: String,
    binary: &'static str,
    /// What `--version` says on the host (`None`: not installed or unreachable).
    version: Option<String>,
    sha256: Option<String>,
    /// `healthy`, or what is wrong.
    health: String,
    healthy: bool,
}

/// Prints the table (or JSON); fails when a host is unreachable or unhealthy.
pub async fn run(ctx: &Context, global: &GlobalArgs, args: &FleetCommonArgs) -> anyhow::Result<()> {
    let loaded = fleet_output::load(ctx, global, args)?;
    let scans = rollout::scan(&loaded.hosts, &loaded.ssh, args.parallel).await;
    let master_version = loaded.master.version().await.ok().map(|v| v.version);
    // An agent is healthy only as the master lists it: when the nodes cannot be read,
    // every agent says why instead of passing for unregistered.
    let nodes: Result<Vec<Node>, String> = loaded
        .master
        .nodes()
        .await
        .map_err(|e| crate::context::root_cause(&e));
    let mut rows = Vec::new();
    for h in &loaded.hosts {
        for role in &h.roles {
            let (version, sha256, reach) = match scans.get(&h.name) {
                Some(Ok(s)) => match s.get(role).cloned().flatten() {
                    Some(i) => (Some(i.version), Some(i.sha256), None),
                    None => (None, None, Some("not installed".to_string())),
                },
                Some(Err(e)) => (None, None, Some(e.clone())),
                None => (None, None, Some("not scanned".into())),
            };
            let health = match reach {
                Some(why) => why,
                None => match role {
                    Role::Master => match &master_version {
                        Some(_) => "healthy".into(),
                        None => format!("the master at {} does not answer", loaded.master_url),
                    },
                    Role::Scheduler => {
                        match SchedulerClient::new(&h.scheduler_url, loaded.token.clone()) {
                            Ok(c) => match c.version().await {
                                Ok(_) => "healthy".into(),
                                Err(e) => format!("the scheduler does not answer: {e}"),
                            },
                            Err(e) => format!("bad scheduler URL: {e}"),
                        }
                    }
                    Role::Agent => match nodes
                        .as_ref()
                        .map(|n| n.iter().find(|n| n.name == h.node_name))
                    {
                        Err(e) => format!(
                            "cannot read the nodes at the master {}: {e}",
                            loaded.master_url
                        ),
                        Ok(None) => "not registered at the master".into(),
                        Ok(Some(n)) if n.state == drover_api::node::NodeState::Unreachable => {
                            "unreachable at the master".into()
                        }
                        Ok(Some(n)) if Some(&n.version) != version.as_ref() => format!(
                            "registered with version {}, installed binary is another",
                            n.version
                        ),
                        Ok(Some(n)) if n.state == drover_api::node::NodeState::Draining => {
                            "healthy (draining)".into()
                        }
                        Ok(Some(_)) => "healthy".into(),
                    },
                },
            };
            rows.push(Row {
                host: h.name.clone(),
                binary: role.binary(),
                version,
                sha256,
                healthy: health.starts_with("healthy"),
                health,
            });
        }
    }
    if ctx.json {
        output::print_json(&rows)?;
    } else {
        let mut t = fleet_output::table(&["HOST", "BINARY", "VERSION", "SHA256", "HEALTH"]);
        for r in &rows {
            t.add_row(vec![
                r.host.clone(),
                r.binary.to_string(),
                r.version.clone().unwrap_or_else(|| "-".into()),
                r.sha256
                    .as_deref()
                    .map(|s| s.chars().take(12).collect())
                    .unwrap_or_else(|| "-".into()),
                r.health.clone(),
            ]);
        }
        output::emit(&format!("{t}\n"))?;
    }
    let bad = rows.iter().filter(|r| !r.healthy).count();
    if bad > 0 {
        anyhow::bail!("{bad} of {} binaries are not healthy", rows.len());
    }
    Ok(())
}
