//! What the app and deployment commands print: the app list, an app's details (with
//! why instances cannot be placed), deployments, and the `--wait` progress line. Pure
//! functions over drover-api values, plus [`follow`], which polls a deployment.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::time::{Duration, Instant};

use anyhow::bail;
use chrono::{DateTime, Utc};
use drover_api::client::{AppChanged, AppDetails};
use drover_api::deployment::{Deployment, DeploymentState};
use drover_api::task::Task;

use crate::context::Context;
use crate::output::{self, fields, num, render, stamp, table, when};

/// `drover apps`: one row per app.
pub fn apps_table(apps: &[AppDetails]) -> String {
    let mut t = table(&[
        "ID",
        "INSTANCES",
        "READY",
        "RUNNING",
        "STAGED",
        "UNHEALTHY",
        "CPUS",
        "MEM",
        "VERSION",
        "DEPLOYMENT",
        "NOTE",
    ]);
    for a in apps {
        let c = a.status.as_ref().map(|s| s.tasks).unwrap_or_default();
        let note = match &a.status {
            _ if a.deleting => "deleting".to_string(),
            Some(s) if s.unplaceable.is_some() => s
                .unplaceable
                .as_ref()
                .map(|u| format!("{} unplaceable", u.count))
                .unwrap_or_default(),
            Some(s) if s.backoff.is_some() => "backing off".to_string(),
            _ => "-".to_string(),
        };
        t.add_row(vec![
            a.app.id.to_string(),
            a.app.instances.to_string(),
            c.ready.to_string(),
            (c.running + c.healthy + c.unhealthy).to_string(),
            c.staged.to_string(),
            c.unhealthy.to_string(),
            num(a.app.resources.cpus),
            num(a.app.resources.mem),
            a.app.version.clone().unwrap_or_else(|| "-".into()),
            a.deployment
                .as_ref()
                .map(|d| format!("{} {}%", d.kind, d.percent()))
                .unwrap_or_else(|| "-".into()),
            note,
        ]);
    }
    render(&t)
}

/// `drover apps show APP`: the definition's essentials, the status, and the tasks.
pub fn app_details(a: &AppDetails, tasks: &[Task], now: DateTime<Utc>) -> String {
    let def = &a.app;
    let command = def
        .cmd
        .clone()
        .or_else(|| def.args.as_ref().map(|x| x.join(" ")))
        .or_else(|| def.image().map(|i| format!("(image {i})")))
        .unwrap_or_else(|| "-".into());
    let mut rows = vec![
        ("ID", def.id.to_string()),
        ("Version", def.version.clone().unwrap_or_else(|| "-".into())),
        ("Command", command),
        ("Instances", def.instances.to_string()),
        ("Resources", output::resources(&def.resources)),
    ];
    if !def.constraints.is_empty() {
        rows.push((
            "Constraints",
            def.constraints
                .iter()
                .map(|c| c.to_marathon().to_string())
                .collect::<Vec<_>>()
                .join(" "),
        ));
    }
    if a.deleting {
        rows.push(("State", "deleting".into()));
    }
    if let Some(s) = &a.status {
        let c = s.tasks;
        rows.push((
            "Tasks",
            format!(
                "{} ready, {} running, {} healthy, {} unhealthy, {} staged, {} stopping",
                c.ready, c.running, c.healthy, c.unhealthy, c.staged, c.stopping
            ),
        ));
        if let Some(v) = &s.last_healthy_version {
            rows.push(("Last healthy", v.clone()));
        }
        if let Some(u) = &s.unplaceable {
            rows.push((
                "Unplaceable",
                format!("{} instance(s): {}", u.count, u.message),
            ));
            for r in &u.reasons {
                rows.push((
                    "",
                    format!("{} (on {} of {} nodes)", r.reason, r.nodes, u.total_nodes),
                ));
            }
        }
        if let Some(b) = &s.backoff {
            rows.push((
                "Backoff",
                format!(
                    "{} failure(s) in a row, delay {}s{}",
                    b.consecutive_failures,
                    num(b.delay_seconds),
                    b.not_before
                        .map(|t| format!(", next launch at {}", stamp(t)))
                        .unwrap_or_default()
                ),
            ));
        }
        for w in &s.waiting {
            rows.push(("Waiting", w.clone()));
        }
    } else {
        rows.push(("Tasks", "not looked at yet".into()));
    }
    if let Some(d) = &a.deployment {
        rows.push((
            "Deployment",
            format!(
                "{} {} {}% (started {})",
                d.id,
                d.kind,
                d.percent(),
                when(d.started_at, now)
            ),
        ));
    }
    let mut s = fields(&rows);
    if !tasks.is_empty() {
        s.push_str("\nTasks\n");
        for line in output::tasks_table(tasks, now).lines() {
            let _ = writeln!(s, "  {line}");
        }
    }
    s
}

