//! What the job commands print: the job list, a job's details, run history, stats and
//! the dependency graph. Pure functions over drover-api values (and `now`, for ages).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use drover_api::client::JobDetails;
use drover_api::job::ChronosJob;
use drover_api::job_run::{JobRun, JobStats, RunTrigger};

use crate::output::{fields, num, render, stamp, table, when};

fn opt_stamp(t: Option<DateTime<Utc>>) -> String {
    t.map(stamp).unwrap_or_else(|| "-".into())
}

/// What triggers the job: its schedule, or `after a, b`.
pub fn trigger(job: &ChronosJob) -> String {
    match &job.schedule {
        Some(s) => s.clone(),
        None => format!("after {}", job.parents.join(", ")),
    }
}

/// `drover jobs`: one row per job, by name.
pub fn jobs_table(jobs: &[JobDetails]) -> String {
    let mut t = table(&[
        "NAME",
        "STATE",
        "SCHEDULE / PARENTS",
        "NEXT RUN (UTC)",
        "OK",
        "ERR",
        "LAST SUCCESS",
        "LAST ERROR",
    ]);
    let mut jobs: Vec<&JobDetails> = jobs.iter().collect();
    jobs.sort_by(|a, b| a.job.name.cmp(&b.job.name));
    for d in jobs {
        let s = &d.status.stats;
        t.add_row(vec![
            d.job.name.clone(),
            d.status.state.to_string(),
            trigger(&d.job),
            d.status
                .upcoming
                .first()
                .map(|u| stamp(u.at))
                .unwrap_or_else(|| "-".into()),
            s.success_count.to_string(),
            s.error_count.to_string(),
            opt_stamp(s.last_success),
            opt_stamp(s.last_error),
        ]);
    }
    render(&t)
}

/// `drover jobs show NAME`: definition, state, next runs, open runs and stats.
pub fn job_details(d: &JobDetails, now: DateTime<Utc>) -> String {
    let j = &d.job;
    let st = &d.status;
    let mut rows = vec![
        ("Name", j.name.clone()),
        ("State", st.state.to_string()),
        (
            "Command",
            if j.shell {
                j.command.clone()
            } else {
                format!("{} {}", j.command, j.arguments.join(" "))
            },
        ),
        ("Trigger", trigger(j)),
        ("Zone", st.zone.clone()),
        ("Epsilon", j.epsilon.to_string()),
        ("Retries", j.retries.to_string()),
        ("Concurrent", j.concurrent.to_string()),
        ("Resources", {
            let r = j.resources();
            format!(
                "cpus {} mem {} MiB disk {} MiB",
                num(r.cpus),
                num(r.mem),
                num(r.disk)
            )
        }),
    ];
    if let Some(o) = &j.owner {
        rows.push(("Owner", o.clone()));
    }
    if !st.waiting_for.is_empty() {
        rows.push(("Waiting for", st.waiting_for.join(", ")));
    }
    let mut s = fields(&rows);
    if !st.upcoming.is_empty() {
        s.push_str("\nNext runs\n");
        let mut t = table(&["UTC", &format!("LOCAL ({})", st.zone)]);
        for u in &st.upcoming {
            t.add_row(vec![stamp(u.at), u.local.clone()]);
        }
        s.push_str(&render(&t));
    }
    if !st.active.is_empty() {
        s.push_str("\nActive runs\n");
        s.push_str(&runs_table(&st.active, now));
    }
    s.push_str("\nStats\n");
    s.push_str(&stats_text(&st.stats, now));
    s
}

fn trigger_name(t: &RunTrigger) -> String {
    match t {
        RunTrigger::Schedule => "schedule".into(),
        RunTrigger::Dependency => "dependency".into(),
        RunTrigger::Manual { arguments } if arguments.is_empty() => "manual".into(),
        RunTrigger::Manual { arguments } => format!("manual {}", arguments.join(" ")),
        RunTrigger::Retry { .. } => "retry".into(),
    }
}

