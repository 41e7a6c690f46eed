//! What the CLI prints: tables and detail views for people, JSON for scripts.
//!
//! Everything here is a pure function from drover-api values (and the current time, for
//! ages) to text, so the layout is tested without a master.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::Context as _;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use comfy_table::{ContentArrangement, Table, presets};
use drover_api::meta::VersionInfo;
use drover_api::node::{Capability, Node};
use drover_api::task::{HealthProtocol, Task, TaskDefinition};
use drover_api::{Resources, TaskState};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

/// `drover version --json`: the CLI's version and the master's, when it answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionReport {
    /// This CLI.
    pub cli: VersionInfo,
    /// The master's answer to `GET /v1/version`, if it could be reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<VersionInfo>,
}

/// Writes `text` to stdout; a closed pipe (`drover tasks | head`) is not an error.
pub fn emit(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("failed to write to stdout"))
        }
        _ => Ok(()),
    }
}

/// Copies a byte stream (a task's output) to stdout as it arrives; a closed pipe ends it
/// quietly, as in [`emit`]. `error` explains a stream that breaks off.
pub async fn emit_stream<B: AsRef<[u8]>, E>(
    stream: impl Stream<Item = Result<B, E>>,
    error: impl Fn(E) -> anyhow::Error,
) -> anyhow::Result<()> {
    let mut stream = std::pin::pin!(stream);
    let mut out = tokio::io::stdout();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(&error).context("the log stream broke off")?;
        match out.write_all(chunk.as_ref()).await.and(out.flush().await) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e).context("failed to write to stdout"),
        }
    }
    Ok(())
}

/// Pretty JSON of any drover-api value, with a trailing newline.
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<String> {
    let mut s = serde_json::to_string_pretty(value)?;
    s.push('\n');
    Ok(s)
}

/// Prints a value as JSON on stdout.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    emit(&to_json(value)?)
}

/// A borderless table: columns separated by two spaces, headers in capitals.
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(presets::NOTHING);
    t.set_content_arrangement(ContentArrangement::Disabled);
    t.set_header(header.to_vec());
    for col in t.column_iter_mut() {
        col.set_padding((0, 2));
    }
    t
}

/// Renders a table with trailing spaces trimmed and a final newline.
pub fn render(t: &Table) -> String {
    let mut s = t.trim_fmt();
    s.push('\n');
    s
}

/// A number without needless decimals: `0.1`, `1.5`, `32`, `0.33`.
pub fn num(v: f64) -> String {
    let r = (v * 100.0).round() / 100.0;
    if r == r.trunc() && r.abs() < 1e15 {
        format!("{}", r as i64)
    } else {
        let s = format!("{r:.2}");
        s.trim_end_matches('0').to_string()
    }
}

/// A duration as people read it: `42s`, `5m`, `3h12m`, `4d2h`.
pub fn age(d: TimeDelta) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => match (s % 3600) / 60 {
            0 => format!("{}h", s / 3600),
            m => format!("{}h{m}m", s / 3600),
        },
        _ => match (s % 86_400) / 3600 {
            0 => format!("{}d", s / 86_400),
            h => format!("{}d{h}h", s / 86_400),
        },
    }
}

/// A timestamp to the second: `2026-01-02T03:04:05Z`.
pub fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A timestamp with how long ago it was: `2026-01-02T03:04:05Z (5m ago)`.
pub fn when(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!("{} ({} ago)", stamp(t), age(now - t))
}

