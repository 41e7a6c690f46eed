//! Harness for cluster-level tests: starts the real `drover-master`, `drover-agent` and
//! `drover` binaries on loopback, each in its own temporary directory, and kills them
//! when dropped.
//!
//! The binaries come from the workspace's target directory; build them first with
//! `cargo build --workspace --bins` (the test script does).
//!
//! # Layout
//!
//! - [`bin_path`]: where a workspace binary is.
//! - [`Server`]: one running server process and the address it announced.
//! - [`Cluster`]: a master and N agents, and optionally a scheduler
//!   ([`Cluster::start_scheduler`]).
//! - [`wait_for`]: poll a condition until a generous deadline.
//! - [`docker`]: a Docker Engine of the test's own, in a network namespace it creates.
//! - [`fleet`]: test hosts for `drover fleet`: systemd-nspawn containers booting systemd,
//!   each in a network namespace.
//! - [`teardown`]: undoing what a fixture changed on this machine, every step even when one
//!   fails.

#![allow(clippy::unwrap_used)] // test harness: a failure here should fail the test loudly

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use drover_api::client::{MasterClient, SchedulerClient};
use drover_api::node::Node;

pub mod docker;
pub mod fleet;
pub mod teardown;

/// The repository's root (this crate lives in `tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Whether `program` is on the PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs an image build script (`tests/fleet/build-rootfs`, `tests/fresh/build-rootfs`:
/// each builds its image once, caches it, and prints its folder) and returns the folder.
pub fn build_image(script: &Path) -> PathBuf {
    let out = Command::new(script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "{} failed", script.display());
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Why this process cannot make network namespaces, mounts and containers (it is not
/// root), or `None`.
pub fn not_root() -> Option<&'static str> {
    (!nix::unistd::geteuid().is_root())
        .then_some("not root: cannot create network namespaces, mounts and containers")
}

/// Says that `what` was skipped, and why, on the process's own stderr: the test harness
/// captures `eprintln!` of a passing test, but not this, so the line shows in the run's
/// output (and `scripts/test` lists every such line in its summary).
pub fn skipped(what: &str, why: &str) {
    use std::io::Write;
    let test = std::thread::current()
        .name()
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    // One write, so the line is not split by the harness's own output.
    let line = format!("SKIPPED {what}{test}: {why}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Path of a workspace binary (`drover-master`, `drover-agent`, `drover`, `hello`).
pub fn bin_path(name: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("DROVER_BIN_DIR") {
        return Path::new(&dir).join(name);
    }
    // The test executable lives in target/<profile>/deps/; the binaries one level up.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let p = profile_dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: build the binaries first with `cargo build --workspace --bins` (scripts/test does)",
        p.display()
    );
    p
}

/// A block of host ports no other cluster in this test process uses, below the
/// kernel's ephemeral range so that tasks never collide with `:0` binds. A block any of
/// whose ports is bound right now (by another test process on this machine) is skipped.
pub fn port_block(size: u16) -> (u16, u16) {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Spread test processes apart: several may run on one machine at once.
    let base = 20000 + (std::process::id() % 20) as u16 * 600;
    loop {
        let offset = NEXT.fetch_add(size, Ordering::SeqCst);
        let start = 20000 + (base - 20000 + offset) % 12000;
        let end = start + size - 1;
        if end >= 32000 {
            continue;
        }
        let free = (start..=end).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok());
        if free {
            return (start, end);
        }
    }
}

/// One running server process.
pub struct Server {
    /// The process.
    pub child: Child,
    /// The base URL it announced (`http://127.0.0.1:PORT`).
    pub url: String,
    /// The program and arguments, to start it again.
    program: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    log: PathBuf,
}

impl Server {
    /// Starts `program args` and waits for its `listening on http://ADDR` first line.
    /// Standard error goes to `log`.
    pub fn start(program: &Path, args: &[String], envs: &[(String, String)], log: &Path) -> Server {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut child = Command::new(program)
            .args(args)
            .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = tx.send(first);
            }
            // Keep draining so the process never blocks on a full pipe.
            for _ in lines {}
        });
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                let log_text = std::fs::read_to_string(log).unwrap_or_default();
                panic!(
                    "{} did not announce its address; its log:\n{log_text}",
                    program.display()
                )
            });
        let url = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line from {}: {first:?}",
                    program.display()
                )
            })
            .to_string();
        Server {
            child,
            url,
            program: program.into(),
            args: args.to_vec(),
            envs: envs.to_vec(),
            log: log.into(),
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILLs the process and reaps it.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for it to exit (SIGKILL after 10 s).
    pub fn stop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill_hard();
    }

    /// Starts the same program again with the same arguments, replacing `--listen`'s
    /// port 0 with the port it had, so clients keep working.
    pub fn restart(&mut self) {
        let addr = self.url.trim_start_matches("http://").to_string();
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| {
                if a == "127.0.0.1:0" {
                    addr.clone()
                } else {
                    a.clone()
                }
            })
            .collect();
        let fresh = Server::start(&self.program, &args, &self.envs, &self.log);
        // The old process is already dead; dropping it only reaps it.
        let old = std::mem::replace(self, fresh);
        self.args = old.args.clone();
    }

    /// The server's stderr so far (for assertion messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Options for a test cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// How many agents.
    pub agents: usize,
    /// Master heartbeat interval, seconds.
    pub heartbeat_interval: f64,
    /// Master heartbeat timeout, seconds.
    pub heartbeat_timeout: f64,
    /// Ports per agent.
    pub ports_per_agent: u16,
    /// Extra flags for every agent (e.g. `--docker-socket PATH`).
    pub agent_args: Vec<String>,
    /// Extra flags for the master (e.g. `--header-timeout 30`).
    pub master_args: Vec<String>,
    /// The master's open-file limit (soft and hard), set before it starts; `None` keeps
    /// this process's own.
    pub master_nofile: Option<u64>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            agents: 2,
            heartbeat_interval: 0.5,
            heartbeat_timeout: 6.0,
            ports_per_agent: 50,
            agent_args: Vec::new(),
            master_args: Vec::new(),
            master_nofile: None,
        }
    }
}

