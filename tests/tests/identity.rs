//! The cluster's identity, against real processes: a master restarted on an emptied
//! store file, on a new data dir, or on a store that lost its newest commits never gets
//! a running task killed. It refuses to start (naming the data dir or the file), or, when
//! told to start a new cluster anyway, the agents refuse it. Back on its good store, or
//! on an older backup the operator accepts, the cluster heals: the agents register again
//! and every task is listed running with the same process.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use drover_api::Resources;
use drover_api::node::NodeState;
use drover_api::task::{LaunchRequest, TaskDefinition, TaskFilter, TaskId, TaskState};
use drover_cluster_tests::fleet::{self, FleetHosts};
use drover_cluster_tests::{
    Cluster, ClusterOptions, Server, bin_path, process_alive, skipped, wait_for,
};

const LONG: Duration = Duration::from_secs(60);
/// Tasks running when the master goes away (split over the two agents).
const TASKS: usize = 20;

fn sleeper(name: &str) -> TaskDefinition {
    TaskDefinition {
        name: name.to_string(),
        cmd: Some("exec sleep 1000".to_string()),
        resources: Resources::new(0.01, 4.0, 0.0),
        kill_grace_period_seconds: 1.0,
        ..Default::default()
    }
}

/// Launches `count` sleepers over the two agents and waits until each runs; returns
/// their ids and pids.
async fn launch_sleepers(cluster: &Cluster, prefix: &str, count: usize) -> Vec<(TaskId, u32)> {
    let mut ids = Vec::new();
    for i in 0..count {
        let t = cluster
            .client
            .launch(&LaunchRequest {
                node: format!("agent-{}", i % 2),
                id: None,
                task: sleeper(&format!("{prefix}-{i}")),
            })
            .await
            .unwrap_or_else(|e| panic!("launch refused: {e}"));
        ids.push(t.spec.id);
    }
    let client = cluster.client.clone();
    wait_for("every sleeper running with a pid", LONG, || {
        let client = client.clone();
        let ids = ids.clone();
        async move {
            let tasks = client.tasks(&TaskFilter::default()).await.ok()?;
            ids.iter()
                .map(|id| {
                    let t = tasks.iter().find(|t| &t.spec.id == id)?;
                    (t.state == TaskState::Running).then_some((id.clone(), t.pid?))
                })
                .collect::<Option<Vec<_>>>()
        }
    })
    .await
}

async fn cluster_with_sleepers() -> (Cluster, Vec<(TaskId, u32)>) {
    let cluster = Cluster::start(ClusterOptions {
        heartbeat_interval: 0.3,
        heartbeat_timeout: 6.0,
        ..Default::default()
    })
    .await;
    let tasks = launch_sleepers(&cluster, "sleeper", TASKS).await;
    (cluster, tasks)
}

fn alive(tasks: &[(TaskId, u32)]) -> usize {
    tasks.iter().filter(|(_, pid)| process_alive(*pid)).count()
}

fn store_file(dir: &Path) -> PathBuf {
    dir.join("master.redb")
}