/// `k=v,k2=v2`, or `-` when empty.
pub fn key_values(map: &BTreeMap<String, String>) -> String {
    if map.is_empty() {
        return "-".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The command a task runs, as one line: the shell command, or the argv quoted for a shell.
pub fn command_line(def: &TaskDefinition) -> String {
    if let Some(cmd) = def.cmd.as_deref().filter(|c| !c.is_empty()) {
        return cmd.to_string();
    }
    if let Some(args) = &def.args {
        return args
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ");
    }
    match &def.container {
        Some(c) => format!("(container {c})"),
        None => "-".into(),
    }
}

fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A task's host ports, `http:31000,31001` (the port's name first when it has one).
pub fn task_ports(task: &Task) -> String {
    if task.spec.host_ports.is_empty() {
        return "-".into();
    }
    task.spec
        .host_ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            match task
                .spec
                .definition
                .ports
                .get(i)
                .and_then(|p| p.name.as_deref())
            {
                Some(name) => format!("{name}:{port}"),
                None => port.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn free_total(free: f64, total: f64) -> String {
    format!("{}/{}", num(free), num(total))
}

/// `drover nodes`: one row per node, sorted by name.
pub fn nodes_table(nodes: &[Node]) -> String {
    let mut t = table(&[
        "NAME",
        "STATE",
        "VERSION",
        "CPUS free/total",
        "MEM MiB free/total",
        "DISK MiB free/total",
        "TASKS",
        "LOAD 1m",
        "ATTRIBUTES",
    ]);
    let mut nodes: Vec<&Node> = nodes.iter().collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    for n in nodes {
        t.add_row(vec![
            n.name.clone(),
            node_state(n),
            n.version.clone(),
            free_total(n.free.cpus, n.total.cpus),
            free_total(n.free.mem, n.total.mem),
            free_total(n.free.disk, n.total.disk),
            n.active_tasks.to_string(),
            format!("{:.2}", n.host.load_avg[0]),
            key_values(&n.attributes),
        ]);
    }
    render(&t)
}

/// A node's state, noting a drain that outlives unreachability.
fn node_state(n: &Node) -> String {
    if n.draining && n.state != drover_api::node::NodeState::Draining {
        format!("{} (draining)", n.state)
    } else {
        n.state.to_string()
    }
}

/// Key-value lines with the keys padded to one width.
pub fn fields(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut s = String::new();
    for (k, v) in rows {
        let _ = writeln!(s, "{k:<width$}  {v}");
    }
    s
}

/// `cpus 0.5, mem 128 MiB, disk 0 MiB`.
pub fn resources(r: &Resources) -> String {
    format!(
        "cpus {}, mem {} MiB, disk {} MiB",
        num(r.cpus),
        num(r.mem),
        num(r.disk)
    )
}

fn resources_row(label: &str, r: &Resources) -> Vec<String> {
    vec![label.to_string(), num(r.cpus), num(r.mem), num(r.disk)]
}

/// `drover nodes show NODE`: the node, its host, its resource ledger and its tasks.
pub fn node_details(n: &Node, tasks: &[Task], now: DateTime<Utc>) -> String {
    let mut s = fields(&[
        ("Name", n.name.clone()),
        ("State", node_state(n)),
        ("Address", n.address.clone()),
        ("Version", n.version.clone()),
        ("Attributes", key_values(&n.attributes)),
        (
            "Capabilities",
            if n.capabilities.is_empty() {
                "-".into()
            } else {
                n.capabilities
                    .iter()
                    .map(Capability::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            },
        ),
        (
            "Ports",
            format!(
                "{} ({} of {} in use)",
                n.ports,
                n.ports_allocated,
                n.ports.len()
            ),
        ),
        (
            "Active tasks",
            match n.max_tasks {
                Some(max) => format!("{} (at most {max})", n.active_tasks),
                None => n.active_tasks.to_string(),
            },
        ),
        ("Registered", when(n.registered_at, now)),
        ("Last heartbeat", when(n.last_heartbeat_at, now)),
    ]);
    let h = &n.host;
    s.push_str("\nHost\n");
    s.push_str(&indent(&fields(&[
        ("Hostname", h.hostname.clone()),
        ("OS", h.os.clone()),
        ("Kernel", h.kernel.clone()),
        ("CPUs", h.cpus.to_string()),
        ("CPU use", format!("{:.1}%", h.cpu_usage_percent)),
        (
            "Load",
            format!(
                "{:.2} {:.2} {:.2}",
                h.load_avg[0], h.load_avg[1], h.load_avg[2]
            ),
        ),
        (
            "Memory MiB",
            format!(
                "{:.0} available of {:.0}",
                h.mem_available_mb, h.mem_total_mb
            ),
        ),
        (
            "Disk MiB",
            format!(
                "{:.0} available of {:.0}",
                h.disk_available_mb, h.disk_total_mb
            ),
        ),
    ])));
    s.push_str("\nResources\n");
    let mut t = table(&["", "CPUS", "MEM MiB", "DISK MiB"]);
    t.add_row(resources_row("total", &n.total));
    t.add_row(resources_row("reserved", &n.reserved));
    t.add_row(resources_row("allocated", &n.allocated));
    t.add_row(resources_row("free", &n.free));
    s.push_str(&indent(&render(&t)));
    s.push_str("\nTasks\n");
    if tasks.is_empty() {
        s.push_str("  none\n");
    } else {
        s.push_str(&indent(&tasks_table(tasks, now)));
    }
    s
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_string()
            } else {
                format!("  {l}\n")
            }
        })
        .collect()
}

/// `drover tasks`: one row per task, oldest first; an EXIT column when any has ended.
pub fn tasks_table(tasks: &[Task], now: DateTime<Utc>) -> String {
    let with_exit = tasks.iter().any(|t| t.state.is_terminal());
    let mut header = vec![
        "ID", "NAME", "NODE", "STATE", "PID", "PORTS", "CPUS", "MEM", "AGE",
    ];
    if with_exit {
        header.push("EXIT");
    }
    let mut t = table(&header);
    let mut tasks: Vec<&Task> = tasks.iter().collect();
    tasks.sort_by(|a, b| {
        a.staged_at
            .cmp(&b.staged_at)
            .then_with(|| a.id().cmp(b.id()))
    });
    for task in tasks {
        let def = &task.spec.definition;
        let mut row = vec![
            task.id().to_string(),
            def.name.clone(),
            task.spec.node.clone(),
            task.state.to_string(),
            task.pid.map_or_else(|| "-".into(), |p| p.to_string()),
            task_ports(task),
            num(def.resources.cpus),
            num(def.resources.mem),
            age(now - task.started_at.unwrap_or(task.staged_at)),
        ];
        if with_exit {
            row.push(match (task.state.is_terminal(), task.exit) {
                (true, Some(e)) => e.to_string(),
                _ => "-".into(),
            });
        }
        t.add_row(row);
    }
    render(&t)
}

/// `drover tasks show TASK`: everything the master knows about the task.
pub fn task_details(task: &Task, now: DateTime<Utc>) -> String {
    let def = &task.spec.definition;
    let opt_time = |t: Option<DateTime<Utc>>| t.map_or_else(|| "-".into(), |t| when(t, now));
    let mut rows = vec![
        ("ID", task.id().to_string()),
        ("Name", def.name.clone()),
        ("Node", task.spec.node.clone()),
        ("State", task.state.to_string()),
        ("Goal", format!("{:?}", task.goal).to_lowercase()),
        (
            "PID",
            task.pid.map_or_else(|| "-".into(), |p| p.to_string()),
        ),
    ];
    if let Some(exit) = task.exit {
        rows.push(("Exit", exit.to_string()));
    }
    if let Some(m) = &task.message {
        rows.push(("Message", m.clone()));
    }
    rows.extend([
        ("Command", command_line(def)),
        ("Resources", resources(&def.resources)),
        ("Ports", task_ports(task)),
        (
            "Kill grace",
            format!("{}s", num(def.kill_grace_period_seconds)),
        ),
        ("Env", key_values(&def.env)),
        ("Labels", key_values(&def.labels)),
    ]);
    if let Some(user) = &def.user {
        rows.push(("User", user.clone()));
    }
    rows.extend([
        ("Staged", when(task.staged_at, now)),
        ("Started", opt_time(task.started_at)),
        ("Finished", opt_time(task.finished_at)),
        ("Updated", when(task.updated_at, now)),
    ]);
    for hc in &def.health_checks {
        let what = match hc.protocol {
            HealthProtocol::Http => format!("HTTP {}", hc.path.as_deref().unwrap_or("/")),
            HealthProtocol::Tcp => "TCP".to_string(),
            HealthProtocol::Command => format!("COMMAND {}", hc.command.as_deref().unwrap_or("")),
        };
        let port = match (hc.port, hc.port_index) {
            (Some(p), _) => format!(" on port {p}"),
            (None, Some(i)) => format!(" on port index {i}"),
            (None, None) if hc.protocol != HealthProtocol::Command => " on port index 0".into(),
            _ => String::new(),
        };
        rows.push((
            "Health check",
            format!(
                "{what}{port} every {}s (timeout {}s, grace {}s, delay {}s, unhealthy after {} failures)",
                num(hc.interval_seconds),
                num(hc.timeout_seconds),
                num(hc.grace_period_seconds),
                num(hc.delay_seconds),
                hc.max_consecutive_failures
            ),
        ));
    }
    if let Some(h) = &task.health {
        let mut v = format!(
            "{}, {} failure(s) in a row",
            if h.alive { "alive" } else { "failing" },
            h.consecutive_failures
        );
        if let Some(t) = h.last_check_at {
            let _ = write!(v, ", last check {} ago", age(now - t));
        }
        if let Some(f) = &h.last_failure {
            let _ = write!(v, ", last failure: {f}");
        }
        rows.push(("Health", v));
    }
    fields(&rows)
}

/// One line for a task's outcome: `web.1a2b killed (signal 15)`.
pub fn task_outcome(task: &Task) -> String {
    let mut s = format!("{} {}", task.id(), task.state);
    if let Some(exit) = task.exit.filter(|_| task.state.is_terminal()) {
        let _ = write!(s, " ({exit})");
    }
    if let Some(m) = task
        .message
        .as_deref()
        .filter(|_| task.state == TaskState::Failed)
    {
        let _ = write!(s, ": {m}");
    }
    s.push('\n');
    s
}

/// `drover version`: one line for the CLI, one for the master.
pub fn version_text(
    report: &VersionReport,
    master_url: &str,
    master_error: Option<&str>,
) -> String {
    let mut s = format!("{} {}\n", report.cli.name, report.cli.version);
    match (&report.master, master_error) {
        (Some(m), _) => {
            let _ = writeln!(s, "master {master_url}: {} {}", m.name, m.version);
        }
        (None, Some(e)) => {
            let _ = writeln!(s, "master: {e}");
        }
        (None, None) => {}
    }
    s
}
