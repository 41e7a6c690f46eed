//! Test hosts for `drover fleet` and the playbook comparison: each host is an sshd in a
//! network namespace the test creates, with its own install root, joined to a hub
//! namespace by a veth pair on a bridge. Nothing listens outside these namespaces, and
//! the controller side (`drover fleet`, `ansible-playbook`, the test's `drover` calls)
//! runs inside the hub with [`FleetHosts::hub_command`].
//!
//! The build machine's PID 1 is not systemd, so each host's sshd runs
//! in its own mount namespace (`ip netns exec` makes one) where a small `systemctl`
//! stand-in is bind-mounted over `/usr/bin/systemctl`. `drover fleet` (its default
//! `systemctl daemon-reload && systemctl restart UNIT`) and the playbooks' `systemd_service`
//! tasks both run unchanged against it. It answers `show`, `is-active`, `is-enabled`,
//! `daemon-reload`, `enable`, `start`, `stop` and `restart` for the units under the
//! host's root: `restart-unit ROOT UNIT` stops the process it started last (SIGTERM to
//! that process alone, like the agent unit's `KillMode=process`) and starts the unit's
//! `ExecStart=` line, detached. Where `/usr/bin/systemctl` does not exist, the inventory
//! names `restart-unit` in `drover_fleet_restart_command` instead (drover fleet only). A
//! host whose root holds `break-version` refuses to start a binary reporting that
//! version (the injected failure of the roll-back test).
//!
//! Drop kills every process in the namespaces (sshd, daemons, task shims, tasks) and
//! deletes them, also when the test fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The hub's address; hosts get `10.77.0.(10 + i)`.
pub const HUB_IP: &str = "10.77.0.1";

/// One test host.
#[derive(Debug)]
pub struct TestHost {
    /// Inventory name (`master`, `agent1`, ...).
    pub name: String,
    /// Its network namespace.
    pub ns: String,
    /// Its address on the bridge.
    pub ip: String,
    /// Its install root (`usr/local/bin`, `etc/drover`, `var/lib/drover`, `run`, `log`).
    pub root: PathBuf,
    /// The `ssh-ed25519 AAAA...` host key line.
    pub host_key: String,
}

/// A set of SSH test hosts and the files `drover fleet` needs to reach them.
pub struct FleetHosts {
    /// Holds keys, known_hosts, inventory, install roots.
    pub dir: tempfile::TempDir,
    /// The hub namespace.
    pub hub: String,
    /// The hosts.
    pub hosts: Vec<TestHost>,
    /// The client's private key.
    pub client_key: PathBuf,
    /// A known_hosts file with every host's key.
    pub known_hosts: PathBuf,
    /// The generated inventory folder.
    pub inventory: PathBuf,
    /// The cluster token.
    pub token: String,
    namespaces: Vec<String>,
    /// The sshd processes (killed with their namespaces, then reaped on Drop).
    sshd: Vec<std::process::Child>,
}

/// Why the test hosts cannot be made here (not root, no sshd, no `ip`), or `None`.
pub fn unsupported() -> Option<String> {
    // SAFETY-free check of root through the environment of id(1).
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root: cannot create network namespaces".into());
    }
    for p in ["/usr/sbin/sshd", "/usr/bin/ssh-keygen", "/usr/sbin/ip"] {
        if !Path::new(p).exists() && !Path::new(&p.replace("/usr/sbin", "/sbin")).exists() {
            return Some(format!("{p} is missing (scripts/setup installs it)"));
        }
    }
    None
}

fn sh(args: &[&str]) -> std::process::Output {
    Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
}

