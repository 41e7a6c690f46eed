//! `drover fleet` against real hosts: each a Debian system booted with `systemd-nspawn`
//! (systemd as PID 1, sshd started by it) in a network namespace this test creates
//! (see `drover_cluster_tests::fleet`).
//!
//! 1. Build A → build B over 1 master + 3 agents: every host ends on B, and the task on
//!    each agent keeps its pid through the upgrade.
//! 2. A build B whose agent does not start on one host: that host is rolled back to A,
//!    the rollout stops after that batch, the report names the host and the reason,
//!    and no host beyond that batch is touched.
//! 3. A wrong host key is refused; `--accept-new` adds an unknown key, never a changed
//!    one.
//! 4. `--dry-run` changes nothing on any host.
//! 5. Schedulers go after the masters and before the agents, each gated on answering
//!    with the new version: one whose new build does not start is rolled back and no
//!    agent is touched.
//! 6. `--max-unavailable` holds at run time: never more agents out of service at once
//!    (watched on the hosts and at the master while the rollout runs), and an agent
//!    already down counts, so a batch that would exceed it does not start.
//! 7. A master that cannot be read halts the rollout (it fails closed): before an agent
//!    batch that `--max-unavailable` must be checked for, and before a master's own
//!    restart; no host is touched and the report names the master and the error.
//!
//! And `playbooks/upgrade.yml` on the same kind of hosts: an agent that does not come
//! back on the new build is rolled back to the previous binary and the play stops, with
//! no further agent touched.
//!
//! Needs root, `ip`, `systemd-nspawn`, debootstrap (the cached host image is built on
//! first use) and overlayfs (scripts/setup installs the tools); where they are missing
//! each test says so on stderr and passes. The static builds A and B come from
//! `scripts/dist --version` (built once, cached under the target directory).

#![allow(clippy::unwrap_used)] // tests: a failure should fail loudly

use std::path::{Path, PathBuf};

use drover_cluster_tests::fleet::{FleetHosts, Roles, dist, unsupported};
use drover_cluster_tests::{bin_path, skipped};
use serde_json::Value;

/// Build A is the crate version as it is (the build scripts/dist makes anyway).
const A: &str = drover_api::VERSION;
const B: &str = "0.1.1-fleet-b";

fn skip() -> bool {
    match unsupported() {
        Some(why) => {
            skipped("fleet test", &why);
            true
        }
        None => false,
    }
}

fn drover() -> PathBuf {
    bin_path("drover")
}

/// Installs build A everywhere with `drover fleet upgrade` (a first install).
fn install(hosts: &FleetHosts, dist_a: &Path) {
    let (code, out, err) = hosts.fleet(
        &drover(),
        &[
            "upgrade",
            "--dist",
            dist_a.to_str().unwrap(),
            "--batch",
            "100%",
        ],
    );
    assert_eq!(code, 0, "installing A failed:\n{out}\n{err}");
    // A first install enables its units, so they start again after a reboot.
    for h in &hosts.hosts {
        let units = hosts.host_sh(
            &h.name,
            "systemctl list-unit-files 'drover-*' --no-legend --no-pager",
        );
        let units = String::from_utf8_lossy(&units.stdout);
        assert!(units.contains("drover-"), "{}: no units:\n{units}", h.name);
        assert!(
            units.lines().all(|l| l.contains(" enabled")),
            "{}: a unit is not enabled:\n{units}",
            h.name
        );
    }
}

