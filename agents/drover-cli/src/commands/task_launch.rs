//! `drover tasks launch --node N [options] -- CMD...`: run a command on a node.
//!
//! Prints the new task's id alone (or the task as JSON), so scripts can write
//! `id=$(drover tasks launch --node n1 -- sleep 60)`.

use std::collections::BTreeMap;

use anyhow::bail;
use drover_api::Resources;
use drover_api::task::{HealthCheck, HealthProtocol, LaunchRequest, PortRequest, TaskDefinition};

use crate::cli::TaskLaunchArgs;
use crate::context::Context;
use crate::output;

/// Builds the launch request from the command line; no I/O.
pub fn request(args: &TaskLaunchArgs) -> anyhow::Result<LaunchRequest> {
    if args.command.is_empty() || args.command.iter().all(|w| w.trim().is_empty()) {
        bail!("give the command to run after `--`");
    }
    let (cmd, argv) = if args.argv {
        (None, Some(args.command.clone()))
    } else {
        (Some(args.command.join(" ")), None)
    };
    let name = match &args.name {
        Some(n) => n.clone(),
        None => default_name(&args.command),
    };
    let ports: Vec<PortRequest> = args
        .ports
        .iter()
        .map(|n| PortRequest {
            name: Some(n.clone()).filter(|n| !n.is_empty()),
            port: 0,
        })
        .collect();
    let mut health_checks = Vec::new();
    if let Some(check) = health_check(args) {
        if check.protocol != HealthProtocol::Command && ports.is_empty() {
            bail!("--health-http and --health-tcp check the task's first port: add --port");
        }
        health_checks.push(check);
    }
    Ok(LaunchRequest {
        node: args.node.clone(),
        id: None,
        task: TaskDefinition {
            name,
            cmd,
            args: argv,
            env: args.env.iter().cloned().collect::<BTreeMap<_, _>>(),
            resources: Resources::new(args.cpus, args.mem, args.disk),
            ports,
            health_checks,
            kill_grace_period_seconds: args.grace,
            labels: args.labels.iter().cloned().collect::<BTreeMap<_, _>>(),
            container: None,
            user: None,
        },
    })
}

/// The health check the flags ask for, with Marathon's defaults where not given.
fn health_check(args: &TaskLaunchArgs) -> Option<HealthCheck> {
    let mut check = if let Some(path) = &args.health_http {
        let mut c = HealthCheck::new(HealthProtocol::Http);
        c.path = Some(path.clone());
        c
    } else if args.health_tcp {
        HealthCheck::new(HealthProtocol::Tcp)
    } else if let Some(cmd) = &args.health_cmd {
        let mut c = HealthCheck::new(HealthProtocol::Command);
        c.command = Some(cmd.clone());
        c
    } else {
        return None;
    };
    if check.protocol != HealthProtocol::Command {
        check.port_index = Some(0);
    }
    if let Some(v) = args.health_interval {
        check.interval_seconds = v;
    }
    if let Some(v) = args.health_grace {
        check.grace_period_seconds = v;
    }
    if let Some(v) = args.health_timeout {
        check.timeout_seconds = v;
    }
    if let Some(v) = args.health_delay {
        check.delay_seconds = v;
    }
    if let Some(v) = args.health_max_failures {
        check.max_consecutive_failures = v;
    }
    Some(check)
}

/// A task name from the command: the base name of its first word, in the characters a
/// task id allows (`/usr/bin/python3 -m http.server` gives `python3`).
pub fn default_name(command: &[String]) -> String {
    let first = command
        .iter()
        .flat_map(|w| w.split_whitespace())
        .next()
        .unwrap_or("");
    let base = first.rsplit('/').next().unwrap_or(first);
    let clean: String = base
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .take(64)
        .collect();
    let clean = clean.trim_start_matches('.').to_string();
    if clean.is_empty() {
        "task".into()
    } else {
        clean
    }
}

/// Launches the task and prints its id.
pub async fn run(ctx: &Context, args: &TaskLaunchArgs) -> anyhow::Result<()> {
    let req = request(args)?;
    let task = ctx.call(ctx.master().launch(&req)).await?;
    if ctx.json {
        return output::print_json(&task);
    }
    output::emit(&format!("{}\n", task.id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(ws: &[&str]) -> Vec<String> {
        ws.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_come_from_the_first_word() {
        assert_eq!(
            default_name(&words(&["/usr/bin/python3", "-m", "http.server"])),
            "python3"
        );
        assert_eq!(default_name(&words(&["sleep 10"])), "sleep");
        assert_eq!(default_name(&words(&["$(weird)"])), "weird");
        assert_eq!(default_name(&words(&["'"])), "task");
    }
}
