//! Checks 4 and 5 of the "static binaries that install themselves" issue.
//!
//! - Static release builds: the binaries in `dist/` (built by `scripts/dist` when missing
//!   or older than the sources) are static (`file`, `ldd`) and run inside an empty chroot
//!   holding nothing but themselves, the agent with `/proc` mounted; a chrooted agent
//!   registers with a chrooted master.
//! - Self-install: `install --root` writes only on change and says so in one JSON line;
//!   `--check` shows a changed master URL as a diff and writes nothing; `uninstall`
//!   removes what was written; the rendered units pass `systemd-analyze verify` where it
//!   exists; the rendered config files run the real daemons.
//!
//! Checks that cannot run here (not root, no `chroot`, no `systemd-analyze`) say so on
//! the test process's stderr, which the harness does not capture, and pass.

#![allow(clippy::unwrap_used)] // tests: a failure should fail loudly

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use drover_api::client::MasterClient;
use drover_api::node::NodeState;
use drover_cluster_tests::teardown::{Teardown, unmount};
use drover_cluster_tests::{
    Server, bin_path, have, not_root, port_block, repo_root, skipped, wait_for,
};

/// Whether the scheduler has a binary yet (it is built and checked once it has).
fn have_scheduler() -> bool {
    repo_root()
        .join("agents/drover-scheduler/src/main.rs")
        .exists()
}

/// The binaries `scripts/dist` puts into `dist/`.
fn dist_bins() -> Vec<&'static str> {
    let mut bins = vec!["drover-master", "drover-agent", "drover", "hello"];
    if have_scheduler() {
        bins.push("drover-scheduler");
    }
    bins
}

/// The newest modification time among the files the release binaries are built from.
fn newest_source() -> SystemTime {
    fn walk(dir: &Path, newest: &mut SystemTime) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name.starts_with("target") || name == "dist" {
                continue;
            }
            match entry.metadata() {
                Ok(m) if m.is_dir() => walk(&path, newest),
                Ok(m) => {
                    if let Ok(t) = m.modified() {
                        *newest = (*newest).max(t);
                    }
                }
                Err(_) => {}
            }
        }
    }
    let root = repo_root();
    let mut newest = SystemTime::UNIX_EPOCH;
    for dir in ["agents", "examples"] {
        walk(&root.join(dir), &mut newest);
    }
    for file in ["Cargo.toml", "Cargo.lock", "scripts/dist"] {
        if let Ok(t) = std::fs::metadata(root.join(file)).and_then(|m| m.modified()) {
            newest = newest.max(t);
        }
    }
    newest
}

/// `dist/`, built by `scripts/dist` first unless `dist/SHA256SUMS` is newer than every
/// source file and lists every binary (the first build takes minutes; later ones only
/// what changed). One test at a time builds.
fn dist() -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    let _one_at_a_time = BUILD
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let dist = repo_root().join("dist");
    let sums = dist.join("SHA256SUMS");
    let listed = std::fs::read_to_string(&sums).unwrap_or_default();
    let complete = dist_bins()
        .iter()
        .all(|b| listed.lines().any(|l| l.ends_with(&format!("  {b}"))));
    let fresh = std::fs::metadata(&sums)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t > newest_source());
    if !(complete && fresh) {
        let _ = writeln!(
            std::io::stderr(),
            "dist/ is missing or stale: running scripts/dist (minutes the first time)"
        );
        // Its output goes straight to the terminal, so a long build shows progress.
        let status = Command::new(repo_root().join("scripts/dist"))
            .current_dir(repo_root())
            .status()
            .unwrap();
        assert!(status.success(), "scripts/dist failed: {status}");
    }
    dist
}