/// `drover jobs history NAME`: one row per attempt, newest first.
pub fn runs_table(runs: &[JobRun], _now: DateTime<Utc>) -> String {
    let mut t = table(&[
        "RUN",
        "ATTEMPT",
        "TRIGGER",
        "STATE",
        "SCHEDULED (UTC)",
        "LATE",
        "DURATION",
        "EXIT",
        "NODE",
        "MESSAGE",
    ]);
    for r in runs {
        t.add_row(vec![
            r.number.to_string(),
            r.attempt.to_string(),
            trigger_name(&r.trigger),
            r.state.to_string(),
            stamp(r.scheduled_for),
            r.lateness_seconds()
                .map(|l| format!("{l:.3}s"))
                .unwrap_or_else(|| "-".into()),
            r.duration_seconds
                .map(|d| format!("{d:.2}s"))
                .unwrap_or_else(|| "-".into()),
            r.exit.map(|e| e.to_string()).unwrap_or_else(|| "-".into()),
            r.node.clone().unwrap_or_else(|| "-".into()),
            r.message.clone().unwrap_or_default(),
        ]);
    }
    render(&t)
}

/// `drover jobs stats NAME`.
pub fn stats_text(s: &JobStats, now: DateTime<Utc>) -> String {
    let mut rows = vec![
        ("Succeeded", s.success_count.to_string()),
        ("Failed", s.error_count.to_string()),
        ("Killed", s.killed_count.to_string()),
        ("Skipped", s.skipped_count.to_string()),
        (
            "Last success",
            s.last_success
                .map(|t| when(t, now))
                .unwrap_or_else(|| "-".into()),
        ),
        (
            "Last error",
            s.last_error
                .map(|t| when(t, now))
                .unwrap_or_else(|| "-".into()),
        ),
    ];
    if let Some(d) = &s.durations {
        rows.push((
            "Durations",
            format!("over the last {} runs, seconds", d.count),
        ));
        rows.push(("  median", format!("{:.3}", d.median)));
        rows.push(("  mean", format!("{:.3}", d.mean)));
        rows.push(("  p75", format!("{:.3}", d.p75)));
        rows.push(("  p95", format!("{:.3}", d.p95)));
        rows.push(("  p99", format!("{:.3}", d.p99)));
    }
    fields(&rows)
}

/// `drover jobs graph`: each job without parents, then its children indented under it
/// (a job with several parents appears under each).
pub fn graph_text(jobs: &[ChronosJob]) -> String {
    let mut children: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for j in jobs {
        for p in &j.parents {
            children
                .entry(p.as_str())
                .or_default()
                .insert(j.name.as_str());
        }
    }
    let mut roots: Vec<&ChronosJob> = jobs.iter().filter(|j| j.parents.is_empty()).collect();
    roots.sort_by(|a, b| a.name.cmp(&b.name));
    let mut s = String::new();
    fn walk<'a>(
        s: &mut String,
        name: &'a str,
        depth: usize,
        children: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        path: &mut Vec<&'a str>,
    ) {
        let indent = if depth == 0 {
            String::new()
        } else {
            format!("{}└─ ", "   ".repeat(depth - 1))
        };
        let _ = writeln!(s, "{indent}{name}");
        // The server refuses cycles; the guard only keeps a bad answer from looping.
        if path.contains(&name) || depth > 64 {
            return;
        }
        path.push(name);
        if let Some(cs) = children.get(name) {
            for c in cs {
                walk(s, c, depth + 1, children, path);
            }
        }
        path.pop();
    }
    for r in roots {
        walk(&mut s, &r.name, 0, &children, &mut Vec::new());
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use drover_api::job::parse_job;
    use serde_json::json;

    #[test]
    fn graph_indents_children_under_parents() {
        let jobs: Vec<ChronosJob> = [
            json!({"name": "a", "command": "true", "schedule": "R/2026-01-01T00:00:00Z/P1D"}),
            json!({"name": "b", "command": "true", "parents": ["a"]}),
            json!({"name": "c", "command": "true", "parents": ["a"]}),
            json!({"name": "d", "command": "true", "parents": ["b", "c"]}),
        ]
        .iter()
        .map(|v| parse_job(v).unwrap().0)
        .collect();
        let text = graph_text(&jobs);
        assert_eq!(text, "a\n└─ b\n   └─ d\n└─ c\n   └─ d\n");
    }
}