/// A master and its agents, each a real process on loopback.
pub struct Cluster {
    /// The master.
    pub master: Server,
    /// The agents, named `agent-0`, `agent-1`, ...
    pub agents: Vec<Server>,
    /// A client for the master.
    pub client: MasterClient,
    /// Everything on disk lives under here.
    pub dir: tempfile::TempDir,
    /// The scheduler, once [`Cluster::start_scheduler`] started one.
    pub scheduler: Option<Server>,
    /// Extra flags every agent gets.
    agent_args: Vec<String>,
}

impl Cluster {
    /// Starts a master and `opts.agents` agents and waits until every agent is registered.
    pub async fn start(opts: ClusterOptions) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("drover-test-")
            .tempdir()
            .unwrap();
        // Tasks of a root agent run as its task user: they must reach their sandboxes
        // and the files tests leave for them here (mode 0711: through, not list).
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        }
        let mut master_args = vec![
            "--listen".to_string(),
            "127.0.0.1:0".to_string(),
            "--data-dir".to_string(),
            dir.path().join("master").display().to_string(),
            "--heartbeat-interval".to_string(),
            opts.heartbeat_interval.to_string(),
            "--heartbeat-timeout".to_string(),
            opts.heartbeat_timeout.to_string(),
        ];
        master_args.extend(opts.master_args.iter().cloned());
        let mut program = bin_path("drover-master");
        if let Some(nofile) = opts.master_nofile {
            // The shell sets the limit and execs the master: same pid, the limit in force
            // from its first instruction (its defaults may be derived from it).
            let mut wrapped = vec![
                "-c".to_string(),
                format!("ulimit -n {nofile} && exec \"$0\" \"$@\""),
                program.display().to_string(),
            ];
            wrapped.extend(master_args);
            master_args = wrapped;
            program = PathBuf::from("/bin/sh");
        }
        // A new cluster in a new data dir (the variable, unlike the flag, is harmless to
        // a master that predates it, and a restart with it keeps the store's id).
        let master = Server::start(
            &program,
            &master_args,
            &[("DROVER_MASTER_INIT".to_string(), "true".to_string())],
            &dir.path().join("master.log"),
        );
        let client = MasterClient::new(&master.url, None).unwrap();
        let mut cluster = Cluster {
            master,
            agents: Vec::new(),
            client,
            dir,
            scheduler: None,
            agent_args: opts.agent_args.clone(),
        };
        for i in 0..opts.agents {
            cluster.add_agent(i, opts.ports_per_agent);
        }
        let n = opts.agents;
        cluster
            .wait_nodes("every agent registered", move |nodes| {
                nodes
                    .iter()
                    .filter(|n| n.state == drover_api::node::NodeState::Ready)
                    .count()
                    == n
            })
            .await;
        cluster
    }

    fn add_agent(&mut self, i: usize, ports: u16) {
        let (lo, hi) = port_block(ports);
        let mut args = vec![
            "--master".to_string(),
            self.master.url.clone(),
            "--listen".to_string(),
            "127.0.0.1:0".to_string(),
            "--name".to_string(),
            format!("agent-{i}"),
            "--work-dir".to_string(),
            self.dir
                .path()
                .join(format!("agent-{i}"))
                .display()
                .to_string(),
            "--ports".to_string(),
            format!("{lo}-{hi}"),
            "--attributes".to_string(),
            format!("rack=r{},zone=z", i % 2),
        ];
        args.extend(self.agent_args.iter().cloned());
        let log = self.dir.path().join(format!("agent-{i}.log"));
        self.agents
            .push(Server::start(&bin_path("drover-agent"), &args, &[], &log));
    }

    /// Starts a `drover-scheduler` against this cluster's master, with its data under the
    /// cluster's directory and `extra` flags (e.g. `--job-retry-delay 0.5`).
    pub fn start_scheduler(&mut self, extra: &[&str]) -> &Server {
        let mut args = vec![
            "--master".to_string(),
            self.master.url.clone(),
            "--listen".to_string(),
            "127.0.0.1:0".to_string(),
            "--data-dir".to_string(),
            self.dir.path().join("scheduler").display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = self.dir.path().join("scheduler.log");
        let envs = vec![(
            "RUST_LOG".to_string(),
            "info,drover_scheduler=debug".to_string(),
        )];
        self.scheduler = Some(Server::start(
            &bin_path("drover-scheduler"),
            &args,
            &envs,
            &log,
        ));
        self.scheduler.as_ref().unwrap()
    }

    /// The scheduler's base URL; panics when none was started.
    pub fn scheduler_url(&self) -> String {
        self.scheduler
            .as_ref()
            .expect("no scheduler started")
            .url
            .clone()
    }

    /// A client for the scheduler; panics when none was started.
    pub fn scheduler_client(&self) -> SchedulerClient {
        SchedulerClient::new(&self.scheduler_url(), None).unwrap()
    }

    /// Waits until the node list satisfies `ok`, or panics after 30 s with the last list.
    pub async fn wait_nodes(&self, what: &str, ok: impl Fn(&[Node]) -> bool) -> Vec<Node> {
        let client = self.client.clone();
        wait_for(what, Duration::from_secs(30), || {
            let client = client.clone();
            let ok = &ok;
            async move {
                let nodes = client.nodes().await.ok()?;
                ok(&nodes).then_some(nodes)
            }
        })
        .await
    }

    /// Runs the `drover` CLI against this cluster and returns (exit code, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(bin_path("drover"))
            .args(args)
            .env("DROVER_MASTER", &self.master.url)
            .envs(
                self.scheduler
                    .as_ref()
                    .map(|s| ("DROVER_SCHEDULER", s.url.clone())),
            )
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs the CLI with `--json` and parses its stdout; panics on a non-zero exit.
    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let (code, out, err) = self.cli(&all);
        assert_eq!(code, 0, "drover {args:?} failed: {err}");
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("drover {args:?} printed non-JSON ({e}): {out}"))
    }

    /// All the logs, for a failing assertion's message.
    pub fn logs(&self) -> String {
        let mut s = format!("--- master ---\n{}", self.master.log_text());
        for (i, a) in self.agents.iter().enumerate() {
            s.push_str(&format!("\n--- agent-{i} ---\n{}", a.log_text()));
        }
        if let Some(sched) = &self.scheduler {
            s.push_str(&format!("\n--- scheduler ---\n{}", sched.log_text()));
        }
        s
    }
}