#[test]
fn dist_binaries_are_static() {
    let dist = dist();
    for b in dist_bins() {
        let path = dist.join(b);
        let size = std::fs::metadata(&path).unwrap().len();
        let _ = writeln!(
            std::io::stderr(),
            "dist/{b}: {size} bytes ({:.1} MiB)",
            size as f64 / 1048576.0
        );
        assert!(
            size < 20 * 1024 * 1024,
            "{b} is {size} bytes, over the 20 MiB goal"
        );
        if have("file") {
            let out = Command::new("file").arg(&path).output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            // The default build is position-dependent: `file` says "statically linked",
            // the words DESIGN.md promises. A static-pie build (DROVER_DIST_PIE=1, see
            // scripts/dist) is static too but worded differently.
            let pie = std::env::var("DROVER_DIST_PIE").as_deref() == Ok("1");
            let wanted = if pie {
                "static-pie linked"
            } else {
                "statically linked"
            };
            assert!(
                text.contains(wanted),
                "{b}: `file` should say {wanted:?}: {text}"
            );
            assert!(
                !text.contains("dynamically linked") && !text.contains("interpreter"),
                "{text}"
            );
        } else {
            skipped(
                "the `file` check",
                "`file` is not installed (scripts/setup installs it)",
            );
        }
        if have("ldd") {
            let out = Command::new("ldd").arg(&path).output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            // glibc's ldd says "not a dynamic executable" for static binaries and
            // "statically linked" for static-pie ones; either way it lists no library.
            assert!(
                text.contains("not a dynamic executable") || text.contains("statically linked"),
                "ldd {b}: {text}"
            );
            assert!(!text.contains("=>"), "ldd {b}: {text}");
        } else {
            skipped("the `ldd` check", "`ldd` is not installed");
        }
    }
    let out = Command::new("sha256sum")
        .args(["--check", "--quiet", "SHA256SUMS"])
        .current_dir(&dist)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "SHA256SUMS does not match: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// An empty directory holding one binary, with `/proc` mounted when asked; unmounted
/// when dropped.
struct Jail {
    dir: tempfile::TempDir,
    proc_mounted: bool,
}

impl Jail {
    fn new(binary: &Path, with_proc: bool) -> Jail {
        let dir = tempfile::Builder::new()
            .prefix("drover-chroot-")
            .tempdir()
            .unwrap();
        std::fs::copy(binary, dir.path().join(binary.file_name().unwrap())).unwrap();
        let mut jail = Jail {
            dir,
            proc_mounted: false,
        };
        if with_proc {
            let proc_dir = jail.dir.path().join("proc");
            std::fs::create_dir(&proc_dir).unwrap();
            let status = Command::new("mount")
                .args(["-t", "proc", "proc"])
                .arg(&proc_dir)
                .status()
                .unwrap();
            assert!(status.success(), "mount -t proc failed: {status}");
            jail.proc_mounted = true;
        }
        jail
    }

    fn path(&self) -> String {
        self.dir.path().display().to_string()
    }

    /// Runs `/NAME args` inside the jail and returns its stdout, asserting success.
    fn run(&self, name: &str, args: &[&str]) -> String {
        let out = Command::new("chroot")
            .arg(self.dir.path())
            .arg(format!("/{name}"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "chroot {} /{name} {args:?}: {}\n{}",
            self.path(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Jail {
    fn drop(&mut self) {
        if self.proc_mounted {
            let proc_dir = self.dir.path().join("proc");
            let mut t = Teardown::new(format!("chroot {}", self.path()));
            t.step(format_args!("unmount {}", proc_dir.display()), || {
                unmount(&proc_dir)
            });
            t.finish();
        }
    }
}

/// Whether this process may chroot and mount, or why not.
fn chroot_unavailable() -> Option<String> {
    if let Some(why) = not_root() {
        return Some(why.into());
    }
    for tool in ["chroot", "mount"] {
        if !have(tool) {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dist_binaries_run_in_an_empty_chroot() {
    if let Some(why) = chroot_unavailable() {
        skipped("the empty-chroot test", &why);
        return;
    }
    let dist = dist();
    for b in dist_bins() {
        let jail = Jail::new(&dist.join(b), false);
        if b == "hello" {
            assert!(jail.run(b, &["--help"]).starts_with("usage: hello"));
        } else {
            let out = jail.run(b, &["--version"]);
            assert!(out.starts_with(&format!("{b} ")), "{b} --version: {out:?}");
        }
    }

    // The real thing: a master and an agent, each alone in its chroot, the agent with
    // /proc (it reads the host's resources and its own binary there), find each other.
    let logs = tempfile::tempdir().unwrap();
    let master_jail = Jail::new(&dist.join("drover-master"), false);
    let mut master = Server::start(
        Path::new("chroot"),
        &[
            master_jail.path(),
            "/drover-master".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--data-dir".into(),
            "/data".into(),
        ],
        // A first start on an empty data dir: a new cluster.
        &[("DROVER_MASTER_INIT".into(), "true".into())],
        &logs.path().join("master.log"),
    );
    let agent_jail = Jail::new(&dist.join("drover-agent"), true);
    let (lo, hi) = port_block(10);
    let mut agent = Server::start(
        Path::new("chroot"),
        &[
            agent_jail.path(),
            "/drover-agent".into(),
            "--work-dir".into(),
            "/w".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--master".into(),
            master.url.clone(),
            "--name".into(),
            "chrooted".into(),
            "--ports".into(),
            format!("{lo}-{hi}"),
        ],
        &[],
        &logs.path().join("agent.log"),
    );
    let client = MasterClient::new(&master.url, None).unwrap();
    wait_for(
        "the chrooted agent registered with the chrooted master",
        Duration::from_secs(30),
        || {
            let client = client.clone();
            async move {
                let nodes = client.nodes().await.ok()?;
                nodes
                    .iter()
                    .any(|n| n.name == "chrooted" && n.state == NodeState::Ready)
                    .then_some(())
            }
        },
    )
    .await;
    let health = reqwest::get(format!("{}/health", agent.url)).await.unwrap();
    assert!(
        health.status().is_success(),
        "agent /health: {}",
        health.status()
    );
    agent.stop();
    master.stop();
    assert!(
        agent_jail.dir.path().join("w").is_dir(),
        "the agent made its work dir inside the chroot"
    );
}

/// Runs a workspace binary and returns (exit code, stdout, stderr).
fn run(bin: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin_path(bin))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `bin args` (an install or uninstall), asserts success and one JSON line on stdout,
/// and returns (that line parsed, stderr).
fn install(bin: &str, args: &[&str]) -> (serde_json::Value, String) {
    let (code, out, err) = run(bin, args);
    assert_eq!(code, 0, "{bin} {args:?} failed: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{bin} {args:?} must print one line: {out:?}"
    );
    (serde_json::from_str(lines[0]).unwrap(), err)
}

/// Each file's content and modification time, to prove that nothing was written.
fn snapshot(paths: &[PathBuf]) -> Vec<(Vec<u8>, SystemTime)> {
    paths
        .iter()
        .map(|p| {
            (
                std::fs::read(p).unwrap(),
                std::fs::metadata(p).unwrap().modified().unwrap(),
            )
        })
        .collect()
}

/// The server binaries that have an `install` subcommand, with their config file names.
/// The scheduler joins once its binary exists and has one.
fn installable() -> Vec<(&'static str, &'static str)> {
    let mut bins = vec![("drover-master", "master"), ("drover-agent", "agent")];
    let master = bin_path("drover-master");
    let scheduler = master.with_file_name("drover-scheduler");
    let scheduler_installs = scheduler.exists()
        && Command::new(&scheduler)
            .args(["install", "--help"])
            .output()
            .is_ok_and(|o| o.status.success());
    if scheduler_installs {
        bins.push(("drover-scheduler", "scheduler"));
    } else if have_scheduler() {
        skipped(
            "drover-scheduler install",
            "its binary is not built or has no `install` subcommand yet",
        );
    }
    bins
}

#[test]
fn install_writes_only_on_change_check_writes_nothing_uninstall_removes() {
    for (bin, short) in installable() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path().to_str().unwrap();
        let config = root.path().join(format!("etc/drover/{short}.toml"));
        let unit = root
            .path()
            .join(format!("etc/systemd/system/{bin}.service"));

        let (first, _) = install(bin, &["install", "--root", r]);
        assert_eq!(first["changed"], true, "{bin}: {first}");
        assert_eq!(first["check"], false, "{bin}: {first}");
        let files: Vec<&str> = first["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap())
            .collect();
        assert_eq!(
            files,
            [config.to_str().unwrap(), unit.to_str().unwrap()],
            "{bin}"
        );
        assert!(config.is_file() && unit.is_file(), "{bin}");

        let (second, _) = install(bin, &["install", "--root", r]);
        assert_eq!(second["changed"], false, "{bin}: {second}");
        assert!(
            second["files"]
                .as_array()
                .unwrap()
                .iter()
                .all(|f| f["changed"] == false),
            "{bin}: {second}"
        );
        let before = snapshot(&[config.clone(), unit.clone()]);

        // A changed value: --check shows the diff, says changed, and writes nothing.
        let changed_args: &[&str] = match bin {
            "drover-master" => &["--task-history", "77"],
            "drover-agent" => &["--master", "http://10.9.9.9:5050"],
            _ => &["--listen", "127.0.0.1:18080"],
        };
        let mut args = vec!["install", "--root", r, "--check"];
        args.extend_from_slice(changed_args);
        let (check, diff) = install(bin, &args);
        assert_eq!(check["changed"], true, "{bin}: {check}");
        assert_eq!(check["check"], true, "{bin}: {check}");
        assert!(
            diff.contains(&format!("--- {} (current)", config.display())),
            "{bin} diff:\n{diff}"
        );
        assert!(
            diff.lines()
                .any(|l| l.starts_with('+') && l.contains(changed_args[1])),
            "{bin} diff:\n{diff}"
        );
        if bin == "drover-agent" {
            assert!(
                diff.contains(
                    "-master = \"http://127.0.0.1:5050\"\n+master = \"http://10.9.9.9:5050\""
                ),
                "{diff}"
            );
        }
        assert_eq!(
            snapshot(&[config.clone(), unit.clone()]),
            before,
            "{bin}: --check wrote something"
        );

        let (gone, _) = install(bin, &["uninstall", "--root", r]);
        assert_eq!(gone["changed"], true, "{bin}: {gone}");
        assert!(
            !config.exists() && !unit.exists(),
            "{bin}: uninstall left files"
        );
        let (again, _) = install(bin, &["uninstall", "--root", r]);
        assert_eq!(again["changed"], false, "{bin}: {again}");
    }
}

#[test]
fn rendered_units_pass_systemd_analyze_verify() {
    if !have("systemd-analyze") {
        skipped(
            "systemd-analyze verify",
            "systemd-analyze is not installed (Debian's `systemd` package has it)",
        );
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let token = root.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    for (bin, _) in installable() {
        // `verify` checks that ExecStart's binary exists: point the unit at the real one.
        let exe = bin_path(bin);
        let variants: Vec<Vec<String>> = vec![
            vec![],
            // Wide bind with a token file, a privileged port, a data dir outside /var/lib.
            vec![
                "--listen".into(),
                "0.0.0.0:80".into(),
                "--token-file".into(),
                token.display().to_string(),
            ],
        ];
        for (i, extra) in variants.iter().enumerate() {
            let sub = root.path().join(format!("{bin}-{i}"));
            let mut args: Vec<String> =
                vec!["install".into(), "--root".into(), sub.display().to_string()];
            args.extend(["--bin".into(), exe.display().to_string()]);
            args.extend(extra.iter().cloned());
            if i == 1 && bin != "drover-agent" {
                args.extend(["--data-dir".into(), "/srv/drover".into()]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            install(bin, &args);
            let unit = sub.join(format!("etc/systemd/system/{bin}.service"));
            let out = Command::new("systemd-analyze")
                .arg("verify")
                .arg(&unit)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            let unit_text = std::fs::read_to_string(&unit).unwrap();
            assert!(
                out.status.success(),
                "systemd-analyze verify {}: {err}\n{unit_text}",
                unit.display()
            );
            // verify exits 0 on unknown keys and bad values, only warning about them.
            let name = format!("{bin}.service");
            let warnings: Vec<&str> = err.lines().filter(|l| l.contains(&name)).collect();
            assert!(
                warnings.is_empty(),
                "systemd-analyze verify warned: {warnings:#?}\n{unit_text}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installed_config_files_run_the_daemons() {
    let dir = tempfile::tempdir().unwrap();
    let d = |p: &str| dir.path().join(p).display().to_string();
    let token = dir.path().join("token");
    std::fs::write(&token, "installed-token\n").unwrap();
    let root = d("root");

    install(
        "drover-master",
        &[
            "install",
            "--root",
            &root,
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &d("master-data"),
            "--token-file",
            &d("token"),
        ],
    );
    let master_config = d("root/etc/drover/master.toml");
    let mut master = Server::start(
        &bin_path("drover-master"),
        &["--config".into(), master_config],
        // A first start on an empty data dir: a new cluster (never in the config file).
        &[("DROVER_MASTER_INIT".into(), "true".into())],
        &dir.path().join("master.log"),
    );

    let (lo, hi) = port_block(10);
    let ports = format!("{lo}-{hi}");
    install(
        "drover-agent",
        &[
            "install",
            "--root",
            &root,
            "--master",
            &master.url,
            "--listen",
            "127.0.0.1:0",
            "--work-dir",
            &d("agent-work"),
            "--name",
            "installed",
            "--attributes",
            "rack=r9",
            "--ports",
            &ports,
            "--token-file",
            &d("token"),
        ],
    );
    let agent_config = d("root/etc/drover/agent.toml");
    let mut agent = Server::start(
        &bin_path("drover-agent"),
        &["--config".into(), agent_config],
        &[],
        &dir.path().join("agent.log"),
    );

    // The token from the installed token file is required, and works.
    let client = MasterClient::new(&master.url, Some("installed-token".into())).unwrap();
    let node = wait_for(
        "the agent installed from its config registered",
        Duration::from_secs(30),
        || {
            let client = client.clone();
            async move {
                let nodes = client.nodes().await.ok()?;
                nodes
                    .into_iter()
                    .find(|n| n.name == "installed" && n.state == NodeState::Ready)
            }
        },
    )
    .await;
    assert_eq!(
        node.attributes.get("rack").map(String::as_str),
        Some("r9"),
        "{node:?}"
    );
    assert!(
        MasterClient::new(&master.url, None)
            .unwrap()
            .nodes()
            .await
            .is_err(),
        "the master must want the token"
    );
    if installable().iter().any(|(b, _)| *b == "drover-scheduler") {
        install(
            "drover-scheduler",
            &[
                "install",
                "--root",
                &root,
                "--master",
                &master.url,
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                &d("scheduler-data"),
                "--token-file",
                &d("token"),
            ],
        );
        let config = d("root/etc/drover/scheduler.toml");
        let mut scheduler = Server::start(
            &bin_path("drover-scheduler"),
            &["--config".into(), config],
            &[],
            &dir.path().join("scheduler.log"),
        );
        let health = reqwest::get(format!("{}/health", scheduler.url))
            .await
            .unwrap();
        assert!(
            health.status().is_success(),
            "scheduler /health: {}",
            health.status()
        );
        scheduler.stop();
    }
    agent.stop();
    master.stop();

    // A serving flag on the command line beats the installed file (as the unit's
    // drop-ins and operators expect).
    let other = dir.path().join("other-data");
    let mut again = Server::start(
        &bin_path("drover-master"),
        &[
            "--config".into(),
            d("root/etc/drover/master.toml"),
            "--data-dir".into(),
            other.display().to_string(),
        ],
        &[("DROVER_MASTER_INIT".into(), "true".into())],
        &dir.path().join("master-again.log"),
    );
    assert!(again.url.starts_with("http://127.0.0.1:"), "{}", again.url);
    // The store is opened just after the address is announced.
    wait_for(
        "the master's store in the data dir from the command line",
        Duration::from_secs(10),
        || {
            let exists = other.join("master.redb").exists();
            async move { exists.then_some(()) }
        },
    )
    .await;
    again.stop();
}