/// Starts a master on the cluster's address with `data_dir` and `extra` flags.
fn start_master(cluster: &Cluster, data_dir: &Path, extra: &[&str], log: &str) -> Server {
    let addr = cluster.master.url.trim_start_matches("http://").to_string();
    let mut args = vec![
        "--listen".to_string(),
        addr,
        "--data-dir".to_string(),
        data_dir.display().to_string(),
        "--heartbeat-interval".to_string(),
        "0.3".to_string(),
        "--heartbeat-timeout".to_string(),
        "6".to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Server::start(
        &bin_path("drover-master"),
        &args,
        &[],
        &cluster.dir.path().join(log),
    )
}

/// Waits for a master that must refuse to start; returns its stderr.
async fn refused(mut master: Server, log: &Path) -> String {
    let deadline = Instant::now() + LONG;
    let status = loop {
        if let Some(status) = master.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the master should have refused to start; its log:\n{}",
            master.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let text = std::fs::read_to_string(log).unwrap();
    eprintln!("refused with {status}:\n{text}");
    assert!(!status.success(), "refusal exits non-zero: {text}");
    assert!(
        !text.contains("panicked") && !text.contains("backtrace"),
        "{text}"
    );
    text
}

/// The cluster back on a good master: both agents ready, every task listed running
/// with the process it had, and every process alive.
async fn healed(cluster: &Cluster, tasks: &[(TaskId, u32)]) {
    cluster
        .wait_nodes("both agents ready again", |nodes| {
            nodes.iter().filter(|n| n.state == NodeState::Ready).count() == 2
        })
        .await;
    let client = cluster.client.clone();
    let want = tasks.to_vec();
    wait_for("every task listed running with its pid", LONG, || {
        let client = client.clone();
        let want = want.clone();
        async move {
            let listed = client.tasks(&TaskFilter::default()).await.ok()?;
            want.iter()
                .all(|(id, pid)| {
                    listed.iter().any(|t| {
                        &t.spec.id == id && t.state == TaskState::Running && t.pid == Some(*pid)
                    })
                })
                .then_some(())
        }
    })
    .await;
    assert_eq!(alive(tasks), tasks.len(), "{}", cluster.logs());
}

/// (a) The store file emptied to 0 bytes: refused by the store (a commit was recorded
/// beside it); with the record gone too, refused as an empty store without `--init`.
#[tokio::test(flavor = "multi_thread")]
async fn an_emptied_store_file_kills_no_task() {
    let (mut cluster, tasks) = cluster_with_sleepers().await;
    let data = cluster.dir.path().join("master");
    cluster.master.kill_hard();
    let good = cluster.dir.path().join("good.redb");
    std::fs::copy(store_file(&data), &good).unwrap();
    std::fs::write(store_file(&data), b"").unwrap();

    let log = cluster.dir.path().join("master-emptied.log");
    let text = refused(
        start_master(&cluster, &data, &[], "master-emptied.log"),
        &log,
    )
    .await;
    assert!(
        text.contains(&store_file(&data).display().to_string()) && text.contains("0 bytes"),
        "{text}"
    );

    // Without the record the file is just empty: refused without --init, naming the dir.
    std::fs::remove_file(data.join("master.redb.revision")).unwrap();
    let log = cluster.dir.path().join("master-empty.log");
    let text = refused(start_master(&cluster, &data, &[], "master-empty.log"), &log).await;
    assert!(
        text.contains(&data.display().to_string()) && text.contains("--init"),
        "{text}"
    );
    eprintln!("emptied store: {} of {TASKS} tasks alive", alive(&tasks));
    assert_eq!(alive(&tasks), TASKS, "{}", cluster.logs());

    // The good file back: the cluster heals.
    std::fs::copy(&good, store_file(&data)).unwrap();
    cluster.master = start_master(&cluster, &data, &[], "master-healed.log");
    healed(&cluster, &tasks).await;
}

/// (b) A new (mistyped) data dir: refused without `--init`; with `--init` the master
/// starts a new cluster, and both agents refuse it, over and over, killing nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_new_data_dir_kills_no_task() {
    let (mut cluster, tasks) = cluster_with_sleepers().await;
    let data = cluster.dir.path().join("master");
    let old_id = cluster.client.cluster().await.unwrap().id;
    cluster.master.kill_hard();

    let typo = cluster.dir.path().join("mastr");
    let log = cluster.dir.path().join("master-typo.log");
    let text = refused(start_master(&cluster, &typo, &[], "master-typo.log"), &log).await;
    assert!(
        text.contains(&typo.display().to_string()) && text.contains("--init"),
        "{text}"
    );

    // Told to start a new cluster there: it does, and the agents refuse it.
    cluster.master = start_master(&cluster, &typo, &["--init"], "master-foreign.log");
    let new_id = cluster.client.cluster().await.unwrap().id;
    assert_ne!(new_id, old_id);
    let dir = cluster.dir.path().to_path_buf();
    wait_for("each agent refused the foreign master twice", LONG, || {
        let dir = dir.clone();
        async move {
            (0..2)
                .all(|i| {
                    let log = std::fs::read_to_string(dir.join(format!("agent-{i}.log")))
                        .unwrap_or_default();
                    log.matches("refuses this agent").count() >= 2
                })
                .then_some(())
        }
    })
    .await;
    let agent_log = std::fs::read_to_string(dir.join("agent-0.log")).unwrap();
    assert!(
        agent_log.contains(old_id.as_str()) && agent_log.contains(new_id.as_str()),
        "the refusal names both clusters:\n{agent_log}"
    );
    assert!(
        cluster.client.nodes().await.unwrap().is_empty(),
        "the foreign master took no node"
    );
    eprintln!("new data dir: {} of {TASKS} tasks alive", alive(&tasks));
    assert_eq!(alive(&tasks), TASKS, "{}", cluster.logs());

    // The right data dir again: the cluster heals.
    cluster.master.stop();
    cluster.master = start_master(&cluster, &data, &[], "master-healed.log");
    healed(&cluster, &tasks).await;
}

/// (c) The store lost its newest commits (an older copy in place of the file, as redb
/// falling back to the previous commit slot leaves it): refused against the revision
/// record. Restored, it heals; and if the operator accepts the older copy instead, the
/// tasks it does not know are adopted from the agents, not killed.
#[tokio::test(flavor = "multi_thread")]
async fn a_store_that_lost_its_newest_commits_kills_no_task() {
    let (mut cluster, mut tasks) = cluster_with_sleepers().await;
    let data = cluster.dir.path().join("master");
    // An older state of the file, then more acknowledged launches after it.
    cluster.master.stop();
    let older = cluster.dir.path().join("older.redb");
    std::fs::copy(store_file(&data), &older).unwrap();
    cluster.master = start_master(&cluster, &data, &[], "master-2.log");
    let newer = launch_sleepers(&cluster, "late", 4).await;
    tasks.extend(newer.iter().cloned());
    cluster.master.kill_hard();
    let newest = cluster.dir.path().join("newest.redb");
    std::fs::copy(store_file(&data), &newest).unwrap();
    std::fs::copy(&older, store_file(&data)).unwrap();

    let log = cluster.dir.path().join("master-rolled-back.log");
    let text = refused(
        start_master(&cluster, &data, &[], "master-rolled-back.log"),
        &log,
    )
    .await;
    assert!(
        text.contains(&store_file(&data).display().to_string())
            && text.contains("master.redb.revision")
            && text.contains("revision"),
        "{text}"
    );
    eprintln!(
        "rolled-back store: {} of {} tasks alive",
        alive(&tasks),
        tasks.len()
    );
    assert_eq!(alive(&tasks), tasks.len(), "{}", cluster.logs());

    // The newest file back: the cluster heals.
    std::fs::copy(&newest, store_file(&data)).unwrap();
    cluster.master = start_master(&cluster, &data, &[], "master-healed.log");
    healed(&cluster, &tasks).await;

    // The operator accepts the older copy (removes the record): the master does not know
    // the late tasks, and adopts them from the agents' reports instead of killing them.
    cluster.master.stop();
    std::fs::copy(&older, store_file(&data)).unwrap();
    std::fs::remove_file(data.join("master.redb.revision")).unwrap();
    cluster.master = start_master(&cluster, &data, &[], "master-older.log");
    healed(&cluster, &tasks).await;
    for (id, _) in &newer {
        let t = cluster.client.task(id).await.unwrap();
        assert!(
            t.message.as_deref().unwrap_or("").contains("adopted"),
            "{t:?}"
        );
    }
}

/// Damages the newest commit of a redb file the way a torn header write would: redb 4
/// keeps two commit slots of 128 bytes at offsets 64 and 192 of its header, the god byte
/// (offset 9) says which is the newest (bit 1) and whether recovery is needed (bit 2),
/// and each slot ends in a 16-byte checksum. A slot failing its checksum makes redb fall
/// back to the other one: the commit before.
fn damage_newest_commit_slot(file: &Path) {
    let mut bytes = std::fs::read(file).unwrap();
    assert_eq!(&bytes[..4], b"redb", "not a redb file");
    let god = bytes[9];
    let newest = if god & 1 == 0 { 64 } else { 192 };
    bytes[9] |= 2;
    bytes[newest + 128 - 16] ^= 0xff;
    std::fs::write(file, bytes).unwrap();
}

/// (c, as it happens) The newest commit slot of the store damaged: redb opens the commit
/// before it, and the revision record makes the master refuse it.
#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_newest_commit_slot_kills_no_task() {
    let (mut cluster, tasks) = cluster_with_sleepers().await;
    let data = cluster.dir.path().join("master");
    cluster.master.kill_hard();
    let good = cluster.dir.path().join("good.redb");
    std::fs::copy(store_file(&data), &good).unwrap();
    damage_newest_commit_slot(&store_file(&data));

    let log = cluster.dir.path().join("master-damaged.log");
    let text = refused(
        start_master(&cluster, &data, &[], "master-damaged.log"),
        &log,
    )
    .await;
    assert!(
        text.contains(&store_file(&data).display().to_string())
            && text.contains("master.redb.revision"),
        "{text}"
    );
    eprintln!(
        "damaged commit slot: {} of {TASKS} tasks alive",
        alive(&tasks)
    );
    assert_eq!(alive(&tasks), TASKS, "{}", cluster.logs());

    std::fs::copy(&good, store_file(&data)).unwrap();
    cluster.master = start_master(&cluster, &data, &[], "master-healed.log");
    healed(&cluster, &tasks).await;
}