fn must(args: &[&str]) -> String {
    let out = sh(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The restart script (see the module's doc).
const RESTART_UNIT: &str = r#"#!/bin/bash
# restart-unit ROOT UNIT: what `systemctl restart UNIT` does on these test hosts.
set -u
root=$1; unit=$2
unitfile=$root/etc/systemd/system/$unit.service
pidfile=$root/run/$unit.pid
mkdir -p "$root/run" "$root/log"
if [ -f "$pidfile" ]; then
  pid=$(cat "$pidfile")
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
  rm -f "$pidfile"
fi
exec_start=$(sed -n 's/^ExecStart=//p' "$unitfile")
[ -n "$exec_start" ] || { echo "no ExecStart in $unitfile" >&2; exit 1; }
bin=${exec_start%% *}
if [ -f "$root/break-version" ] && "$bin" --version | grep -qF "$(cat "$root/break-version")"; then
  echo "injected failure: $unit does not start" >> "$root/log/$unit.log"
  exit 0
fi
setsid $exec_start >> "$root/log/$unit.log" 2>&1 < /dev/null &
echo $! > "$pidfile"
"#;

/// The `systemctl` stand-in of one host (see the module's doc).
fn fake_systemctl(root: &Path, restart: &Path) -> String {
    format!(
        r#"#!/bin/bash
# systemctl for a test host without systemd: units under {root}, run by restart-unit.
root={root}
cmd=""; units=()
for a in "$@"; do
  case $a in
    -*) ;;
    *) if [ -z "$cmd" ]; then cmd=$a; else units+=("${{a%.service}}"); fi ;;
  esac
done
active() {{ [ -f "$root/run/$1.pid" ] && kill -0 "$(cat "$root/run/$1.pid")" 2>/dev/null; }}
case $cmd in
  ""|daemon-reload|daemon-reexec|enable|disable|mask|unmask) exit 0 ;;
  start) for u in "${{units[@]}}"; do active "$u" || {restart} "$root" "$u" || exit 1; done ;;
  restart|reload-or-restart|try-restart|reload)
    for u in "${{units[@]}}"; do {restart} "$root" "$u" || exit 1; done ;;
  stop) for u in "${{units[@]}}"; do
          if active "$u"; then kill -TERM "$(cat "$root/run/$u.pid")"; fi; rm -f "$root/run/$u.pid"
        done ;;
  is-active) if active "${{units[0]}}"; then echo active; else echo inactive; exit 3; fi ;;
  is-enabled) echo enabled ;;
  list-unit-files) echo "${{units[0]}}.service enabled enabled" ;;
  show)
    u=${{units[0]}}
    if [ -f "$root/etc/systemd/system/$u.service" ]; then load=loaded; else load=not-found; fi
    if active "$u"; then st=active; sub=running; else st=inactive; sub=dead; fi
    printf 'Id=%s.service\nNames=%s.service\nLoadState=%s\nActiveState=%s\nSubState=%s\nUnitFileState=enabled\nFragmentPath=%s\n' \
      "$u" "$u" "$load" "$st" "$sub" "$root/etc/systemd/system/$u.service" ;;
  *) echo "test systemctl: $cmd is not supported" >&2; exit 1 ;;
esac
"#,
        root = root.display(),
        restart = restart.display()
    )
}

/// Whether units can be driven through a `systemctl` stand-in (see the module's doc).
fn can_fake_systemctl() -> bool {
    Path::new("/usr/bin/systemctl").exists()
}

