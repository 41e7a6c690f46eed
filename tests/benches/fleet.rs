//! The fleet bench: wall time to upgrade the agents of 20 hosts (Debian systems booted
//! with `systemd-nspawn`, each in its own network namespace, see
//! `drover_cluster_tests::fleet`) with `drover fleet upgrade` and with
//! `ansible-playbook playbooks/upgrade.yml`, in the same run, with the same gates
//! (drain, back on the new version, every task still running with its pid, re-activate)
//! and the same batches (a canary of 1, then 25%).
//!
//! `drover fleet` takes the agents from build A to B, the playbook takes them back from B
//! to A (each run swaps every agent's binary). After each, the bench checks every agent
//! runs the build it should and every task kept its pid.
//!
//!   cargo bench -p drover-cluster-tests --bench fleet
//!   DROVER_FLEET_BENCH_AGENTS=5 cargo bench -p drover-cluster-tests --bench fleet
//!
//! Needs root, systemd-nspawn, debootstrap and ansible-playbook; says why and exits 0
//! where they are missing.

#![allow(clippy::unwrap_used)] // a bench: a failure should fail loudly

use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use drover_cluster_tests::bin_path;
use drover_cluster_tests::fleet::{FleetHosts, dist, unsupported};

/// Build A is the crate version as it is (the build scripts/dist makes anyway).
const A: &str = drover_api::VERSION;
const B: &str = "0.1.1-fleet-b";

fn versions(hosts: &FleetHosts, drover: &Path) -> Vec<(String, String)> {
    let nodes = hosts.drover_json(drover, &["nodes"]);
    nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_string(),
                n["version"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn main() {
    if let Some(why) = unsupported() {
        println!("fleet bench skipped: {why}");
        return;
    }
    let have_ansible = std::process::Command::new("sh")
        .args(["-c", "command -v ansible-playbook"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let agents: usize = std::env::var("DROVER_FLEET_BENCH_AGENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let drover = bin_path("drover");
    let (dist_a, dist_b) = (dist("a", A), dist("b", B));
    let names: Vec<String> = std::iter::once("master".to_string())
        .chain((1..=agents).map(|i| format!("agent{i}")))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let hosts = FleetHosts::start(&refs);
    println!(
        "fleet bench: 1 master + {agents} agents, each a systemd-nspawn container in its own network namespace, booted in {:.1}s",
        hosts.boot_time.as_secs_f64()
    );

    let t = Instant::now();
    let (code, out, err) = hosts.fleet(
        &drover,
        &[
            "upgrade",
            "--dist",
            dist_a.to_str().unwrap(),
            "--batch",
            "100%",
        ],
    );
    assert_eq!(code, 0, "installing A failed:\n{out}\n{err}");
    println!(
        "setup: installed build A everywhere in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let tasks = hosts.launch_tasks(&drover);

    // drover fleet: A -> B, agents only, the playbook's gates and batches.
    let t = Instant::now();
    let (code, out, err) = hosts.fleet(
        &drover,
        &[
            "upgrade",
            "--limit",
            "agents",
            "--dist",
            dist_b.to_str().unwrap(),
            "--drain",
            "--canary",
            "1",
            "--batch",
            "25%",
        ],
    );
    let fleet_secs = t.elapsed().as_secs_f64();
    assert_eq!(code, 0, "drover fleet upgrade failed:\n{out}\n{err}");
    assert!(versions(&hosts, &drover).iter().all(|(_, v)| v == B));
    hosts.assert_tasks_kept(&drover, &tasks);
    println!("drover fleet upgrade (A -> B, {agents} agents): {fleet_secs:.1}s");

    if !have_ansible {
        println!("ansible-playbook is not installed: no comparison");
        return;
    }
    // ansible-playbook: B -> A with playbooks/upgrade.yml as it is, on the same hosts.
    let t = Instant::now();
    let out = hosts.upgrade_playbook(
        &dist_a,
        &[
            "-e",
            "drover_upgrade_batch=25%",
            "-e",
            "drover_agent_upgrade_drain=true",
        ],
    );
    let ansible_secs = t.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ansible-playbook upgrade.yml failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wrong: Vec<(String, String)> = versions(&hosts, &drover)
        .into_iter()
        .filter(|(_, v)| v != A)
        .collect();
    assert!(
        wrong.is_empty(),
        "agents not on A after the playbook: {wrong:?}\n{text}"
    );
    hosts.assert_tasks_kept(&drover, &tasks);
    println!("ansible-playbook upgrade.yml (B -> A, {agents} agents): {ansible_secs:.1}s");
    println!(
        "ratio: drover fleet is {:.1}x faster",
        ansible_secs / fleet_secs
    );
}
