//! A Docker Engine of the test's own, inside a network namespace the test creates.
//!
//! [`run_in_netns`] creates a namespace with only `lo` up, starts `dockerd` in it (through
//! `nsenter --net`, not `ip netns exec`, which remounts `/sys` and hides the cgroup
//! mounts dockerd needs), moves a fresh thread into the same namespace and runs the test
//! there. Every process the test starts (master, agents, scheduler, CLI) inherits the
//! namespace, so:
//! - the Docker bridge, its iptables rules and the published host ports of `BRIDGE`
//!   containers exist only inside it, where the agent's health checks reach them on
//!   `127.0.0.1` like any task port (Docker's userland proxy answers there);
//! - the cluster talks over the namespace's own loopback, and nothing reaches the host's
//!   network: no route leaves the namespace.
//!
//! There is no registry: images are made locally ([`DockerDaemon::import_busybox`]: a
//! static busybox from Debian's `busybox-static` as `library/busybox:latest`;
//! [`DockerDaemon::import_hello`]: the example web service, built static for musl, in an
//! image with nothing else in it). Dropping the daemon stops dockerd by its pid (which
//! stops its containers) and deletes the namespace.
//!
//! A daemon that cannot start fails the test with dockerd's own log: nothing is skipped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::teardown::{self, Teardown};

/// A running dockerd in its own network namespace.
pub struct DockerDaemon {
    /// The namespace's name (`/run/netns/<ns>`).
    pub ns: String,
    /// Data root, exec root, socket and log live here.
    pub dir: tempfile::TempDir,
    /// `unix://` path of the engine's socket.
    pub socket: PathBuf,
    child: Child,
}