impl FleetHosts {
    /// Starts one host per name. The first name is the master (and scheduler when
    /// `scheduler`), the others agents.
    pub fn start(names: &[&str]) -> FleetHosts {
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "dfl{}x{}",
            std::process::id() % 100_000,
            N.fetch_add(1, Ordering::SeqCst)
        );
        let dir = tempfile::Builder::new()
            .prefix("drover-fleet-")
            .tempdir()
            .unwrap();
        let hub = format!("{id}h");
        let mut me = FleetHosts {
            client_key: dir.path().join("client_key"),
            known_hosts: dir.path().join("known_hosts"),
            inventory: dir.path().join("inventory"),
            token: format!("fleet-token-{id}"),
            dir,
            hub: hub.clone(),
            hosts: Vec::new(),
            namespaces: Vec::new(),
            sshd: Vec::new(),
        };
        // Register each namespace before configuring it, so Drop removes it on failure.
        must(&["ip", "netns", "add", &hub]);
        me.namespaces.push(hub.clone());
        must(&["ip", "-n", &hub, "link", "set", "lo", "up"]);
        must(&["ip", "-n", &hub, "link", "add", "br0", "type", "bridge"]);
        must(&[
            "ip",
            "-n",
            &hub,
            "addr",
            "add",
            &format!("{HUB_IP}/24"),
            "dev",
            "br0",
        ]);
        must(&["ip", "-n", &hub, "link", "set", "br0", "up"]);
        let key = me.client_key.to_str().unwrap().to_string();
        must(&[
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "drover-fleet-test",
            "-f",
            &key,
        ]);
        let authorized = me.dir.path().join("authorized_keys");
        std::fs::copy(format!("{key}.pub"), &authorized).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let restart = me.dir.path().join("restart-unit");
        std::fs::write(&restart, RESTART_UNIT).unwrap();
        must(&["chmod", "755", restart.to_str().unwrap()]);
        let mut known = String::new();
        for (i, name) in names.iter().enumerate() {
            let ns = format!("{id}n{i}");
            must(&["ip", "netns", "add", &ns]);
            me.namespaces.push(ns.clone());
            let ip = format!("10.77.0.{}", 10 + i);
            let veth = format!("v{i}");
            must(&[
                "ip", "-n", &hub, "link", "add", &veth, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ]);
            must(&[
                "ip", "-n", &hub, "link", "set", &veth, "master", "br0", "up",
            ]);
            must(&[
                "ip",
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                "eth0",
            ]);
            must(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
            must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
            let hdir = me.dir.path().join(format!("host-{name}"));
            let root = hdir.join("root");
            for sub in [
                "usr/local/bin",
                "etc/drover",
                "etc/systemd/system",
                "var/lib/drover",
                "run",
                "log",
            ] {
                std::fs::create_dir_all(root.join(sub)).unwrap();
            }
            std::fs::write(root.join("etc/drover/token"), format!("{}\n", me.token)).unwrap();
            let hk = hdir.join("ssh_host_ed25519_key");
            must(&[
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-f",
                hk.to_str().unwrap(),
            ]);
            let host_key = std::fs::read_to_string(hdir.join("ssh_host_ed25519_key.pub")).unwrap();
            let host_key: String = host_key
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ");
            known.push_str(&format!("{ip} {host_key}\n"));
            let cfg = hdir.join("sshd_config");
            std::fs::write(
                &cfg,
                format!(
                    "ListenAddress {ip}\nPort 22\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}\n\
                     StrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\n\
                     PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                     MaxStartups 200\nMaxSessions 50\nSubsystem sftp internal-sftp\n",
                    hk.display(),
                    hdir.join("sshd.pid").display(),
                    authorized.display()
                ),
            )
            .unwrap();
            let log = std::fs::File::create(hdir.join("sshd.log")).unwrap();
            let systemctl = hdir.join("systemctl");
            std::fs::write(&systemctl, fake_systemctl(&root, &restart)).unwrap();
            must(&["chmod", "755", systemctl.to_str().unwrap()]);
            // `ip netns exec` gives sshd its own mount namespace: the bind mount is seen by
            // this host's sessions only. -D keeps sshd in the foreground; Drop kills it
            // with everything else in the namespace.
            let script = if can_fake_systemctl() {
                format!(
                    "mount --bind {} /usr/bin/systemctl && exec /usr/sbin/sshd -D -e -f {}",
                    systemctl.display(),
                    cfg.display()
                )
            } else {
                format!("exec /usr/sbin/sshd -D -e -f {}", cfg.display())
            };
            let child = Command::new("ip")
                .args(["netns", "exec", &ns, "sh", "-c", &script])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap();
            me.sshd.push(child);
            me.hosts.push(TestHost {
                name: name.to_string(),
                ns,
                ip,
                root,
                host_key,
            });
        }
        std::fs::write(&me.known_hosts, known).unwrap();
        for h in &me.hosts {
            me.wait_port(&h.ip, 22);
        }
        me.write_inventory(&restart);
        me
    }