impl Drop for Cluster {
    /// Task processes and their shims outlive agents by design, so a test that ends
    /// without killing its tasks would leave them running (and holding ports). Kill every
    /// task's process group and its shim, found through the sandboxes' pid files, before
    /// the agents and the temporary directory go.
    fn drop(&mut self) {
        if let Some(s) = self.scheduler.as_mut() {
            s.kill_hard();
        }
        for a in &mut self.agents {
            a.kill_hard();
        }
        let Ok(agents) = std::fs::read_dir(self.dir.path()) else {
            return;
        };
        for agent in agents.flatten() {
            let Ok(tasks) = std::fs::read_dir(agent.path().join("tasks")) else {
                continue;
            };
            for task in tasks.flatten() {
                for (file, group) in [("pid.json", true), ("shim.json", false)] {
                    let record = std::fs::read_to_string(task.path().join(file))
                        .ok()
                        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
                    let Some(record) = record else { continue };
                    let process = record.get("process").unwrap_or(&record);
                    let pid = process
                        .get("pid")
                        .and_then(|p| p.as_i64())
                        .filter(|p| *p > 1);
                    let start = process.get("start_time").and_then(|t| t.as_u64());
                    // Only the very process the file names: a reused pid is left alone.
                    if let Some(pid) =
                        pid.filter(|p| start.is_some() && start_time(*p as u32) == start)
                    {
                        use nix::sys::signal::{Signal, kill, killpg};
                        use nix::unistd::Pid;
                        if group {
                            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
                        }
                        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                    }
                }
            }
        }
    }
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after `timeout` naming
/// `what`. Tests wait on conditions, never on fixed sleeps or elapsed-time assertions.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks since boot.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// Whether a process with this pid exists and is not a zombie.
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the parenthesised command name.
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next());
            state != Some("Z")
        }
        Err(_) => false,
    }
}
