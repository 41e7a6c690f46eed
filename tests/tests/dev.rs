//! `drover dev`: one command brings up a whole cluster, Ctrl-C leaves nothing behind, a
//! second run resumes the stored apps and jobs, and `init-cluster.sh` posts the examples.
//!
//! Every process `drover dev` starts (servers, shims, tasks) has its command line or its
//! working directory under the test's temporary directory, which is how the tests find
//! them in `/proc`.
//!
//! Build the binaries first: `cargo build --workspace --bins`.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use drover_api::client::{MasterClient, SchedulerClient};
use drover_api::node::NodeState;
use drover_cluster_tests::{bin_path, port_block, process_alive, wait_for};

/// The repository root (tests/ is one level down).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A running `drover dev` and the lines it printed.
struct Dev {
    child: Child,
    lines: Receiver<String>,
    stderr: PathBuf,
    master: String,
    scheduler: String,
}

impl Dev {
    /// Starts `drover dev ARGS` in `cwd` and waits for its export line.
    fn start(cwd: &Path, args: &[&str], stderr: &Path) -> Dev {
        let err = std::fs::File::create(stderr).unwrap();
        let mut child = Command::new(bin_path("drover"))
            .arg("dev")
            .args(args)
            .current_dir(cwd)
            .env_remove("DROVER_MASTER")
            .env_remove("DROVER_SCHEDULER")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(240);
        let mut seen = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    seen.push_str(&line);
                    seen.push('\n');
                    if let Some(rest) = line.strip_prefix("export ") {
                        let mut master = String::new();
                        let mut scheduler = String::new();
                        for kv in rest.split_whitespace() {
                            if let Some(v) = kv.strip_prefix("DROVER_MASTER=") {
                                master = v.to_string();
                            } else if let Some(v) = kv.strip_prefix("DROVER_SCHEDULER=") {
                                scheduler = v.to_string();
                            }
                        }
                        assert!(
                            master.starts_with("http://") && scheduler.starts_with("http://"),
                            "bad export line: {line}"
                        );
                        return Dev {
                            child,
                            lines,
                            stderr: stderr.to_path_buf(),
                            master,
                            scheduler,
                        };
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "drover dev printed no export line; stdout:\n{seen}\nstderr:\n{}",
                        std::fs::read_to_string(stderr).unwrap_or_default()
                    );
                }
            }
        }
    }

    fn master(&self) -> MasterClient {
        MasterClient::new(&self.master, None).unwrap()
    }

    fn scheduler(&self) -> SchedulerClient {
        SchedulerClient::new(&self.scheduler, None).unwrap()
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Sends SIGINT and waits for a clean exit.
    fn interrupt(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "drover dev exited with {status}; stderr:\n{}",
                    self.stderr_text()
                );
                break;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "drover dev did not stop after SIGINT; stderr:\n{}",
                    self.stderr_text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        while self.lines.try_recv().is_ok() {}
    }
}