/// Runs `playbooks/site.yml` from the fleet hosts' hub with build `dist`.
fn site_playbook(hosts: &FleetHosts, dist: &Path) -> std::process::Output {
    let repo = drover_cluster_tests::repo_root();
    hosts
        .hub_command(Path::new("ansible-playbook"))
        .current_dir(&repo)
        .env("ANSIBLE_CONFIG", repo.join("playbooks/ansible.cfg"))
        .env("ANSIBLE_HOST_KEY_CHECKING", "True")
        .env(
            "ANSIBLE_SSH_ARGS",
            format!(
                "-o UserKnownHostsFile={} -o ControlMaster=auto -o ControlPersist=60s",
                hosts.known_hosts.display()
            ),
        )
        .args([
            "-i",
            hosts.inventory.to_str().unwrap(),
            "playbooks/site.yml",
        ])
        .args(["-e", &format!("drover_dist_dir={}", dist.display())])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// The master role on real (systemd-nspawn) hosts: a first `site.yml` makes the cluster
/// and records it in /etc/drover, leaving no `--init` behind; a second run changes
/// nothing; and after the master's data dir is wiped, a run of `site.yml` does not start
/// an empty cluster: the master refuses, the play fails, and the agent's task lives.
#[test]
fn the_master_role_makes_the_cluster_once_and_a_wiped_master_refuses() {
    if let Some(why) = fleet::unsupported() {
        skipped("the master role on fleet hosts", &why);
        return;
    }
    let dist = fleet::dist("a", drover_api::VERSION);
    let hosts = FleetHosts::start(&["master", "agent1"]);
    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();

    let first = site_playbook(&hosts, &dist);
    assert!(first.status.success(), "site.yml failed:\n{}", text(&first));
    let id = hosts.host_sh("master", "cat /etc/drover/master-cluster-id");
    let id = String::from_utf8_lossy(&id.stdout).trim().to_string();
    assert!(
        drover_api::agent::ClusterId::parse(&id).is_ok(),
        "no cluster recorded: {id:?}\n{}",
        text(&first)
    );
    let dropin = hosts.host_sh(
        "master",
        "test ! -e /run/systemd/system/drover-master.service.d/init.conf",
    );
    assert!(
        dropin.status.success(),
        "the --init drop-in was left behind"
    );

    let second = site_playbook(&hosts, &dist);
    let recap = text(&second);
    assert!(second.status.success(), "{recap}");
    assert!(
        recap
            .lines()
            .filter(|l| l.starts_with("master ") || l.starts_with("agent1 "))
            .all(|l| l.contains("changed=0")),
        "a second run changes nothing:\n{recap}"
    );

    let tasks = hosts.launch_tasks(&bin_path("drover"));
    // The master's data disk is lost (the config in /etc stays).
    let wiped = hosts.host_sh(
        "master",
        "set -e; systemctl stop drover-master; rm -rf /var/lib/private/drover/master /var/lib/drover/master",
    );
    assert!(
        wiped.status.success(),
        "{}",
        String::from_utf8_lossy(&wiped.stderr)
    );
    let third = site_playbook(&hosts, &dist);
    assert!(
        !third.status.success(),
        "site.yml must not bring up an empty cluster:\n{}",
        text(&third)
    );
    let journal = hosts.host_sh("master", "journalctl --no-pager -u drover-master");
    let journal = String::from_utf8_lossy(&journal.stdout);
    assert!(
        journal.contains("was not told to start a new cluster"),
        "the master says why it refuses:\n{journal}"
    );
    for (node, _, pid) in &tasks {
        assert!(
            hosts
                .process_on(node, *pid)
                .is_some_and(|c| c.contains("sleep 100000")),
            "the task on {node} was killed"
        );
    }
}