/// `drover deployments`: one row per deployment, newest first.
pub fn deployments_table(ds: &[Deployment]) -> String {
    let mut t = table(&[
        "ID", "APP", "KIND", "STATE", "PROGRESS", "VERSION", "STARTED", "MESSAGE",
    ]);
    for d in ds {
        t.add_row(vec![
            d.id.to_string(),
            d.app_id.to_string(),
            d.kind.to_string(),
            d.state.to_string(),
            format!(
                "{}% ({}/{} ready, {} to stop)",
                d.percent(),
                d.progress.ready,
                d.progress.target_instances,
                d.progress.to_stop
            ),
            d.version.clone(),
            stamp(d.started_at),
            d.message.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    render(&t)
}

/// `drover deployments show ID`.
pub fn deployment_details(d: &Deployment, now: DateTime<Utc>) -> String {
    let p = &d.progress;
    let mut rows = vec![
        ("ID", d.id.to_string()),
        ("App", d.app_id.to_string()),
        ("Kind", d.kind.to_string()),
        ("State", d.state.to_string()),
        ("Version", d.version.clone()),
        (
            "Previous",
            d.previous_version.clone().unwrap_or_else(|| "-".into()),
        ),
        (
            "Progress",
            format!(
                "{}%: {} of {} ready, {} starting, {} to stop",
                d.percent(),
                p.ready,
                p.target_instances,
                p.starting,
                p.to_stop
            ),
        ),
        ("Started", when(d.started_at, now)),
    ];
    if let Some(t) = d.finished_at {
        rows.push(("Finished", when(t, now)));
    }
    if let Some(t) = p.deadline_at.filter(|_| d.is_running()) {
        rows.push(("Deadline", stamp(t)));
    }
    if let Some(m) = &d.message {
        rows.push(("Message", m.clone()));
    }
    if let Some(v) = &d.revert_to {
        rows.push(("Reverts to", v.clone()));
    }
    if let Some(s) = &d.superseded_by {
        rows.push(("Superseded by", s.to_string()));
    }
    let mut s = fields(&rows);
    s.push_str("\nSteps\n");
    for (i, step) in d.steps.iter().enumerate() {
        let _ = writeln!(s, "  {}. {} ({:?})", i + 1, step.action, step.status);
    }
    s
}

/// What a change printed: `app /web: update deployment ... (ignored: ...)`.
pub fn changed_text(c: &AppChanged) -> String {
    let mut s = format!(
        "app {} {}: deployment {} ({}) to version {}\n",
        c.app.id,
        if c.created { "created" } else { "changed" },
        c.deployment.id,
        c.deployment.kind,
        c.deployment.version
    );
    if !c.superseded.is_empty() {
        let ids: Vec<String> = c.superseded.iter().map(ToString::to_string).collect();
        let _ = writeln!(s, "superseded: {}", ids.join(", "));
    }
    if !c.ignored.is_empty() {
        let _ = writeln!(s, "note: kept but not acted on: {}", c.ignored.join(", "));
    }
    s
}

/// A text progress bar: `[########------------]  40%`.
pub fn bar(percent: u32) -> String {
    let filled = (percent.min(100) / 5) as usize;
    format!(
        "[{}{}] {:>3}%",
        "#".repeat(filled),
        "-".repeat(20 - filled),
        percent.min(100)
    )
}

/// Prints what a change did, then with `wait` follows its deployment to the end.
pub async fn report_change(
    ctx: &Context,
    c: &AppChanged,
    wait: bool,
    timeout: u64,
) -> anyhow::Result<()> {
    if ctx.json && !wait {
        return output::print_json(c);
    }
    if !ctx.json {
        output::emit(&changed_text(c))?;
    }
    if wait {
        let d = follow(ctx, c.deployment.id.as_str(), timeout).await?;
        if ctx.json {
            output::print_json(&d)?;
        }
        if d.state != DeploymentState::Succeeded {
            bail!(
                "deployment {} {}: {}",
                d.id,
                d.state,
                d.message.as_deref().unwrap_or("no reason given")
            );
        }
    }
    Ok(())
}

/// Polls a deployment until it ends (or `timeout` seconds pass), drawing a progress bar
/// on stderr; returns its final record.
pub async fn follow(ctx: &Context, id: &str, timeout: u64) -> anyhow::Result<Deployment> {
    let sched = ctx.scheduler()?;
    let deadline = Instant::now() + Duration::from_secs(timeout);
    // On a terminal the line is redrawn in place; in a log each change is a line of its own.
    let redraw = std::io::stderr().is_terminal();
    let end_line = if redraw { "\n" } else { "" };
    let mut last_line = String::new();
    loop {
        let d = ctx.call_scheduler(sched.deployment(id)).await?;
        let p = &d.progress;
        let line = format!(
            "{} {} {}: {} of {} ready, {} starting, {} to stop",
            bar(d.percent()),
            d.app_id,
            d.kind,
            p.ready,
            p.target_instances,
            p.starting,
            p.to_stop
        );
        if line != last_line {
            let mut err = std::io::stderr().lock();
            let _ = if redraw {
                write!(err, "\r{line}\x1b[K")
            } else {
                writeln!(err, "{line}")
            };
            let _ = err.flush();
            last_line = line;
        }
        if !d.is_running() {
            eprintln!("{end_line}{} {}", d.id, d.state);
            return Ok(d);
        }
        if Instant::now() > deadline {
            eprint!("{end_line}");
            bail!(
                "deployment {id} still running after {timeout}s (it goes on; `drover deployments show {id}`)"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_fill_by_percent() {
        assert_eq!(bar(0), "[--------------------]   0%");
        assert_eq!(bar(50), "[##########----------]  50%");
        assert_eq!(bar(100), "[####################] 100%");
    }
}