/// Pids of the live processes whose command line or working directory is under `dir`.
fn processes_under(dir: &Path) -> BTreeSet<u32> {
    let dir = dir.to_string_lossy().into_owned();
    let me = std::process::id();
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me || !process_alive(pid) {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        let cwd = std::fs::read_link(e.path().join("cwd"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        if cmdline.contains(&dir) || cwd.starts_with(&dir) {
            out.insert(pid);
        }
    }
    out
}

/// Waits until none of `pids` and no process under `dir` is alive.
async fn wait_all_gone(dir: &Path, pids: &BTreeSet<u32>) {
    let dir2 = dir.to_path_buf();
    let pids2 = pids.clone();
    wait_for(
        "every process drover dev started is gone",
        Duration::from_secs(30),
        || {
            let left: BTreeSet<u32> = pids2
                .iter()
                .copied()
                .filter(|p| process_alive(*p))
                .chain(processes_under(&dir2))
                .collect();
            async move { left.is_empty().then_some(()) }
        },
    )
    .await;
}

/// Examples for the test: the repository's apps (hello included, so its PATH handling is
/// covered), a job every 2 s and a child of it.
fn write_examples(dir: &Path) {
    std::fs::create_dir_all(dir.join("apps")).unwrap();
    std::fs::create_dir_all(dir.join("jobs")).unwrap();
    for e in std::fs::read_dir(repo_root().join("examples/apps"))
        .unwrap()
        .flatten()
    {
        if e.path().extension().is_some_and(|x| x == "json") {
            std::fs::copy(e.path(), dir.join("apps").join(e.file_name())).unwrap();
        }
    }
    std::fs::write(
        dir.join("jobs/tick.json"),
        r#"{"name": "tick", "command": "echo tick", "schedule": "R//PT2S", "cpus": 0.01, "mem": 8, "disk": 1}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("jobs/tock.json"),
        r#"{"name": "tock", "command": "echo tock", "parents": ["tick"], "cpus": 0.01, "mem": 8, "disk": 1}"#,
    )
    .unwrap();
}

/// Waits until both nodes are ready, every app has its instances ready and `tick` ran.
async fn check_cluster(dev: &Dev) -> Vec<(String, Option<String>)> {
    let master = dev.master();
    wait_for(
        "both dev agents registered",
        Duration::from_secs(60),
        || {
            let master = master.clone();
            async move {
                let nodes = master.nodes().await.ok()?;
                let ready = nodes
                    .iter()
                    .filter(|n| n.name.starts_with("dev-agent-") && n.state == NodeState::Ready)
                    .count();
                (ready == 2).then_some(())
            }
        },
    )
    .await;
    let sched = dev.scheduler();
    let jobs: BTreeSet<String> = sched
        .jobs()
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.job.name)
        .collect();
    assert!(
        jobs.contains("tick") && jobs.contains("tock"),
        "jobs: {jobs:?}; stderr:\n{}",
        dev.stderr_text()
    );
    let apps = wait_for("every example app ready", Duration::from_secs(180), || {
        let sched = sched.clone();
        async move {
            let apps = sched.apps().await.ok()?;
            let all = apps.len() == 4
                && apps.iter().all(|a| {
                    a.status
                        .as_ref()
                        .is_some_and(|s| s.tasks.ready >= a.app.instances)
                });
            all.then_some(apps)
        }
    })
    .await;
    wait_for("the 2-second job has run", Duration::from_secs(90), || {
        let sched = sched.clone();
        async move { (sched.job_stats("tick").await.ok()?.success_count >= 1).then_some(()) }
    })
    .await;
    apps.into_iter()
        .map(|a| (a.app.id.to_string(), a.app.version))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_runs_a_cluster_stops_everything_and_resumes() {
    let tmp = tempfile::Builder::new()
        .prefix("drover-dev-test-")
        .tempdir()
        .unwrap();
    let root = tmp.path();
    let examples = root.join("examples");
    write_examples(&examples);
    let data = root.join("data");
    let (port_base, _) = port_block(200);
    let port_base = port_base.to_string();
    let args = [
        "--data-dir",
        data.to_str().unwrap(),
        "--agents",
        "2",
        "--examples",
        examples.to_str().unwrap(),
        "--port-base",
        port_base.as_str(),
    ];

    // (1) Up, everything ready and running, then Ctrl-C leaves nothing behind.
    let dev = Dev::start(root, &args, &root.join("dev1.stderr"));
    let versions = check_cluster(&dev).await;
    let started = processes_under(root);
    // Servers (4) plus app tasks and their shims at the very least.
    assert!(
        started.len() >= 4 + 8,
        "expected servers, shims and tasks under {}, found {started:?}",
        root.display()
    );
    let ran_before = dev
        .scheduler()
        .job_stats("tick")
        .await
        .unwrap()
        .success_count;
    dev.interrupt();
    wait_all_gone(root, &started).await;

    // (2) Again on the same data dir: resumed, not re-created.
    let dev = Dev::start(root, &args, &root.join("dev2.stderr"));
    let err = dev.stderr_text();
    assert!(
        err.contains("resuming: 6 example(s)"),
        "second run did not resume; stderr:\n{err}"
    );
    assert!(
        !err.contains("created"),
        "second run re-created something; stderr:\n{err}"
    );
    let again = check_cluster(&dev).await;
    assert_eq!(versions, again, "app versions changed across the restart");
    // (3) A second `drover dev` on the same data dir is refused at once and disturbs
    // nothing.
    let other = Command::new(bin_path("drover"))
        .arg("dev")
        .args(args)
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let other_err = String::from_utf8_lossy(&other.stderr);
    assert!(!other.status.success(), "{other_err}");
    assert!(
        other_err.contains("another `drover dev` runs on"),
        "{other_err}"
    );
    assert_eq!(versions, check_cluster(&dev).await);
    let ran_after = dev
        .scheduler()
        .job_stats("tick")
        .await
        .unwrap()
        .success_count;
    assert!(
        ran_after >= ran_before,
        "tick's history was lost: {ran_before} runs before, {ran_after} after"
    );

    // (4) SIGKILL: the servers follow `drover dev` down (their parent-death signal);
    // the tasks keep running, as they do when an agent stops.
    let servers = server_pids(root);
    assert!(servers.len() >= 4, "{servers:?}");
    let mut dev = dev;
    dev.child.kill().unwrap();
    dev.child.wait().unwrap();
    wait_for(
        "the servers gone after SIGKILL",
        Duration::from_secs(30),
        || {
            let left: Vec<u32> = servers
                .iter()
                .copied()
                .filter(|p| process_alive(*p))
                .collect();
            async move { left.is_empty().then_some(()) }
        },
    )
    .await;

    // (5) The next run adopts those tasks, and Ctrl-C then leaves nothing behind.
    let dev = Dev::start(root, &args, &root.join("dev3.stderr"));
    assert_eq!(versions, check_cluster(&dev).await);
    let started = processes_under(root);
    dev.interrupt();
    wait_all_gone(root, &started).await;
}

/// The servers among [`processes_under`] `dir` (shims and tasks have neither flag).
fn server_pids(dir: &Path) -> BTreeSet<u32> {
    processes_under(dir)
        .into_iter()
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            cmdline.contains("--data-dir") || cmdline.contains("--work-dir")
        })
        .collect()
}

