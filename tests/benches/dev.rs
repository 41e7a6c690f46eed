//! Time from `drover dev` start to ready (every node registered, every example app
//! healthy: the moment it prints the `export` lines), median of 3 runs with the
//! repository's examples, each on a fresh data dir; plus the same with `--empty`.
//!
//! Run with `cargo build --workspace --bins && cargo bench -p drover-cluster-tests --bench dev`.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use drover_cluster_tests::{bin_path, port_block};

fn ready_seconds(examples: Option<&Path>) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let (base, _) = port_block(300);
    let mut cmd = Command::new(bin_path("drover"));
    cmd.args([
        "dev",
        "--agents",
        "2",
        "--port-base",
        &base.to_string(),
        "--data-dir",
    ])
    .arg(dir.path().join("data"));
    match examples {
        Some(e) => cmd.arg("--examples").arg(e),
        None => cmd.arg("--empty"),
    };
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut ready = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if ready.is_none() && line.contains("export DROVER_MASTER") {
            ready = Some(start.elapsed().as_secs_f64());
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGINT,
            );
        }
    }
    child.wait().unwrap();
    ready.expect("drover dev never printed its exports")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let full: Vec<f64> = (0..3).map(|_| ready_seconds(Some(&examples))).collect();
    let empty: Vec<f64> = (0..3).map(|_| ready_seconds(None)).collect();
    println!(
        "drover dev ready with the examples: median {:.2} s over {:?}",
        median(full.clone()),
        full
    );
    println!(
        "drover dev ready with --empty (baseline): median {:.2} s over {:?}",
        median(empty.clone()),
        empty
    );
}