    /// Waits until something listens on `ip:port` inside the hub (generous bound).
    pub fn wait_port(&self, ip: &str, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = sh(&[
                "ip",
                "netns",
                "exec",
                &self.hub,
                "bash",
                "-c",
                &format!("exec 3<>/dev/tcp/{ip}/{port}"),
            ])
            .status
            .success();
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "nothing listens on {ip}:{port}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The inventory: YAML hosts file and `group_vars/all.yml`, with every host's
    /// paths under its own root.
    fn write_inventory(&self, restart: &Path) {
        let inv = &self.inventory;
        std::fs::create_dir_all(inv.join("group_vars")).unwrap();
        let master = &self.hosts[0];
        let mut hosts = String::from("# Generated by the fleet tests.\nall:\n  children:\n");
        let host_block = |h: &TestHost| {
            let r = h.root.display();
            let role_paths = |bin: &str, cfg: &str| {
                format!(
                    "[\"--bin\", \"{r}/usr/local/bin/{bin}\", \"--config\", \"{r}/etc/drover/{cfg}\", \"--unit\", \"{r}/etc/systemd/system/{bin}.service\"]"
                )
            };
            format!(
                "        {name}:\n          ansible_host: {ip}\n          drover_node_address: {ip}\n\
                 \x20         drover_common_bin_dir: {r}/usr/local/bin\n\
                 \x20         drover_common_config_dir: {r}/etc/drover\n\
                 \x20         drover_common_data_dir: {r}/var/lib/drover\n\
                 {restart_var}\
                 \x20         drover_master_extra_args: {m}\n\
                 \x20         drover_scheduler_extra_args: {s}\n\
                 \x20         drover_agent_extra_args: {a}\n",
                name = h.name,
                ip = h.ip,
                restart_var = if can_fake_systemctl() {
                    String::new()
                } else {
                    format!(
                        "          drover_fleet_restart_command: \"{} {r} {{unit}}\"\n",
                        restart.display()
                    )
                },
                m = role_paths("drover-master", "master.toml"),
                s = role_paths("drover-scheduler", "scheduler.toml"),
                a = role_paths("drover-agent", "agent.toml"),
            )
        };
        hosts.push_str("    masters:\n      hosts:\n");
        hosts.push_str(&host_block(master));
        hosts.push_str("    agents:\n      hosts:\n");
        for h in &self.hosts[1..] {
            hosts.push_str(&host_block(h));
        }
        std::fs::write(inv.join("hosts.yml"), hosts).unwrap();
        std::fs::write(
            inv.join("group_vars/all.yml"),
            format!(
                "ansible_user: root\nansible_ssh_private_key_file: {}\ndrover_token: {}\n\
                 drover_master_url: http://{}:5050\ndrover_agent_reserved_mem: 64\ndrover_agent_reserved_disk: 64\n",
                self.client_key.display(),
                self.token,
                master.ip
            ),
        )
        .unwrap();
    }

    /// The master's URL (inside the namespaces).
    pub fn master_url(&self) -> String {
        format!("http://{}:5050", self.hosts[0].ip)
    }

    /// A command that runs `program` inside the hub namespace.
    pub fn hub_command(&self, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.hub]).arg(program);
        c
    }

    /// Runs `drover fleet ARGS --inventory .. --known-hosts ..` in the hub; returns
    /// (exit code, stdout, stderr).
    pub fn fleet(&self, drover: &Path, args: &[&str]) -> (i32, String, String) {
        let mut c = self.hub_command(drover);
        c.arg("fleet")
            .args(args)
            .arg("--inventory")
            .arg(&self.inventory)
            .arg("--known-hosts")
            .arg(&self.known_hosts)
            .stdin(Stdio::null());
        let out = c.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs `ansible-playbook playbooks/upgrade.yml` from the hub against these hosts'
    /// agents with `dist` and `extra` arguments; returns its output. Host keys are
    /// checked against the hosts' known_hosts, as `drover fleet` checks them. The
    /// playbook's `drover_common` role creates the system user and group `drover` (the
    /// hosts share this machine's /etc/passwd): removed again unless they were there.
    pub fn upgrade_playbook(&self, dist: &Path, extra: &[&str]) -> std::process::Output {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let had_user = Command::new("getent")
            .args(["passwd", "drover"])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let out = self
            .hub_command(Path::new("ansible-playbook"))
            .current_dir(&repo)
            .env("ANSIBLE_CONFIG", repo.join("playbooks/ansible.cfg"))
            .env("ANSIBLE_HOST_KEY_CHECKING", "True")
            .env(
                "ANSIBLE_SSH_ARGS",
                format!(
                    "-o UserKnownHostsFile={} -o ControlMaster=auto -o ControlPersist=60s",
                    self.known_hosts.display()
                ),
            )
            .args([
                "-i",
                self.inventory.to_str().unwrap(),
                "playbooks/upgrade.yml",
                "--limit",
                "agents",
            ])
            .args(["-e", &format!("drover_dist_dir={}", dist.display())])
            // The hosts are reached as root, and the build machine has no sudo.
            .args(["-e", "ansible_become=false"])
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if !had_user {
            let _ = Command::new("userdel").arg("drover").status();
            let _ = Command::new("groupdel")
                .arg("drover")
                .stderr(Stdio::null())
                .status();
        }
        out
    }

    /// Runs `drover ARGS --json` against the master, in the hub.
    pub fn drover_json(&self, drover: &Path, args: &[&str]) -> serde_json::Value {
        let out = self
            .hub_command(drover)
            .args([
                "--master",
                &self.master_url(),
                "--token",
                &self.token,
                "--json",
            ])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "drover {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// A snapshot of every file under every install root (path, size, mtime, mode), to
    /// show a dry run changed nothing.
    pub fn snapshot(&self) -> Vec<String> {
        let mut out = Vec::new();
        for h in &self.hosts {
            let list = must(&[
                "find",
                h.root.to_str().unwrap(),
                "-path",
                "*/var/lib/drover/agent/tasks",
                "-prune",
                "-o",
                "-printf",
                "%p %s %T@ %m\\n",
            ]);
            out.extend(list.lines().map(str::to_string));
        }
        out.sort();
        out
    }

    /// Launches a long task on each agent through the master and waits until each runs;
    /// returns (node, task id, pid) per agent.
    pub fn launch_tasks(&self, drover: &Path) -> Vec<(String, String, u64)> {
        let mut out = Vec::new();
        for h in &self.hosts[1..] {
            let t = self.drover_json(
                drover,
                &[
                    "tasks", "launch", "--node", &h.name, "--name", "sleeper", "--", "sleep",
                    "100000",
                ],
            );
            out.push((
                h.name.clone(),
                t["spec"]["id"].as_str().unwrap().to_string(),
                0,
            ));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        for entry in &mut out {
            loop {
                let t = self.drover_json(drover, &["tasks", "show", &entry.1]);
                let running = t["state"] == "running" || t["state"] == "healthy";
                if let Some(pid) = t["pid"].as_u64().filter(|_| running) {
                    entry.2 = pid;
                    break;
                }
                assert!(Instant::now() < deadline, "task {} never ran: {t}", entry.1);
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        out
    }

    /// Checks every task still runs with the pid it had.
    pub fn assert_tasks_kept(&self, drover: &Path, tasks: &[(String, String, u64)]) {
        for (node, id, pid) in tasks {
            let t = self.drover_json(drover, &["tasks", "show", id]);
            assert_eq!(
                t["pid"].as_u64(),
                Some(*pid),
                "the task on {node} was restarted: {t}"
            );
            assert!(t["state"] == "running" || t["state"] == "healthy", "{t}");
            assert!(
                crate::process_alive(*pid as u32),
                "pid {pid} on {node} is gone"
            );
        }
    }

    /// The host by name.
    pub fn host(&self, name: &str) -> &TestHost {
        self.hosts.iter().find(|h| h.name == name).unwrap()
    }
}

impl Drop for FleetHosts {
    fn drop(&mut self) {
        // Everything runs inside our namespaces: kill what is there, then delete them.
        for _ in 0..3 {
            for ns in &self.namespaces {
                let pids = sh(&["ip", "netns", "pids", ns]);
                for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
                    let _ = sh(&["kill", "-KILL", pid]);
                }
            }
        }
        for c in &mut self.sshd {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = sh(&["ip", "netns", "del", ns]);
        }
    }
}

/// Builds (once per test process, and only when missing or older than the sources) a
/// static dist reporting `version` into `$CARGO_TARGET_DIR/fleet-dist/<name>`; the VM
/// test (scripts/test) reuses `a` and `b` as its builds A and B.
/// `DROVER_FLEET_DIST_<NAME>` (e.g. `DROVER_FLEET_DIST_A`) names a ready folder instead,
/// which must report `version`.
pub fn dist(name: &str, version: &str) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    if let Ok(dir) = std::env::var(format!("DROVER_FLEET_DIST_{}", name.to_uppercase())) {
        let dir = PathBuf::from(dir);
        let agent = must(&[dir.join("drover-agent").to_str().unwrap(), "--version"]);
        assert!(
            agent.trim().ends_with(version),
            "{} reports {agent:?}, not {version}",
            dir.display()
        );
        return dir;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo.join("target"));
    let out = target.join("fleet-dist").join(name);
    let stamp = out.join("VERSION");
    let fresh = std::fs::read_to_string(&stamp).is_ok_and(|v| v.trim() == version)
        && newest_source(&repo) <= mtime(&out.join("SHA256SUMS"));
    if !fresh {
        // The crate's own version needs no --version: it then shares its build with
        // scripts/dist's (tests/tests/dist.rs) instead of recompiling every crate.
        let mut dist = Command::new(repo.join("scripts/dist"));
        if version != drover_api::VERSION {
            dist.args(["--version", version]);
        }
        let status = dist
            .arg("--out")
            .arg(&out)
            .env("CARGO_TARGET_DIR", &target)
            .status()
            .unwrap();
        assert!(status.success(), "scripts/dist --version {version} failed");
        std::fs::write(&stamp, version).unwrap();
    }
    out
}

fn mtime(p: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn newest_source(repo: &Path) -> Option<std::time::SystemTime> {
    let out = sh(&[
        "find",
        repo.join("agents").to_str().unwrap(),
        "-type",
        "f",
        "-newermt",
        "1970-01-01",
        "(",
        "-name",
        "*.rs",
        "-o",
        "-name",
        "*.hbs",
        "-o",
        "-name",
        "Cargo.toml",
        ")",
        "-printf",
        "%T@\\n",
    ]);
    let newest = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.parse::<f64>().ok())
        .fold(0.0_f64, f64::max);
    Some(std::time::UNIX_EPOCH + Duration::from_secs_f64(newest))
}