/// Runs init-cluster.sh against `url` with the examples in `dir`.
fn init_cluster(url: &str, dir: &Path) -> (i32, String, String) {
    let out = Command::new(repo_root().join("init-cluster.sh"))
        .arg(url)
        .arg(dir)
        .env_remove("DROVER_TOKEN")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Copies `from`'s `*.json` files (one level of subfolders) into `to`.
fn copy_examples(from: &Path, to: &Path) {
    for sub in ["apps", "jobs"] {
        std::fs::create_dir_all(to.join(sub)).unwrap();
        for e in std::fs::read_dir(from.join(sub)).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "json") {
                std::fs::copy(e.path(), to.join(sub).join(e.file_name())).unwrap();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_cluster_posts_the_examples_and_fails_loudly() {
    let tmp = tempfile::Builder::new()
        .prefix("drover-dev-init-")
        .tempdir()
        .unwrap();
    let root = tmp.path();
    let data = root.join("data");
    let (port_base, _) = port_block(200);
    let port_base = port_base.to_string();
    let dev = Dev::start(
        root,
        &[
            "--empty",
            "--data-dir",
            data.to_str().unwrap(),
            "--port-base",
            port_base.as_str(),
        ],
        &root.join("dev.stderr"),
    );

    let good = root.join("good");
    copy_examples(&repo_root().join("examples"), &good);
    let (code, out, err) = init_cluster(&dev.scheduler, &good);
    assert_eq!(code, 0, "init-cluster.sh failed:\n{out}\n{err}");
    let sched = dev.scheduler();
    let jobs = sched.jobs().await.unwrap();
    let apps = sched.apps().await.unwrap();
    let n_jobs = std::fs::read_dir(good.join("jobs")).unwrap().count();
    let n_apps = std::fs::read_dir(good.join("apps")).unwrap().count();
    assert_eq!(
        (jobs.len(), apps.len()),
        (n_jobs, n_apps),
        "not every example was created:\n{out}"
    );

    // A broken definition: refused, named, and the script exits non-zero.
    let bad = root.join("bad");
    copy_examples(&repo_root().join("examples"), &bad);
    let broken = bad.join("jobs/10-nightly-sales-report.json");
    let text = std::fs::read_to_string(&broken)
        .unwrap()
        .replace("R/2026-01-01T02:30:00Z/P1D", "every night at half past two");
    std::fs::write(&broken, text).unwrap();
    let (code, out, err) = init_cluster(&dev.scheduler, &bad);
    assert_ne!(
        code, 0,
        "init-cluster.sh accepted a broken job:\n{out}\n{err}"
    );
    assert!(
        err.contains("FAIL") && err.contains("10-nightly-sales-report.json"),
        "the refused file is not named:\n{err}"
    );
    let started = processes_under(root);
    dev.interrupt();
    wait_all_gone(root, &started).await;
}
