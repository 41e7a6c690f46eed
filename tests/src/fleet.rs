//! Test hosts for `drover fleet` and the playbook comparison: each host is a Debian
//! bookworm system booted with `systemd-nspawn --boot`, systemd as its PID 1 and sshd
//! started by systemd, in a network namespace the test creates, joined to a hub
//! namespace by a veth pair on a bridge (`10.77.0.1` the hub, `10.77.0.(10 + i)` the
//! hosts). Nothing listens outside these namespaces, and the controller side
//! (`drover fleet`, `ansible-playbook`, the test's `drover` calls) runs inside the hub
//! with [`FleetHosts::hub_command`].
//!
//! The image is built once and cached by `tests/fleet/build-rootfs` (debootstrap). Each
//! host boots an overlay of it (`lowerdir` the shared image, `upperdir` the host's own
//! folder under the test's temporary directory), mounted where the test reads it
//! ([`TestHost::root`]). Before boot the upper folder gets what makes the host itself:
//! its own SSH host key (whose public half goes into the test's `known_hosts`), root's
//! `authorized_keys` with the test's client key, `/etc/hostname`, `/etc/machine-id`
//! and the cluster token in `/etc/drover/token` (what `site.yml`'s `drover_common` would
//! have written). Nothing else: `drover fleet` and the playbooks install the binaries
//! at their real paths (`/usr/local/bin`, `/etc/drover`, `/var/lib/drover`), and the
//! units are driven by the host's real systemd and `systemctl`. (nspawn's own
//! `--ephemeral` copies the whole image on a file system without reflinks, such as the
//! build machine's ext4: 5.7 s per container before it even boots. With the overlay,
//! the bench's 21 hosts boot to sshd in about 5 s together.)
//!
//! The daemons and tasks live in the container's PID namespace: the pids the agent
//! reports are the container's, and the harness checks them inside the container
//! ([`FleetHosts::host_sh`] runs a command there through `nsenter`), never in this
//! machine's `/proc`. A failure to start is injected with a systemd drop-in
//! ([`FleetHosts::break_start`]).
//!
//! nspawn runs with `--register=no --keep-unit` (this machine's PID 1 need not be
//! systemd), each in a cgroup of its own (`drover-fleet/<machine>`), so that no two
//! containers' systemd share a cgroup tree. Drop powers every container off (SIGTERM to
//! nspawn, which asks the container's systemd to shut down), kills what is left in the
//! namespaces, unmounts the overlays and removes the cgroups and namespaces, also when the
//! test fails. Each container's systemd takes inotify instances from root's
//! `fs.inotify.max_user_instances` (128 by default: about 19 containers): while hosts
//! run, the limit is raised by 12 per host and put back afterwards.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::teardown::{self, Teardown};

/// The hub's address; hosts get `10.77.0.(10 + i)`.
pub const HUB_IP: &str = "10.77.0.1";

/// One test host.
#[derive(Debug)]
pub struct TestHost {
    /// Inventory name (`master`, `agent1`, ...), also its host name.
    pub name: String,
    /// Its network namespace.
    pub ns: String,
    /// Its address on the bridge.
    pub ip: String,
    /// Its root file system as this machine sees it (the merged overlay): the host's
    /// `/usr/local/bin` is `root.join("usr/local/bin")`.
    pub root: PathBuf,
    /// The `ssh-ed25519 AAAA...` host key line.
    pub host_key: String,
}

/// What to put on the hosts besides the master and the agents.
#[derive(Debug, Clone, Copy, Default)]
pub struct Roles {
    /// The master host also runs a scheduler (inventory group `schedulers`).
    pub scheduler: bool,
}

/// A set of SSH test hosts and the files `drover fleet` needs to reach them.
pub struct FleetHosts {
    /// Holds keys, known_hosts, inventory and each host's overlay.
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
    /// How long the hosts took from the first nspawn to every sshd answering.
    pub boot_time: Duration,
    /// What Drop undoes, each registered as soon as it exists: namespaces, overlay
    /// mounts, cgroups (one per host and hierarchy), and each host's `systemd-nspawn`
    /// (the container's supervisor, in host order; SIGTERM powers the container off).
    namespaces: Vec<String>,
    mounts: Vec<PathBuf>,
    cgroups: Vec<PathBuf>,
    containers: Vec<Child>,
    /// Hosts counted in [`INOTIFY`] (given back on Drop).
    inotify_hosts: usize,
}

