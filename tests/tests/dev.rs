//! `drover dev`: one command brings up a whole cluster, Ctrl-C leaves nothing behind (every
//! server stopping on its own, with plain-text logs), the exports it prints put the CLI on
//! PATH, a second run resumes the stored apps and jobs, and `init-cluster.sh` posts the
//! examples.
//!
//! Every process `drover dev` starts (servers, shims, tasks) has its command line or its
//! working directory under the test's temporary directory, which is how the tests find
//! them in `/proc`.
//!
//! Build the binaries first: `cargo build --workspace --bins`.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use drover_api::client::{MasterClient, SchedulerClient};
use drover_api::node::NodeState;
use drover_cluster_tests::{bin_path, port_block, process_alive, repo_root, wait_for};

/// A running `drover dev` and the lines it printed.
struct Dev {
    child: Child,
    lines: Receiver<String>,
    stderr: PathBuf,
    /// Its `--data-dir`, where the servers' logs are.
    data: PathBuf,
    master: String,
    scheduler: String,
    /// The `export ...` lines, in order: what a user copies into another shell.
    exports: Vec<String>,
}

impl Dev {
    /// Starts `drover dev ARGS` (which must name `--data-dir`) in `cwd` and waits for its
    /// export line.
    fn start(cwd: &Path, args: &[&str], stderr: &Path) -> Dev {
        Dev::start_with_path(cwd, args, stderr, None)
    }

    /// [`Dev::start`], with `PATH` replaced when given.
    fn start_with_path(cwd: &Path, args: &[&str], stderr: &Path, path: Option<OsString>) -> Dev {
        let data = args
            .iter()
            .position(|a| *a == "--data-dir")
            .and_then(|i| args.get(i + 1))
            .map(PathBuf::from)
            .expect("the tests give --data-dir");
        let err = std::fs::File::create(stderr).unwrap();
        let mut command = Command::new(bin_path("drover"));
        if let Some(path) = path {
            command.env("PATH", path);
        }
        let mut child = command
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
        let mut exports = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    seen.push_str(&line);
                    seen.push('\n');
                    if line.starts_with("export ") {
                        exports.push(line.clone());
                    }
                    if let Some(rest) = line
                        .strip_prefix("export ")
                        .filter(|r| r.contains("DROVER_MASTER="))
                    {
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
                            data,
                            master,
                            scheduler,
                            exports,
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

    /// Sends SIGINT, waits for a clean exit, and checks that every server stopped on its
    /// own after its SIGTERM (dev kills one only once its grace is over, and says so) and
    /// that the servers' logs are plain text.
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
        let err = self.stderr_text();
        assert!(
            err.contains("stopped; state kept in"),
            "drover dev did not finish its shutdown; stderr:\n{err}"
        );
        assert!(
            !err.contains("did not stop within"),
            "a server had to be killed; stderr:\n{err}"
        );
        let logs = log_files(&self.data.join("logs"));
        assert!(
            logs.len() >= 4,
            "expected a log per server under {}, found {logs:?}",
            self.data.display()
        );
        for log in &logs {
            let bytes = std::fs::read(log).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains("did not stop within"),
                "{} says a server had to be killed:\n{text}",
                log.display()
            );
            assert!(
                !bytes.contains(&0x1b),
                "{} holds terminal escape codes:\n{text}",
                log.display()
            );
        }
    }

    /// The directory the `export PATH="DIR:$PATH"` line puts first.
    fn cli_dir(&self) -> PathBuf {
        let line = self
            .exports
            .iter()
            .find(|l| l.starts_with("export PATH="))
            .unwrap_or_else(|| panic!("no PATH export among {:?}", self.exports));
        let dir = line
            .strip_prefix("export PATH=\"")
            .and_then(|r| r.strip_suffix(":$PATH\""))
            .unwrap_or_else(|| panic!("unexpected PATH export: {line}"));
        PathBuf::from(dir)
    }
}

/// A test that fails midway must not leave a cluster running: Ctrl-C it (dev then stops
/// its servers and tasks), and SIGKILL it if that does not work.
impl Drop for Dev {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The regular files under `dir`, recursively.
fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let path = e.path();
        if path.is_dir() {
            out.extend(log_files(&path));
        } else if path.is_file() {
            out.push(path);
        }
    }
    out
}

/// A `PATH` of one directory under `root` linking every program of this `PATH` but
/// `kill`, as on a minimal system without procps: `drover dev` must stop its servers
/// without kill(1).
fn path_without_kill(root: &Path) -> OsString {
    let farm = root.join("path-without-kill");
    std::fs::create_dir_all(&farm).unwrap();
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let link = farm.join(e.file_name());
            // The first directory on PATH wins, as in a lookup.
            if e.file_name() != "kill" && std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(e.path(), &link).unwrap();
            }
        }
    }
    farm.into_os_string()
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
    exports_run_the_cli(&dev);
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

/// The export lines dev prints, pasted into a shell whose PATH lacks the CLI, make
/// `drover nodes` run this build's `drover` against the dev cluster.
fn exports_run_the_cli(dev: &Dev) {
    let cli = bin_path("drover").canonicalize().unwrap();
    assert_eq!(
        dev.cli_dir().join("drover").canonicalize().unwrap(),
        cli,
        "the PATH export names another directory: {:?}",
        dev.exports
    );
    let script = format!(
        "{}\ncommand -v drover\ndrover nodes\n",
        dev.exports.join("\n")
    );
    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg(&script)
        .env("PATH", "/usr/bin:/bin")
        .env_remove("DROVER_MASTER")
        .env_remove("DROVER_SCHEDULER")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script}failed:\n{stdout}\n{stderr}");
    let found = stdout.lines().next().unwrap_or_default();
    assert_eq!(
        Path::new(found).canonicalize().ok().as_deref(),
        Some(cli.as_path()),
        "the exports found another drover:\n{stdout}"
    );
    assert!(
        stdout.contains("dev-agent-0") && stdout.contains("dev-agent-1"),
        "`drover nodes` did not list the dev nodes:\n{stdout}\n{stderr}"
    );
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
    // Also a machine without kill(1): the Ctrl-C at the end must still stop every server
    // on its own, with the tasks init-cluster.sh started running.
    let dev = Dev::start_with_path(
        root,
        &[
            "--empty",
            "--data-dir",
            data.to_str().unwrap(),
            "--port-base",
            port_base.as_str(),
        ],
        &root.join("dev.stderr"),
        Some(path_without_kill(root)),
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
