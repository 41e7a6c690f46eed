//! The `drover` CLI against a real master and agents: what it prints, the filters it
//! sends, `kill --wait`, and `logs` with `--stderr`, `--tail` and `--follow`.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use drover_api::task::TaskId;
use drover_cluster_tests::{Cluster, ClusterOptions, bin_path, wait_for};

const LONG: Duration = Duration::from_secs(40);

fn launch(cluster: &Cluster, node: &str, name: &str, cmd: &str) -> TaskId {
    let (code, out, err) = cluster.cli(&[
        "tasks", "launch", "--node", node, "--name", name, "--cpus", "0.05", "--mem", "8", "--",
        cmd,
    ]);
    assert_eq!(code, 0, "{err}");
    let id = out.trim();
    assert!(
        !id.contains(char::is_whitespace),
        "launch prints the id alone: {out:?}"
    );
    TaskId(id.to_string())
}

async fn wait_cli_state(cluster: &Cluster, id: &TaskId, state: &str) {
    wait_for(&format!("{id} {state}"), LONG, || async {
        let t = cluster.cli_json(&["tasks", "show", id.as_str()]);
        (t["state"] == state).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_lists_filters_and_shows() {
    let cluster = Cluster::start(ClusterOptions::default()).await;
    let a = launch(&cluster, "agent-0", "alpha", "exec sleep 1000");
    let b = launch(&cluster, "agent-1", "beta", "echo done");
    wait_cli_state(&cluster, &a, "running").await;
    wait_cli_state(&cluster, &b, "finished").await;

    // Default: active tasks only; --all adds ended ones; --node and --state filter.
    let active = cluster.cli_json(&["tasks"]);
    let ids: Vec<&str> = active
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["spec"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![a.as_str()]);
    assert_eq!(
        cluster
            .cli_json(&["tasks", "--all"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        cluster
            .cli_json(&["tasks", "--all", "--node", "agent-1"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let finished = cluster.cli_json(&["tasks", "--state", "finished"]);
    assert_eq!(finished[0]["spec"]["id"], b.as_str());
    assert_eq!(finished[0]["exit"]["code"], 0);

    // Tables for people.
    let (code, out, _) = cluster.cli(&["tasks", "--all"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("alpha") && out.contains("beta") && out.contains("finished"),
        "{out}"
    );
    let (code, out, _) = cluster.cli(&["nodes", "show", "agent-0"]);
    assert_eq!(code, 0);
    assert!(out.contains("agent-0") && out.contains("alpha"), "{out}");
    let (code, _, err) = cluster.cli(&["nodes", "show", "ghost"]);
    assert_eq!(code, 1);
    assert!(err.contains("ghost"), "{err}");
    let (code, out, _) = cluster.cli(&["version"]);
    assert_eq!(code, 0);
    assert!(out.contains("drover-master"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_logs_and_kill_wait() {
    let cluster = Cluster::start(ClusterOptions {
        agents: 1,
        ..Default::default()
    })
    .await;
    let id = launch(
        &cluster,
        "agent-0",
        "talker",
        "echo to-stderr >&2; i=0; while true; do echo line $i; i=$((i+1)); sleep 0.1; done",
    );
    wait_cli_state(&cluster, &id, "running").await;

    let (code, err_out, _) = cluster.cli(&["tasks", "logs", "--stderr", id.as_str()]);
    assert_eq!(code, 0);
    assert_eq!(err_out, "to-stderr\n");

    // --follow streams new lines as they are written, and ends when the task does.
    let mut follow = Command::new(bin_path("drover"))
        .args(["tasks", "logs", "--follow", id.as_str()])
        .env("DROVER_MASTER", &cluster.master.url)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    while seen.len() < 15 {
        seen.push(lines.next().unwrap().unwrap());
    }
    assert_eq!(seen[0], "line 0");
    assert_eq!(
        seen[14], "line 14",
        "lines arrive in order, none lost: {seen:?}"
    );

    let (code, out, err) = cluster.cli(&["tasks", "kill", "--wait", id.as_str()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("killed"), "{out}");
    let status = tokio::task::spawn_blocking(move || {
        for _ in lines.by_ref() {}
        follow.wait().unwrap()
    });
    let status = tokio::time::timeout(LONG, status)
        .await
        .expect("logs --follow ends with the task")
        .unwrap();
    assert!(status.success());

    // --tail gives the last bytes.
    let (code, tail, _) = cluster.cli(&["tasks", "logs", "--tail", "7", id.as_str()]);
    assert_eq!(code, 0);
    assert_eq!(tail.len(), 7, "{tail:?}");
    assert!(tail.ends_with('\n'));
}