/// Why the test hosts cannot be made here (not root, a tool or overlayfs missing), or
/// `None`.
pub fn unsupported() -> Option<String> {
    if let Some(why) = crate::not_root() {
        return Some(why.into());
    }
    for (tool, package) in [
        ("ip", "iproute2"),
        ("ssh-keygen", "openssh-client"),
        ("systemd-nspawn", "systemd-container"),
        ("nsenter", "util-linux"),
        ("debootstrap", "debootstrap"),
    ] {
        if !crate::have(tool) {
            return Some(format!(
                "{tool} is missing (scripts/setup installs {package})"
            ));
        }
    }
    let fs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !fs.lines().any(|l| l.trim_end().ends_with("overlay")) {
        return Some("the kernel has no overlayfs".into());
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

/// The cached host image (built on first use by `tests/fleet/build-rootfs`).
pub fn rootfs() -> PathBuf {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS
        .get_or_init(|| {
            crate::build_image(&Path::new(env!("CARGO_MANIFEST_DIR")).join("fleet/build-rootfs"))
        })
        .clone()
}

/// The cgroup hierarchies nspawn and the container's systemd use: `name=systemd` and
/// the unified one on a hybrid or legacy host, the root on a unified one.
fn cgroup_roots() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").exists() {
        return vec![base.to_path_buf()];
    }
    ["systemd", "unified"]
        .iter()
        .map(|h| base.join(h))
        .filter(|p| p.join("cgroup.procs").exists())
        .collect()
}

/// Every container's systemd, journald, logind and dbus take inotify instances, all
/// counted against root's `fs.inotify.max_user_instances` (no user namespaces here): its
/// usual 128 runs out at about 19 containers, whose systemd then fails to boot ("Too
/// many open files"). While hosts run, the limit is raised to leave [`INOTIFY_PER_HOST`]
/// per host on top of what it was, and put back when the last of this process's hosts
/// is gone (unless something else changed it meanwhile).
static INOTIFY: std::sync::Mutex<Inotify> = std::sync::Mutex::new(Inotify {
    hosts: 0,
    original: 0,
    set: None,
});

/// Inotify instances kept per host (about 7 seen in use).
const INOTIFY_PER_HOST: u64 = 12;

const INOTIFY_LIMIT: &str = "/proc/sys/fs/inotify/max_user_instances";

struct Inotify {
    /// Hosts of this process running now.
    hosts: usize,
    /// The limit before this process raised it.
    original: u64,
    /// What this process set it to, while raised.
    set: Option<u64>,
}

fn read_inotify_limit() -> Option<u64> {
    std::fs::read_to_string(INOTIFY_LIMIT)
        .ok()
        .and_then(|v| v.trim().parse().ok())
}

/// Counts `hosts` more hosts and raises the limit if they need it; returns `hosts`.
fn reserve_inotify(hosts: usize) -> usize {
    let mut g = INOTIFY.lock().unwrap_or_else(|p| p.into_inner());
    let Some(now) = read_inotify_limit() else {
        return 0;
    };
    if g.set.is_none() {
        g.original = now;
    }
    g.hosts += hosts;
    let want = g.original + INOTIFY_PER_HOST * g.hosts as u64;
    if want > now && std::fs::write(INOTIFY_LIMIT, want.to_string()).is_ok() {
        eprintln!(
            "fleet hosts: fs.inotify.max_user_instances raised from {now} to {want} for {} containers (put back afterwards)",
            g.hosts
        );
        g.set = Some(want);
    }
    hosts
}