/// The docker CLI (Debian's, which matches the daemon, when present).
fn docker_cli() -> &'static str {
    if Path::new("/usr/bin/docker").exists() {
        "/usr/bin/docker"
    } else {
        "docker"
    }
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl DockerDaemon {
    /// Creates the namespace and starts dockerd in it; waits until it answers.
    pub fn start() -> DockerDaemon {
        static N: AtomicU32 = AtomicU32::new(0);
        let ns = format!(
            "drover-dk-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        // Short paths: containerd's sockets live under the exec root (108-byte limit).
        let dir = tempfile::Builder::new()
            .prefix("drdk-")
            .tempdir_in("/tmp")
            .unwrap();
        let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        run(Command::new("ip").args(["netns", "add", &ns]));
        run(Command::new("ip").args(["netns", "exec", &ns, "ip", "link", "set", "lo", "up"]));
        let socket = dir.path().join("docker.sock");
        let log = std::fs::File::create(dir.path().join("dockerd.log")).unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{ns}"))
            .arg("dockerd")
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                let _ = Command::new("ip").args(["netns", "del", &ns]).output();
                panic!("cannot start dockerd (scripts/setup installs docker.io): {e}");
            }
        };
        let daemon = DockerDaemon {
            ns,
            dir,
            socket,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = Command::new(docker_cli())
                .arg("-H")
                .arg(daemon.host())
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                break;
            }
            if Instant::now() > deadline {
                panic!(
                    "dockerd did not answer within 60 s; its log:\n{}",
                    daemon.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        daemon
    }

    /// `unix:///.../docker.sock`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// dockerd's log.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    /// Runs the docker CLI against this daemon; returns its output whatever the exit.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new(docker_cli())
            .arg("-H")
            .arg(self.host())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs the docker CLI and returns its stdout; panics on a non-zero exit.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Moves the calling thread (and every process or thread it starts from now on) into
    /// the daemon's network namespace.
    pub fn enter(&self) {
        let f = std::fs::File::open(format!("/run/netns/{}", self.ns)).unwrap();
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
            .unwrap_or_else(|e| panic!("cannot enter network namespace {}: {e}", self.ns));
    }

    /// Imports Debian's static busybox, with a link for every applet, as
    /// `library/busybox:latest` (what `"image": "busybox"` resolves to).
    pub fn import_busybox(&self) {
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("busybox is missing: scripts/setup installs busybox-static");
        let root = self.dir.path().join("busybox-root");
        for d in ["bin", "tmp", "etc", "proc", "sys", "dev"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        // Containers run as the agent's task user: /tmp is everyone's, as in real images.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))
                .unwrap();
        }
        std::fs::copy(busybox, root.join("bin/busybox")).unwrap();
        let list = run(Command::new(busybox).arg("--list"));
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            let link = root.join("bin").join(applet.trim());
            if applet.trim().is_empty() || link.exists() {
                continue;
            }
            std::os::unix::fs::symlink("busybox", link).unwrap();
        }
        self.import_dir(&root, "library/busybox:latest", &[]);
    }

    /// Imports the example web service (`hello`, built static for musl) as `tag`, with
    /// nothing else in the image: `ENTRYPOINT ["/hello"]`, listening on all addresses,
    /// and `HELLO_VERSION` set to `version`.
    pub fn import_hello(&self, tag: &str, version: &str) {
        let root = self.dir.path().join(format!("hello-root-{version}"));
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        std::fs::copy(static_hello(), root.join("hello")).unwrap();
        self.import_dir(
            &root,
            tag,
            &[
                r#"ENTRYPOINT ["/hello"]"#.to_string(),
                "ENV HELLO_HOST=0.0.0.0".to_string(),
                format!("ENV HELLO_VERSION={version}"),
            ],
        );
    }

    fn import_dir(&self, root: &Path, tag: &str, changes: &[String]) {
        let tar = self
            .dir
            .path()
            .join(format!("{}.tar", tag.replace(['/', ':'], "_")));
        run(Command::new("tar")
            .arg("-C")
            .arg(root)
            .arg("-cf")
            .arg(&tar)
            .arg("."));
        let mut args = vec!["import".to_string()];
        for c in changes {
            args.push("--change".to_string());
            args.push(c.clone());
        }
        args.push(tar.display().to_string());
        args.push(tag.to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.docker_ok(&args);
    }

    /// Ids of the containers (running or not) carrying `label` (`k` or `k=v`).
    pub fn containers(&self, label: &str) -> Vec<String> {
        self.docker_ok(&[
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label={label}"),
        ])
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
    }

    /// `docker inspect -f FORMAT ID`, trimmed.
    pub fn inspect(&self, id: &str, format: &str) -> String {
        self.docker_ok(&["inspect", "-f", format, id])
            .trim()
            .to_string()
    }
}

impl Drop for DockerDaemon {
    fn drop(&mut self) {
        use nix::sys::signal::Signal;
        let mut t = Teardown::new(format!("dockerd in namespace {}", self.ns));
        // SIGTERM: dockerd stops its containers and its containerd, then exits.
        let pid = self.child.id();
        t.step(format_args!("SIGTERM to dockerd {pid}"), || {
            teardown::signal(pid, Signal::SIGTERM)
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        t.step(format_args!("stop dockerd {pid}"), || {
            if matches!(self.child.try_wait(), Ok(None)) {
                self.child.kill().map_err(|e| e.to_string())?;
            }
            self.child.wait().map(drop).map_err(|e| e.to_string())
        });
        t.step(format_args!("delete namespace {}", self.ns), || {
            teardown::run(&["ip", "netns", "del", &self.ns]).map(drop)
        });
        // Overlay mounts dockerd failed to undo would keep the data root busy.
        let root = self.dir.path().display().to_string();
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        for m in mounts.lines().filter_map(|l| l.split_whitespace().nth(1)) {
            if m.starts_with(&root) {
                t.step(format_args!("unmount {m}"), || {
                    teardown::unmount(Path::new(m))
                });
            }
        }
        t.finish();
    }
}

/// The `hello` example built static (musl), so it runs in an image with nothing else:
/// built on first use into the same target directory as the tests.
pub fn static_hello() -> PathBuf {
    static BUILT: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = built.as_ref() {
        return p.clone();
    }
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> -> target
    let target_dir = exe.ancestors().nth(3).unwrap().to_path_buf();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let triple = "x86_64-unknown-linux-musl";
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let out = Command::new(cargo)
        .current_dir(workspace)
        .env("CARGO_TARGET_DIR", &target_dir)
        .args(["build", "-q", "-p", "hello", "--target", triple])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cannot build hello for {triple} (rustup target add {triple}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = target_dir.join(triple).join("debug").join("hello");
    assert!(p.exists(), "{} is missing after the build", p.display());
    *built = Some(p.clone());
    p
}

/// Runs `test` on a fresh thread inside a new network namespace with its own dockerd,
/// on a current-thread tokio runtime (so every socket and child process of the test is
/// in the namespace). A panic in the test fails the caller; the daemon is cleaned up.
/// Not as root, nothing runs and the test says it skipped (namespaces need root).
pub fn run_in_netns<F, Fut>(test: F)
where
    F: FnOnce(DockerDaemon) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    if let Some(why) = crate::not_root() {
        crate::skipped("Docker test", why);
        return;
    }
    let handle = std::thread::spawn(move || {
        let daemon = DockerDaemon::start();
        daemon.enter();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(test(daemon));
    });
    if let Err(panic) = handle.join() {
        std::panic::resume_unwind(panic);
    }
}