fn status(hosts: &FleetHosts) -> Vec<Value> {
    let (_, out, err) = hosts.fleet(&drover(), &["--json", "status"]);
    serde_json::from_str::<Value>(&out)
        .unwrap_or_else(|e| panic!("status --json: {e}:\n{out}\n{err}"))
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn upgrade_a_to_b_keeps_every_task_and_dry_run_changes_nothing() {
    if skip() {
        return;
    }
    let (dist_a, dist_b) = (dist("a", A), dist("b", B));
    let hosts = FleetHosts::start(&["master", "agent1", "agent2", "agent3"]);
    // agent2 is reached as a user who becomes root with sudo, the others as root.
    hosts.connect_as_sudo_user("agent2");
    install(&hosts, &dist_a);
    let logins = hosts.host_sh(
        "agent2",
        "journalctl --no-pager -u ssh.service | grep 'Accepted publickey for' || true",
    );
    let logins = String::from_utf8_lossy(&logins.stdout);
    assert!(
        logins.contains("for ops ") && !logins.contains("for root "),
        "agent2 was not reached as ops only:\n{logins}"
    );
    let tasks = hosts.launch_tasks(&drover());

    // Check 4: a dry run shows the plan and touches nothing.
    let before = hosts.snapshot();
    let (code, out, err) = hosts.fleet(
        &drover(),
        &[
            "upgrade",
            "--dist",
            dist_b.to_str().unwrap(),
            "--dry-run",
            "--batch",
            "2",
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("dry run: nothing was changed"), "{out}");
    for name in ["master", "agent1", "agent2", "agent3"] {
        assert!(out.contains(name), "the plan does not name {name}:\n{out}");
    }
    assert_eq!(hosts.snapshot(), before, "the dry run changed files");
    let (code, out, _) = hosts.fleet(
        &drover(),
        &[
            "--json",
            "upgrade",
            "--dist",
            dist_b.to_str().unwrap(),
            "--dry-run",
            "--batch",
            "2",
        ],
    );
    assert_eq!(code, 0);
    let plan: Value = serde_json::from_str(&out).unwrap();
    let phases: Vec<&str> = plan["plan"]["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases, vec!["master", "canary", "agents"]);
    assert_eq!(hosts.snapshot(), before);

    // Check 1: A -> B, draining each agent; every task keeps its pid.
    let (code, out, err) = hosts.fleet(
        &drover(),
        &[
            "--json",
            "upgrade",
            "--dist",
            dist_b.to_str().unwrap(),
            "--batch",
            "2",
            "--drain",
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    for h in report["hosts"].as_array().unwrap() {
        assert_eq!(h["outcome"], "upgraded", "{h}");
        assert_eq!(h["version"], B, "{h}");
    }
    for row in status(&hosts) {
        assert_eq!(row["version"], B, "{row}");
        assert_eq!(row["healthy"], true, "{row}");
    }
    hosts.assert_tasks_kept(&drover(), &tasks);
    let nodes = hosts.drover_json(&drover(), &["nodes"]);
    for n in nodes.as_array().unwrap() {
        assert_eq!(n["version"], B, "{n}");
        assert_eq!(
            n["state"], "ready",
            "drained nodes must be re-activated: {n}"
        );
    }
    // A second run finds nothing to do.
    let (code, out, err) = hosts.fleet(
        &drover(),
        &["upgrade", "--dist", dist_b.to_str().unwrap(), "--dry-run"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("0 batch(es)"), "{out}");
}

#[test]
fn an_agent_that_fails_its_gate_is_rolled_back_and_the_rollout_halts() {
    if skip() {
        return;
    }
    let (dist_a, dist_b) = (dist("a", A), dist("b", B));
    let hosts = FleetHosts::start(&["master", "agent1", "agent2", "agent3", "agent4"]);
    install(&hosts, &dist_a);
    let tasks = hosts.launch_tasks(&drover());
    // Build B's agent will not start on agent2 (in batch 3: master, canary, 2 agents).
    hosts.break_start("agent2", "drover-agent", B);
    let untouched = hosts.host("agent4").root.join("usr/local/bin");
    let before_a4: Vec<String> = hosts
        .snapshot()
        .into_iter()
        .filter(|l| l.starts_with(untouched.to_str().unwrap()))
        .collect();

    let (code, out, err) = hosts.fleet(
        &drover(),
        &[
            "--json",
            "upgrade",
            "--dist",
            dist_b.to_str().unwrap(),
            "--canary",
            "1",
            "--batch",
            "2",
            "--gate-timeout",
            "30",
        ],
    );
    assert_ne!(code, 0, "the rollout should fail:\n{out}\n{err}");
    assert!(err.contains("agent2"), "the error names the host: {err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["ok"], false);
    let halted = report["halted"].as_str().unwrap();
    assert!(
        halted.contains("agent2") && halted.contains("health gate"),
        "{halted}"
    );
    let outcome = |host: &str, role: &str| -> Value {
        report["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["host"] == host && h["role"] == role)
            .unwrap()
            .clone()
    };
    // The master goes first (batch 1), then the canary agent1, then agent2 and agent3.
    assert_eq!(outcome("master", "master")["outcome"], "upgraded");
    assert_eq!(outcome("agent1", "agent")["outcome"], "upgraded");
    assert_eq!(outcome("agent1", "agent")["version"], B);
    let a2 = outcome("agent2", "agent");
    assert_eq!(a2["outcome"], "failed", "{a2}");
    assert_eq!(a2["rolled_back"], true, "{a2}");
    assert_eq!(a2["version"], A, "{a2}");
    assert!(
        a2["reason"].as_str().unwrap().contains("health gate"),
        "{a2}"
    );
    assert_eq!(outcome("agent3", "agent")["outcome"], "upgraded");
    assert_eq!(outcome("agent4", "agent")["outcome"], "not_started");
    assert_eq!(outcome("agent4", "agent")["version"], A);

    // What runs matches the report; agent4 was not touched at all.
    for row in status(&hosts) {
        let want = match row["host"].as_str().unwrap() {
            "master" | "agent1" | "agent3" => B,
            _ => A,
        };
        assert_eq!(row["version"], want, "{row}");
    }
    let after_a4: Vec<String> = hosts
        .snapshot()
        .into_iter()
        .filter(|l| l.starts_with(untouched.to_str().unwrap()))
        .collect();
    assert_eq!(before_a4, after_a4, "agent4 was touched");
    // agent2 runs A again and is registered. (Its task was marked lost while the agent
    // was down past the heartbeat timeout: the gate reported that, not a pass.)
    let n = hosts.drover_json(&drover(), &["nodes", "show", "agent2"]);
    assert_eq!(n["version"], A, "{n}");
    assert_ne!(n["state"], "unreachable", "{n}");
    // The tasks on the hosts that passed kept their pids.
    let kept: Vec<_> = tasks.iter().filter(|t| t.0 != "agent2").cloned().collect();
    hosts.assert_tasks_kept(&drover(), &kept);
}

#[test]
fn host_keys_are_checked_and_accept_new_adds_only_unknown_keys() {
    if skip() {
        return;
    }
    let hosts = FleetHosts::start(&["master", "agent1"]);
    let kh = hosts.known_hosts.to_str().unwrap().to_string();
    let good = std::fs::read_to_string(&kh).unwrap();
    let master_ip = hosts.host("master").ip.clone();
    let mention = |rows: &[Value], host: &str, what: &str| {
        rows.iter()
            .any(|r| r["host"] == host && r["health"].as_str().unwrap_or("").contains(what))
    };

    // The right keys: connected (nothing installed yet, so "not installed").
    let rows = status(&hosts);
    assert!(mention(&rows, "master", "not installed"), "{rows:?}");

    // A changed key is refused, --accept-new or not, and the file is left alone.
    let wrong_key = hosts.host("agent1").host_key.clone();
    let tampered: String = good
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{master_ip} ")) {
                format!("{master_ip} {wrong_key}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    std::fs::write(&kh, &tampered).unwrap();
    for extra in [&[][..], &["--accept-new"][..]] {
        let mut args = vec!["--json", "status"];
        args.extend_from_slice(extra);
        let (_, out, _) = hosts.fleet(&drover(), &args);
        let rows: Vec<Value> = serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .clone();
        assert!(
            mention(&rows, "master", "host key mismatch"),
            "{extra:?}: {rows:?}"
        );
        assert!(mention(&rows, "agent1", "not installed"), "{rows:?}");
    }
    assert_eq!(std::fs::read_to_string(&kh).unwrap(), tampered);

    // An unknown key is refused without --accept-new, added with it, then trusted.
    let without_master: String = good
        .lines()
        .filter(|l| !l.starts_with(&format!("{master_ip} ")))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&kh, &without_master).unwrap();
    let rows = status(&hosts);
    assert!(mention(&rows, "master", "unknown host key"), "{rows:?}");
    let (_, out, _) = hosts.fleet(&drover(), &["--json", "status", "--accept-new"]);
    let rows: Vec<Value> = serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone();
    assert!(mention(&rows, "master", "not installed"), "{rows:?}");
    let now = std::fs::read_to_string(&kh).unwrap();
    let master_key = hosts
        .host("master")
        .host_key
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert!(now.contains(&master_key), "the key was not added: {now}");
    let rows = status(&hosts);
    assert!(mention(&rows, "master", "not installed"), "{rows:?}");

    // An upgrade refuses to start when a host's key is wrong, and changes nothing.
    std::fs::write(&kh, &tampered).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(bin_path("drover-agent"), dir.path().join("drover-agent")).unwrap();
    let before = hosts.snapshot();
    let (code, _, err) = hosts.fleet(
        &drover(),
        &["upgrade", "--dist", dir.path().to_str().unwrap()],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("host key mismatch") && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(hosts.snapshot(), before);
}

#[test]
fn upgrade_yml_rolls_a_failed_agent_back_and_stops_the_play() {
    if skip() {
        return;
    }
    let (dist_a, dist_b) = (dist("a", A), dist("b", B));
    let hosts = FleetHosts::start(&["master", "agent1", "agent2", "agent3"]);
    install(&hosts, &dist_a);
    let tasks = hosts.launch_tasks(&drover());
    // Build B's agent will not start on agent1, the canary batch of one.
    hosts.break_start("agent1", "drover-agent", B);
    let bins = |host: &str| -> Vec<String> {
        let dir = hosts.host(host).root.join("usr/local/bin");
        hosts
            .snapshot()
            .into_iter()
            .filter(|l| l.starts_with(dir.to_str().unwrap()))
            .collect()
    };
    let (before_a2, before_a3) = (bins("agent2"), bins("agent3"));

    let out = hosts.upgrade_playbook(
        &dist_b,
        // A short wait for the agent that will not come back.
        &[
            "-e",
            "drover_agent_ready_retries=10",
            "-e",
            "drover_agent_ready_delay=2",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "the play should fail:\n{text}");
    // (The YAML callback wraps the message after "previous".)
    assert!(
        text.contains("it was rolled back to the previous")
            && text
                .lines()
                .any(|l| l.starts_with("agent1") && l.contains("rescued=1")),
        "the play rolls agent1 back and says so:\n{text}"
    );
    assert!(
        !text.contains("[agent2]") && !text.contains("[agent3]"),
        "no task ran on a later batch:\n{text}"
    );
    // agent1 runs A again and is registered; the others were never touched.
    let n = hosts.drover_json(&drover(), &["nodes", "show", "agent1"]);
    assert_eq!(n["version"], A, "{n}");
    assert_ne!(n["state"], "unreachable", "{n}");
    for row in status(&hosts) {
        assert_eq!(row["version"], A, "{row}");
    }
    assert_eq!(before_a2, bins("agent2"), "agent2 was touched:\n{text}");
    assert_eq!(before_a3, bins("agent3"), "agent3 was touched:\n{text}");
    let kept: Vec<_> = tasks.iter().filter(|t| t.0 != "agent1").cloned().collect();
    hosts.assert_tasks_kept(&drover(), &kept);
}

/// The plan's phases (of `upgrade --dry-run --json`).
fn phases(hosts: &FleetHosts, dist: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "--json",
        "upgrade",
        "--dist",
        dist.to_str().unwrap(),
        "--dry-run",
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = hosts.fleet(&drover(), &args);
    assert_eq!(code, 0, "{out}\n{err}");
    let plan: Value = serde_json::from_str(&out).unwrap();
    plan["plan"]["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["phase"].as_str().unwrap().to_string())
        .collect()
}

fn outcome(report: &Value, host: &str, role: &str) -> Value {
    report["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == host && h["role"] == role)
        .unwrap_or_else(|| panic!("no {host}/{role} in {report}"))
        .clone()
}

/// When systemd last started `unit` on `host`, on the kernel's monotonic clock (which the
/// containers share), in microseconds.
fn started_at(hosts: &FleetHosts, host: &str, unit: &str) -> u64 {
    hosts
        .unit_property(host, unit, "ExecMainStartTimestampMonotonic")
        .parse()
        .unwrap()
}

#[test]
fn schedulers_follow_the_masters_and_are_gated_on_their_new_version() {
    if skip() {
        return;
    }
    let (dist_a, dist_b) = (dist("a", A), dist("b", B));
    let hosts = FleetHosts::start_with(&["master", "agent1", "agent2"], Roles { scheduler: true });
    install(&hosts, &dist_a);
    assert_eq!(hosts.scheduler_version().as_deref(), Some(A));
    assert_eq!(
        phases(&hosts, &dist_b, &["--batch", "1"]),
        vec!["master", "scheduler", "canary", "agents"]
    );

    // Build B's scheduler does not start: the master is upgraded first, then the
    // scheduler fails its gate (it never answers with B) and is rolled back, and the
    // agents are not touched.
    hosts.break_start("master", "drover-scheduler", B);
    let agents_before: Vec<u64> = ["agent1", "agent2"]
        .iter()
        .map(|a| started_at(&hosts, a, "drover-agent"))
        .collect();
    let (code, out, err) = hosts.fleet(
        &drover(),
        &[
            "--json",
            "upgrade",
            "--dist",
            dist_b.to_str().unwrap(),
            "--batch",
            "1",
            "--gate-timeout",
            "15",
        ],
    );
    assert_ne!(code, 0, "the rollout should fail:\n{out}\n{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(outcome(&report, "master", "master")["outcome"], "upgraded");
    assert_eq!(outcome(&report, "master", "master")["version"], B);
    let sched = outcome(&report, "master", "scheduler");
    assert_eq!(sched["outcome"], "failed", "{sched}");
    assert_eq!(sched["rolled_back"], true, "{sched}");
    assert_eq!(sched["version"], A, "{sched}");
    let reason = sched["reason"].as_str().unwrap();
    assert!(
        reason.contains("health gate") && reason.contains("scheduler does not answer"),
        "{reason}"
    );
    for a in ["agent1", "agent2"] {
        assert_eq!(outcome(&report, a, "agent")["outcome"], "not_started");
    }
    assert_eq!(hosts.scheduler_version().as_deref(), Some(A));
    let agents_after: Vec<u64> = ["agent1", "agent2"]
        .iter()
        .map(|a| started_at(&hosts, a, "drover-agent"))
        .collect();
    assert_eq!(agents_before, agents_after, "an agent was restarted");

    // Fixed: the master is already on B, the scheduler goes next, then the agents.
    hosts.unbreak("master", "drover-scheduler");
    let (code, out, err) = hosts.fleet(
        &drover(),
        &[
            "--json",
            "upgrade",
            "--dist",
            dist_b.to_str().unwrap(),
            "--batch",
            "1",
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(outcome(&report, "master", "master")["outcome"], "unchanged");
    assert_eq!(
        outcome(&report, "master", "scheduler")["outcome"],
        "upgraded"
    );
    assert_eq!(hosts.scheduler_version().as_deref(), Some(B));
    let scheduler = started_at(&hosts, "master", "drover-scheduler");
    for a in ["agent1", "agent2"] {
        assert_eq!(outcome(&report, a, "agent")["outcome"], "upgraded");
        assert!(
            started_at(&hosts, a, "drover-agent") > scheduler,
            "{a} restarted before the scheduler did"
        );
    }
}

/// The agents out of service now: not `ready` at the master (draining, unreachable,
/// missing) or whose unit is not active on their host.
fn out_of_service(hosts: &FleetHosts, agents: &[&str]) -> Vec<String> {
    let nodes = hosts.drover_json(&drover(), &["nodes"]);
    agents
        .iter()
        .filter(|a| {
            let ready = nodes
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["name"] == **a && n["state"] == "ready");
            let active = hosts
                .host_sh(a, "systemctl is-active --quiet drover-agent")
                .status
                .success();
            !(ready && active)
        })
        .map(|a| a.to_string())
        .collect()
}

#[test]
fn max_unavailable_holds_while_the_rollout_runs() {
    if skip() {
        return;
    }
    let (dist_a, dist_b) = (dist("a", A), dist("b", B));
    let agents = ["agent1", "agent2", "agent3", "agent4"];
    let hosts = FleetHosts::start(&["master", "agent1", "agent2", "agent3", "agent4"]);
    install(&hosts, &dist_a);

    // All agents at once but for --max-unavailable 2, drained: watched from outside
    // while it runs, never more than 2 are out of service, and 2 are at some point.
    let fleet_args = [
        "--json",
        "upgrade",
        "--limit",
        "agents",
        "--dist",
        dist_b.to_str().unwrap(),
        "--drain",
        "--canary",
        "1",
        "--batch",
        "100%",
        "--max-unavailable",
        "2",
    ];
    let mut seen: Vec<Vec<String>> = Vec::new();
    let (code, out, err) = std::thread::scope(|s| {
        let run = s.spawn(|| hosts.fleet(&drover(), &fleet_args));
        while !run.is_finished() {
            seen.push(out_of_service(&hosts, &agents));
        }
        run.join().unwrap()
    });
    assert_eq!(code, 0, "{out}\n{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let sizes: Vec<usize> = report["plan"]["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["steps"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, vec![1, 2, 1], "{report}");
    let most = seen.iter().map(Vec::len).max().unwrap_or(0);
    assert!(
        most <= 2,
        "more than 2 agents were out of service at once: {:?}",
        seen.iter().find(|s| s.len() > 2)
    );
    assert_eq!(
        most,
        2,
        "the watcher never saw a batch of 2 at work ({} samples)",
        seen.len()
    );
    for row in status(&hosts) {
        let want = if row["binary"] == "drover-agent" {
            B
        } else {
            A
        };
        assert_eq!(row["version"], want, "{row}");
    }

    // An agent already down counts: with agent4 stopped (and unreachable at the master),
    // --max-unavailable 1 leaves no room for even the canary, so nothing starts.
    let out = hosts.host_sh("agent4", "systemctl stop drover-agent");
    assert!(out.status.success(), "{out:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while hosts.drover_json(&drover(), &["nodes", "show", "agent4"])["state"] != "unreachable" {
        assert!(
            std::time::Instant::now() < deadline,
            "agent4 never became unreachable"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let before = hosts.snapshot();
    let (code, out, err) = hosts.fleet(
        &drover(),
        &[
            "--json",
            "upgrade",
            "--limit",
            "agent1:agent2:agent3",
            "--dist",
            dist_a.to_str().unwrap(),
            "--max-unavailable",
            "1",
        ],
    );
    assert_ne!(code, 0, "the rollout should not start:\n{out}\n{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let halted = report["halted"].as_str().unwrap();
    assert!(
        halted.contains("--max-unavailable 1") && halted.contains("agent4"),
        "{halted}"
    );
    for a in ["agent1", "agent2", "agent3"] {
        assert_eq!(outcome(&report, a, "agent")["outcome"], "not_started");
    }
    assert_eq!(hosts.snapshot(), before, "a host was touched");
}

/// Each host's binaries and Drover config as files (path, size, mtime, mode): what a
/// rollout changes when it touches a host. (The state under `/var/lib/drover` is left
/// out: agents keep writing there while their master is away.)
fn installed_files(hosts: &FleetHosts) -> Vec<String> {
    hosts
        .snapshot()
        .into_iter()
        .filter(|l| !l.contains("/var/lib/drover"))
        .collect()
}

#[test]
fn a_master_that_cannot_be_read_halts_the_rollout_and_touches_no_host() {
    if skip() {
        return;
    }
    let (dist_a, dist_b) = (dist("a", A), dist("b", B));
    let agents = ["agent1", "agent2"];
    let hosts = FleetHosts::start(&["master", "agent1", "agent2"]);
    install(&hosts, &dist_a);
    let started: Vec<u64> = agents
        .iter()
        .map(|a| started_at(&hosts, a, "drover-agent"))
        .collect();
    // With the master stopped nothing can tell which agents are down.
    let out = hosts.host_sh("master", "systemctl stop drover-master");
    assert!(out.status.success(), "{out:?}");
    let before = installed_files(&hosts);

    // --max-unavailable 1 leaves room for the canary, but it cannot be checked: the
    // rollout halts before the canary, naming the master and why.
    let (code, out, err) = hosts.fleet(
        &drover(),
        &[
            "--json",
            "upgrade",
            "--limit",
            "agents",
            "--dist",
            dist_b.to_str().unwrap(),
            "--canary",
            "1",
            "--max-unavailable",
            "1",
        ],
    );
    assert_ne!(code, 0, "the rollout should halt:\n{out}\n{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["ok"], false, "{report}");
    let halted = report["halted"].as_str().unwrap();
    assert!(
        halted.contains("batch 1")
            && halted.contains(&hosts.master_url())
            && halted.contains("--max-unavailable 1")
            && halted.contains("cannot read the nodes"),
        "{halted}"
    );
    assert!(err.contains(&hosts.master_url()), "{err}");
    for a in agents {
        assert_eq!(outcome(&report, a, "agent")["outcome"], "not_started");
        assert_eq!(outcome(&report, a, "agent")["version"], A);
    }
    assert_eq!(installed_files(&hosts), before, "a host was touched");

    // The master's own upgrade reads its nodes before the restart (to check they come
    // back): that read failing stops the rollout at the master, which is left as it is.
    let (code, out, err) = hosts.fleet(
        &drover(),
        &["--json", "upgrade", "--dist", dist_b.to_str().unwrap()],
    );
    assert_ne!(code, 0, "the rollout should halt:\n{out}\n{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let master = outcome(&report, "master", "master");
    assert_eq!(master["outcome"], "failed", "{master}");
    let reason = master["reason"].as_str().unwrap();
    assert!(
        reason.contains("cannot read the master's nodes") && reason.contains("nothing was changed"),
        "{reason}"
    );
    for a in agents {
        assert_eq!(outcome(&report, a, "agent")["outcome"], "not_started");
    }
    assert_eq!(installed_files(&hosts), before, "a host was touched");
    assert!(
        !hosts
            .host_sh("master", "systemctl is-active --quiet drover-master")
            .status
            .success(),
        "the stopped master was started again"
    );
    let after: Vec<u64> = agents
        .iter()
        .map(|a| started_at(&hosts, a, "drover-agent"))
        .collect();
    assert_eq!(started, after, "an agent was restarted");
}