/// Gives back `hosts`; the last one out puts the limit back.
fn release_inotify(hosts: usize) -> Result<(), String> {
    let mut g = INOTIFY.lock().unwrap_or_else(|p| p.into_inner());
    g.hosts = g.hosts.saturating_sub(hosts);
    if g.hosts == 0
        && let Some(set) = g.set.take()
        && read_inotify_limit() == Some(set)
    {
        std::fs::write(INOTIFY_LIMIT, g.original.to_string())
            .map_err(|e| format!("cannot write {} to {INOTIFY_LIMIT}: {e}", g.original))?;
    }
    Ok(())
}

/// A fresh random 128-bit id in hex (`/etc/machine-id`'s format).
fn random_id() -> String {
    let bytes = std::fs::read("/proc/sys/kernel/random/uuid").unwrap();
    String::from_utf8_lossy(&bytes).trim().replace('-', "")
}

fn write(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

impl FleetHosts {
    /// Boots one host per name. The first name is the master, the others agents.
    pub fn start(names: &[&str]) -> FleetHosts {
        Self::start_with(names, Roles::default())
    }

    /// Boots one host per name, the first the master (and the scheduler with
    /// `roles.scheduler`), the others agents.
    pub fn start_with(names: &[&str], roles: Roles) -> FleetHosts {
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "dfl{}x{}",
            std::process::id() % 100_000,
            N.fetch_add(1, Ordering::SeqCst)
        );
        let image = rootfs();
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
            boot_time: Duration::ZERO,
            namespaces: Vec::new(),
            mounts: Vec::new(),
            cgroups: Vec::new(),
            containers: Vec::new(),
            inotify_hosts: 0,
        };
        me.inotify_hosts = reserve_inotify(names.len());
        // Register each namespace, mount and container before configuring it, so Drop
        // undoes it when a step fails.
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
        let client_pub = std::fs::read_to_string(format!("{key}.pub")).unwrap();
        let boot = Instant::now();
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

            // The host's own files, in its overlay's upper folder.
            let hdir = me.dir.path().join(format!("host-{name}"));
            let (upper, work, root) = (hdir.join("upper"), hdir.join("work"), hdir.join("root"));
            for d in [&upper, &work, &root] {
                std::fs::create_dir_all(d).unwrap();
            }
            let hk = upper.join("etc/ssh/ssh_host_ed25519_key");
            std::fs::create_dir_all(hk.parent().unwrap()).unwrap();
            must(&[
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                &format!("root@{name}"),
                "-f",
                hk.to_str().unwrap(),
            ]);
            let host_key = std::fs::read_to_string(hk.with_extension("pub")).unwrap();
            let host_key: String = host_key
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ");
            known.push_str(&format!("{ip} {host_key}\n"));
            write(&upper.join("root/.ssh/authorized_keys"), &client_pub, 0o600);
            write(&upper.join("etc/hostname"), &format!("{name}\n"), 0o644);
            write(
                &upper.join("etc/machine-id"),
                &format!("{}\n", random_id()),
                0o444,
            );
            write(
                &upper.join("etc/drover/token"),
                &format!("{}\n", me.token),
                0o600,
            );
            must(&[
                "mount",
                "-t",
                "overlay",
                "overlay",
                "-o",
                &format!(
                    "lowerdir={},upperdir={},workdir={}",
                    image.display(),
                    upper.display(),
                    work.display()
                ),
                root.to_str().unwrap(),
            ]);
            me.mounts.push(root.clone());
            let machine = format!("{id}-{name}");
            // Its own cgroup, made before nspawn starts and entered by the shell that
            // then becomes nspawn.
            let cgroups: Vec<PathBuf> = cgroup_roots()
                .iter()
                .map(|r| r.join("drover-fleet").join(&machine))
                .collect();
            let mut enter = String::new();
            for c in &cgroups {
                std::fs::create_dir_all(c).unwrap();
                me.cgroups.push(c.clone());
                enter.push_str(&format!("echo $$ > {}/cgroup.procs && ", c.display()));
            }
            let console = std::fs::File::create(hdir.join("console.log")).unwrap();
            let nspawn = Command::new("sh")
                .arg("-c")
                .arg(format!("{enter}exec systemd-nspawn \"$@\""))
                .arg("sh")
                .args([
                    "--quiet",
                    "--boot",
                    "--register=no",
                    "--keep-unit",
                    "--console=read-only",
                ])
                .arg(format!("--machine={machine}"))
                .arg(format!("--hostname={name}"))
                .arg(format!("--network-namespace-path=/run/netns/{ns}"))
                .arg("-D")
                .arg(&root)
                .stdin(Stdio::null())
                .stdout(console.try_clone().unwrap())
                .stderr(console)
                .spawn()
                .unwrap();
            me.containers.push(nspawn);
            me.hosts.push(TestHost {
                name: name.to_string(),
                ns,
                ip,
                root,
                host_key,
            });
        }
        std::fs::write(&me.known_hosts, known).unwrap();
        me.wait_booted();
        me.boot_time = boot.elapsed();
        me.write_inventory(roles);
        me
    }

    /// Waits until every host's sshd answers (generous bound), failing early when a
    /// container exits.
    fn wait_booted(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(180);
        for i in 0..self.hosts.len() {
            loop {
                if self.port_open(&self.hosts[i].ip, 22) {
                    break;
                }
                let console = || {
                    let path = self
                        .dir
                        .path()
                        .join(format!("host-{}/console.log", self.hosts[i].name));
                    std::fs::read_to_string(path).unwrap_or_default()
                };
                if let Ok(Some(status)) = self.containers[i].try_wait() {
                    panic!(
                        "the container of {} exited ({status}):\n{}",
                        self.hosts[i].name,
                        console()
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "{} did not boot to sshd in time:\n{}",
                    self.hosts[i].name,
                    console()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    fn port_open(&self, ip: &str, port: u16) -> bool {
        sh(&[
            "ip",
            "netns",
            "exec",
            &self.hub,
            "bash",
            "-c",
            &format!("exec 3<>/dev/tcp/{ip}/{port}"),
        ])
        .status
        .success()
    }

    /// Waits until something listens on `ip:port` inside the hub (generous bound).
    pub fn wait_port(&self, ip: &str, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.port_open(ip, port) {
            assert!(Instant::now() < deadline, "nothing listens on {ip}:{port}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The inventory: YAML hosts file and `group_vars/all.yml`. Every path is the
    /// roles' default (the hosts are whole systems).
    fn write_inventory(&self, roles: Roles) {
        let inv = &self.inventory;
        std::fs::create_dir_all(inv.join("group_vars")).unwrap();
        let master = &self.hosts[0];
        let mut hosts = String::from("# Generated by the fleet tests.\nall:\n  children:\n");
        let host_block = |h: &TestHost| {
            format!(
                "        {name}:\n          ansible_host: {ip}\n          drover_node_address: {ip}\n",
                name = h.name,
                ip = h.ip,
            )
        };
        hosts.push_str("    masters:\n      hosts:\n");
        hosts.push_str(&host_block(master));
        if roles.scheduler {
            hosts.push_str("    schedulers:\n      hosts:\n");
            hosts.push_str(&host_block(master));
        }
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

    /// Makes `drover fleet` reach host `name` as the unprivileged user `ops`, which
    /// becomes root through passwordless sudo (`ansible_become`), as many fleets are
    /// run: the user is created on the host with the test's key, and the host's
    /// `host_vars` say so.
    pub fn connect_as_sudo_user(&self, name: &str) {
        let out = self.host_sh(
            name,
            "set -e; useradd -m -s /bin/sh ops; install -d -m 700 -o ops -g ops ~ops/.ssh; \
             install -m 600 -o ops -g ops /root/.ssh/authorized_keys ~ops/.ssh/authorized_keys; \
             echo 'ops ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/ops; chmod 440 /etc/sudoers.d/ops",
        );
        assert!(
            out.status.success(),
            "cannot make the sudo user on {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let vars = self.inventory.join("host_vars");
        std::fs::create_dir_all(&vars).unwrap();
        std::fs::write(
            vars.join(format!("{name}.yml")),
            "ansible_user: ops\nansible_become: true\n",
        )
        .unwrap();
    }

    /// The master's URL (inside the namespaces).
    pub fn master_url(&self) -> String {
        format!("http://{}:5050", self.hosts[0].ip)
    }

    /// The scheduler's URL (inside the namespaces), with [`Roles::scheduler`].
    pub fn scheduler_url(&self) -> String {
        format!("http://{}:8080", self.hosts[0].ip)
    }

    /// A command that runs `program` inside the hub namespace.
    pub fn hub_command(&self, program: &Path) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.hub]).arg(program);
        c
    }

    /// Runs `script` with `/bin/sh` inside the host `name` (its mount, PID, network,
    /// UTS and IPC namespaces, as a root login there would); returns its output.
    pub fn host_sh(&self, name: &str, script: &str) -> std::process::Output {
        let i = self.hosts.iter().position(|h| h.name == name).unwrap();
        let init = self.container_init(i);
        Command::new("nsenter")
            .args(["-t", &init.to_string(), "-m", "-p", "-n", "-u", "-i", "--"])
            .args([
                "/usr/bin/env",
                "-i",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            ])
            .args(["/bin/sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// The pid (on this machine) of host `i`'s PID 1: nspawn's child.
    fn container_init(&self, i: usize) -> u32 {
        let nspawn = self.containers[i].id();
        let children =
            std::fs::read_to_string(format!("/proc/{nspawn}/task/{nspawn}/children")).unwrap();
        children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the container of {} has no init", self.hosts[i].name))
    }

    /// Makes `binary`'s unit (`drover-agent`, `drover-scheduler`, ...) fail to start on
    /// host `name` whenever the installed binary reports `version`: a drop-in whose
    /// `ExecCondition=` refuses it (systemd then leaves the unit inactive, and
    /// `systemctl restart` still succeeds, as when a new build dies right at start), then
    /// `systemctl daemon-reload`. [`FleetHosts::unbreak`] takes it away.
    pub fn break_start(&self, name: &str, binary: &str, version: &str) {
        write(
            &self.break_dropin(name, binary),
            &format!(
                "# The fleet test's injected failure: build {version} does not start here.\n\
                 [Service]\nExecCondition=/bin/sh -c '! /usr/local/bin/{binary} --version | grep -qF -- \"{version}\"'\n"
            ),
            0o644,
        );
        let out = self.host_sh(name, "systemctl daemon-reload");
        assert!(out.status.success(), "{out:?}");
    }

    /// Removes [`FleetHosts::break_start`]'s drop-in (and reloads systemd).
    pub fn unbreak(&self, name: &str, binary: &str) {
        std::fs::remove_file(self.break_dropin(name, binary)).unwrap();
        let out = self.host_sh(name, "systemctl daemon-reload");
        assert!(out.status.success(), "{out:?}");
    }

    fn break_dropin(&self, name: &str, binary: &str) -> PathBuf {
        self.host(name).root.join(format!(
            "etc/systemd/system/{binary}.service.d/50-test-break.conf"
        ))
    }

    /// `systemctl show -p PROPERTY --value UNIT` on host `name`.
    pub fn unit_property(&self, name: &str, unit: &str, property: &str) -> String {
        let out = self.host_sh(
            name,
            &format!("systemctl show -p {property} --value {unit}"),
        );
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The version the scheduler answers with on `/v1/version` (asked from the hub), or
    /// `None` when it does not answer.
    pub fn scheduler_version(&self) -> Option<String> {
        let out = self
            .hub_command(Path::new("curl"))
            .args(["-sf", "--max-time", "5", "-H"])
            .arg(format!("Authorization: Bearer {}", self.token))
            .arg(format!("{}/v1/version", self.scheduler_url()))
            .stdin(Stdio::null())
            .output()
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["version"].as_str().map(str::to_string)
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
    /// checked against the hosts' known_hosts, as `drover fleet` checks them.
    pub fn upgrade_playbook(&self, dist: &Path, extra: &[&str]) -> std::process::Output {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        self.hub_command(Path::new("ansible-playbook"))
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
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap()
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

    /// A snapshot of Drover's files on every host (path, size, mtime, mode): the
    /// binaries, `/etc/drover`, the units and drop-ins, `/var/lib/drover` but the task
    /// sandboxes; to show a dry run changed nothing.
    pub fn snapshot(&self) -> Vec<String> {
        let mut out = Vec::new();
        for h in &self.hosts {
            let dirs: Vec<String> = [
                "usr/local/bin",
                "etc/drover",
                "etc/systemd/system",
                "var/lib/drover",
            ]
            .iter()
            .map(|d| h.root.join(d))
            .filter(|d| d.exists())
            .map(|d| d.to_str().unwrap().to_string())
            .collect();
            let mut args = vec!["find"];
            args.extend(dirs.iter().map(String::as_str));
            args.extend([
                "-path",
                "*/var/lib/drover/agent/tasks",
                "-prune",
                "-o",
                "-printf",
                "%p %s %T@ %m\\n",
            ]);
            let list = must(&args);
            out.extend(list.lines().map(str::to_string));
        }
        out.sort();
        out
    }

    /// Launches a long task on each agent through the master and waits until each runs;
    /// returns (node, task id, pid in the agent's host) per agent.
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

    /// The command line of process `pid` of host `name`'s PID namespace, read inside
    /// the host; `None` when there is no such process.
    pub fn process_on(&self, name: &str, pid: u64) -> Option<String> {
        let out = self.host_sh(name, &format!("tr '\\0' ' ' < /proc/{pid}/cmdline"));
        let cmdline = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !cmdline.is_empty()).then_some(cmdline)
    }

    /// Checks every task still runs with the pid it had, at the master and in its host.
    pub fn assert_tasks_kept(&self, drover: &Path, tasks: &[(String, String, u64)]) {
        for (node, id, pid) in tasks {
            let t = self.drover_json(drover, &["tasks", "show", id]);
            assert_eq!(
                t["pid"].as_u64(),
                Some(*pid),
                "the task on {node} was restarted: {t}"
            );
            assert!(t["state"] == "running" || t["state"] == "healthy", "{t}");
            let cmdline = self.process_on(node, *pid);
            assert!(
                cmdline
                    .as_deref()
                    .is_some_and(|c| c.contains("sleep 100000")),
                "pid {pid} on {node} is not the task any more: {cmdline:?}"
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
        use nix::sys::signal::Signal;
        let mut t = Teardown::new(format!("fleet hosts {}", self.hub));
        // Power every container off at once: nspawn turns SIGTERM into the container's
        // orderly shutdown.
        for c in &self.containers {
            t.step(format_args!("power off nspawn {}", c.id()), || {
                teardown::signal(c.id(), Signal::SIGTERM)
            });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for c in &mut self.containers {
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // What did not stop, and what the controller left in the hub (ssh control
        // masters): killed. A container's PID 1 takes its whole PID namespace with it.
        for ns in &self.namespaces {
            t.step(format_args!("kill what runs in namespace {ns}"), || {
                for _ in 0..3 {
                    let pids = teardown::run(&["ip", "netns", "pids", ns])?;
                    for pid in pids.split_whitespace().filter_map(|p| p.parse().ok()) {
                        teardown::signal(pid, Signal::SIGKILL)?;
                    }
                }
                Ok(())
            });
        }
        for c in &mut self.containers {
            let pid = c.id();
            t.step(format_args!("stop nspawn {pid}"), || {
                if matches!(c.try_wait(), Ok(None)) {
                    c.kill().map_err(|e| e.to_string())?;
                }
                c.wait().map(drop).map_err(|e| e.to_string())
            });
        }
        for m in &self.mounts {
            t.step(format_args!("unmount {}", m.display()), || {
                teardown::unmount(m)
            });
        }
        for cg in &self.cgroups {
            t.step(format_args!("remove cgroup {}", cg.display()), || {
                teardown::remove_cgroup(cg)
            });
            // `drover-fleet` itself, unless another test's containers are still in it.
            if let Some(parent) = cg.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
        for ns in self.namespaces.iter().rev() {
            t.step(format_args!("delete namespace {ns}"), || {
                teardown::run(&["ip", "netns", "del", ns]).map(drop)
            });
        }
        t.step("put fs.inotify.max_user_instances back", || {
            release_inotify(self.inotify_hosts)
        });
        t.finish();
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
