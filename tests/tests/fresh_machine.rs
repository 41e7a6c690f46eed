//! The README's promise on a fresh machine: on a minimal Debian 12 (what
//! `debootstrap --variant=minbase bookworm` makes, the same packages as the debian:12
//! image) where the user has installed rustup and nothing else, `scripts/setup --yes`
//! installs every tool the suite calls.
//!
//! 1. The bare root is built once and cached by `tests/fresh/build-rootfs`. Each run
//!    mounts an overlay of it (its upper folder under the cache's `runs/`), copies the
//!    repository in as a fresh clone has it (`git ls-files`: no `target/`, no `.git`), and
//!    runs everything in it with `systemd-nspawn` as root, sharing this machine's network
//!    so that apt reaches the mirror.
//! 2. The Rust toolchain is this machine's, lent read-only: the rustup home and the cargo
//!    home bind-mounted at the same paths, cargo's `bin` on PATH, as a user's rustup
//!    install leaves them. (The branch of setup that installs rustup itself downloads
//!    from https://sh.rustup.rs, which is not this test's to reach.)
//! 3. `scripts/setup --yes`, then `scripts/vm/install-deps` (the VM test's qemu,
//!    libvirt, Vagrant; they install fine in a container, nothing is started), then a
//!    check of every tool, each run inside the root: a failure lists every missing
//!    tool and what needs it, not just the first.
//! 4. Both again: they install nothing (setup says so, and dpkg's log is unchanged).
//! 5. Without the toolchain and without `--yes`, setup refuses to install rustup and
//!    says to pass `--yes` (there is no terminal to ask on); an unknown argument is
//!    refused.
//!
//! apt's downloads are kept between runs in `$DROVER_FRESH_CACHE/debs` (default
//! `/var/cache/drover-fresh`), bound over the root's `/var/cache/apt/archives` (and
//! install-deps' own archive folder), so only the first run fetches them.
//!
//! Needs root, debootstrap, systemd-nspawn, overlayfs and a rustup toolchain to lend;
//! where one is missing the test says so on stderr and passes. Teardown (the overlay
//! mount, the run's folder) runs every step even when one fails, and reports failures.

#![allow(clippy::unwrap_used)] // tests: a failure should fail loudly

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use drover_cluster_tests::teardown::{Teardown, unmount};
use drover_cluster_tests::{build_image, have, not_root, repo_root, skipped};

/// Where the root image, apt's downloads and each run's overlay live.
fn cache_dir() -> PathBuf {
    std::env::var_os("DROVER_FRESH_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/drover-fresh"))
}

/// This machine's rustup toolchain, lent to the root read-only at the same paths.
struct Toolchain {
    rustup_home: PathBuf,
    cargo_home: PathBuf,
}

impl Toolchain {
    /// `RUSTUP_HOME` and `CARGO_HOME` as rustup sets them for cargo's children, else
    /// rustup's defaults under `$HOME`.
    fn find() -> Result<Toolchain, String> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let dir = |var: &str, default: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(default)))
        };
        let rustup_home = dir("RUSTUP_HOME", ".rustup").ok_or("no HOME and no RUSTUP_HOME")?;
        let cargo_home = dir("CARGO_HOME", ".cargo").ok_or("no HOME and no CARGO_HOME")?;
        if !rustup_home.join("toolchains").is_dir() {
            return Err(format!(
                "no rustup toolchain to lend ({} has no toolchains/)",
                rustup_home.display()
            ));
        }
        if !cargo_home.join("bin/cargo").exists() {
            return Err(format!(
                "no rustup toolchain to lend (no {})",
                cargo_home.join("bin/cargo").display()
            ));
        }
        Ok(Toolchain {
            rustup_home,
            cargo_home,
        })
    }

    /// nspawn's arguments that lend it: read-only binds, cargo's `bin` first on PATH,
    /// and the homes' variables where they are not rustup's defaults for root.
    fn nspawn_args(&self) -> Vec<String> {
        let mut args = vec![
            format!("--bind-ro={}", self.rustup_home.display()),
            format!("--bind-ro={}", self.cargo_home.display()),
            format!(
                "--setenv=PATH={}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                self.cargo_home.join("bin").display()
            ),
        ];
        if self.rustup_home != Path::new("/root/.rustup") {
            args.push(format!(
                "--setenv=RUSTUP_HOME={}",
                self.rustup_home.display()
            ));
        }
        if self.cargo_home != Path::new("/root/.cargo") {
            args.push(format!("--setenv=CARGO_HOME={}", self.cargo_home.display()));
        }
        args
    }
}

/// Why this test cannot run here, or `None`.
fn unsupported() -> Option<String> {
    if let Some(why) = not_root() {
        return Some(why.to_string());
    }
    for (tool, package) in [
        ("debootstrap", "debootstrap"),
        ("systemd-nspawn", "systemd-container"),
    ] {
        if !have(tool) {
            return Some(format!(
                "{tool} is missing (scripts/setup installs {package})"
            ));
        }
    }
    let fs = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if !fs.lines().any(|l| l.trim_end().ends_with("overlay")) {
        return Some("the kernel has no overlayfs".into());
    }
    Toolchain::find().err()
}

/// The cached bare root (built on first use by `tests/fresh/build-rootfs`).
fn rootfs() -> PathBuf {
    build_image(&repo_root().join("tests/fresh/build-rootfs"))
}

/// Whether a command in the root may use the lent toolchain.
#[derive(Clone, Copy, PartialEq)]
enum Rust {
    /// The host's toolchain, as a user's rustup install.
    Lent,
    /// None: the root as it is.
    Absent,
}

/// What a command in the root did.
struct Ran {
    /// Its exit code (`None`: killed by a signal).
    code: Option<i32>,
    /// Its stdout and stderr, interleaved.
    output: String,
    /// Its wall time, nspawn included.
    took: Duration,
}

impl Ran {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// The last `n` lines of the output, for a failure message.
    fn tail(&self, n: usize) -> String {
        let lines: Vec<&str> = self.output.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The output's own lines from `prefix` (setup's `setup: ...`), without apt's.
    fn lines_from(&self, prefix: &str) -> Vec<&str> {
        self.output
            .lines()
            .filter(|l| l.starts_with(prefix))
            .collect()
    }
}

/// One run's fresh machine: an overlay of the cached root, with the repository copied in.
/// Drop unmounts the overlay and removes the run's folder.
struct FreshRoot {
    /// The run's folder: `upper`, `work`, `root` (the merged overlay), logs. Removed on
    /// Drop only once `root` is unmounted (else it is left, and the teardown says so).
    dir: Option<tempfile::TempDir>,
    /// The merged overlay, once mounted (Drop unmounts it).
    mounted: Option<PathBuf>,
    /// The machine name nspawn runs under (its host name; unique per run).
    machine: String,
    /// apt's downloaded packages, kept between runs.
    debs: PathBuf,
    /// Where the repository is inside the root.
    repo_in_root: &'static str,
    toolchain: Toolchain,
}

impl FreshRoot {
    fn new(image: &Path, toolchain: Toolchain) -> FreshRoot {
        let cache = cache_dir();
        let runs = cache.join("runs");
        let debs = cache.join("debs");
        std::fs::create_dir_all(&runs).unwrap();
        std::fs::create_dir_all(&debs).unwrap();
        // On disk under the cache, not in /tmp: the upper folder takes a few GB, too much
        // for a tmpfs.
        sweep_dead_runs(&runs);
        let dir = tempfile::Builder::new()
            .prefix(&format!("run-{}-", std::process::id()))
            .tempdir_in(&runs)
            .unwrap();
        let mut me = FreshRoot {
            dir: Some(dir),
            mounted: None,
            machine: format!("drover-fresh-{}", std::process::id()),
            debs,
            repo_in_root: "/root/drover",
            toolchain,
        };
        let (upper, work, root) = (me.path("upper"), me.path("work"), me.path("root"));
        for d in [&upper, &work, &root] {
            std::fs::create_dir(d).unwrap();
        }
        let out = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!(
                "lowerdir={},upperdir={},workdir={}",
                image.display(),
                upper.display(),
                work.display()
            ))
            .arg(&root)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cannot mount the overlay: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        me.mounted = Some(root.clone());
        copy_repo(
            &repo_root(),
            &root.join(me.repo_in_root.trim_start_matches('/')),
        );
        me
    }

    /// A path in the run's folder.
    fn path(&self, name: &str) -> PathBuf {
        self.dir.as_ref().unwrap().path().join(name)
    }

    /// A path inside the root, as this machine sees it.
    fn in_root(&self, path: &str) -> PathBuf {
        self.path("root").join(path.trim_start_matches('/'))
    }

    /// Runs `argv` in the root with systemd-nspawn, as root, from the repository's copy:
    /// this machine's network, apt's download cache bound in, stdin/stdout/stderr plain
    /// pipes (no terminal: what CI gives setup). The output goes to `log` in the run's
    /// folder and is returned.
    fn run(&self, log: &str, rust: Rust, argv: &[&str]) -> Ran {
        let log = self.path(log);
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new("systemd-nspawn");
        cmd.args([
            "--quiet",
            "--register=no",
            "--keep-unit",
            "--as-pid2",
            "--console=pipe",
        ])
        .arg(format!("--machine={}", self.machine))
        .arg("-D")
        .arg(self.path("root"))
        .arg(format!("--chdir={}", self.repo_in_root))
        .arg(format!(
            "--bind={}:/var/cache/apt/archives",
            self.debs.display()
        ))
        // scripts/vm/install-deps keeps its downloads in its own folder.
        .arg(format!(
            "--bind={}:/var/cache/drover-vm/debs",
            self.debs.display()
        ));
        if rust == Rust::Lent {
            cmd.args(self.toolchain.nspawn_args());
        }
        cmd.args(argv)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        let started = Instant::now();
        let status = cmd.status().unwrap();
        let took = started.elapsed();
        let output = String::from_utf8_lossy(&std::fs::read(&log).unwrap()).into_owned();
        Ran {
            code: status.code(),
            output,
            took,
        }
    }

    /// dpkg's log in the root (what it installed, in order).
    fn dpkg_log(&self) -> String {
        std::fs::read_to_string(self.in_root("/var/log/dpkg.log")).unwrap_or_default()
    }
}

impl Drop for FreshRoot {
    fn drop(&mut self) {
        let mut t = Teardown::new(format!("fresh machine {}", self.machine));
        // Nothing runs in the root between calls: each nspawn has exited, and its PID
        // namespace (whatever a package's scripts started) ended with it.
        let mut unmounted = true;
        if let Some(root) = self.mounted.take() {
            t.step(format!("unmount {}", root.display()), || {
                unmount(&root).inspect_err(|_| unmounted = false)
            });
        }
        // nspawn keeps a folder per machine here, and cannot remove it where /run is not
        // a tmpfs ("Attempted to remove disk file system ..."): remove it for it.
        let propagate = Path::new("/run/systemd/nspawn/propagate").join(&self.machine);
        t.step(
            format!("remove {}", propagate.display()),
            || match std::fs::remove_dir_all(&propagate) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
                _ => Ok(()),
            },
        );
        if let Some(dir) = self.dir.take() {
            t.step("remove the run's folder", || {
                if unmounted {
                    dir.close().map_err(|e| e.to_string())
                } else {
                    // Removing it would go through the overlay still mounted in it.
                    Err(format!("left {} (still mounted)", dir.keep().display()))
                }
            });
        }
        t.finish();
    }
}

/// Removes what runs of test processes that no longer exist left (a process killed
/// outright never ran its teardown): their overlay is unmounted and their folder deleted.
/// Each run's folder is named `run-<pid>-…` after the process that made it.
fn sweep_dead_runs(runs: &Path) {
    let Ok(entries) = std::fs::read_dir(runs) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("run-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        let mut t = Teardown::new(format!("a dead run's leftovers {}", e.path().display()));
        let root = e.path().join("root");
        let mut unmounted = false;
        t.step(format!("unmount {}", root.display()), || {
            unmount(&root).map(|()| unmounted = true)
        });
        if unmounted {
            t.step(format!("remove {}", e.path().display()), || {
                std::fs::remove_dir_all(e.path()).map_err(|err| err.to_string())
            });
        }
        eprintln!("fresh machine: removed the leftovers of dead run {name}");
        t.finish();
    }
}

/// Copies the repository's files as a fresh clone has them: what git tracks, plus new
/// files it does not ignore (so a change not yet committed is tested too); no `.git`,
/// no `target/`. Without git, the working tree minus those.
fn copy_repo(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let listed = Command::new("git")
        .arg("-C")
        .arg(from)
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    let files: Vec<PathBuf> = match listed {
        Ok(out) if out.status.success() => out
            .stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
            .collect(),
        _ => walk(from, Path::new("")),
    };
    for rel in files {
        let src = from.join(&rel);
        // Listed but deleted in the working tree: as a clone of that tree would be.
        let Ok(meta) = std::fs::symlink_metadata(&src) else {
            continue;
        };
        let dst = to.join(&rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if meta.is_file() {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// Every file under `dir` (relative to the walk's start), without `.git`, `target` and
/// `dist`.
fn walk(root: &Path, rel: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(root.join(rel)).unwrap().flatten() {
        let name = e.file_name();
        if rel.as_os_str().is_empty() && [".git", "target", "dist"].iter().any(|n| name == *n) {
            continue;
        }
        let path = rel.join(&name);
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            files.extend(walk(root, &path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Every tool the suite calls: (what, a bash check run in the root, what needs it).
const CHECKS: &[(&str, &str, &str)] = &[
    // The base system's, which setup takes as given.
    (
        "bash, tar, find, sha256sum, chroot, mount, flock, timeout, ldd",
        "need bash tar find sha256sum chroot mount umount flock timeout ldd",
        "the tests and scripts",
    ),
    // Building.
    (
        "cc (compiles and runs a C program)",
        "printf 'int main(void) { return 0; }\\n' >/tmp/c.c && cc /tmp/c.c -o /tmp/c && /tmp/c",
        "crates with build scripts",
    ),
    (
        "pkg-config and openssl.pc",
        "pkg-config --exists openssl",
        "ssh2 (drover fleet) in ordinary builds",
    ),
    (
        "make",
        "need make",
        "scripts/dist: OpenSSL built from source for musl",
    ),
    (
        "perl with IPC::Cmd",
        "perl -MIPC::Cmd -e 1",
        "scripts/dist: OpenSSL's Configure",
    ),
    ("musl-gcc", "need musl-gcc", "scripts/dist: C code for musl"),
    ("cargo", "cargo --version", "everything"),
    (
        "rustc >= 1.85",
        "v=$(rustc --version) && m=${v#rustc 1.} && [ \"${m%%.*}\" -ge 85 ]",
        "edition 2024",
    ),
    ("cargo clippy", "cargo clippy --version", "scripts/test"),
    ("cargo fmt", "cargo fmt --version", "scripts/test"),
    (
        "the x86_64-unknown-linux-musl target",
        "rustup target list --installed | grep -x x86_64-unknown-linux-musl",
        "scripts/dist, the Docker tests",
    ),
    // Tests.
    ("file", "need file", "tests/tests/dist.rs"),
    (
        "curl",
        "need curl",
        "init-cluster.sh, the fleet tests, tests/vm/load-loop",
    ),
    (
        "ca-certificates",
        "test -s /etc/ssl/certs/ca-certificates.crt || { echo no /etc/ssl/certs/ca-certificates.crt; false; }",
        "curl and cargo over https",
    ),
    (
        "systemd-analyze",
        "need systemd-analyze",
        "tests/tests/dist.rs",
    ),
    (
        "kill (the program)",
        "need kill",
        "signalling processes outside a shell",
    ),
    ("ps", "need ps", "scripts/vm/netns-down"),
    (
        "python3 -m venv (with pip)",
        "d=$(mktemp -d) && python3 -m venv \"$d/venv\" && \"$d/venv/bin/python\" -m pip --version; rc=$?; rm -rf \"$d\"; exit $rc",
        "scripts/lint",
    ),
    ("systemd-nspawn", "need systemd-nspawn", "the fleet tests"),
    (
        "debootstrap",
        "need debootstrap",
        "the fleet tests, scripts/vm/build-box",
    ),
    (
        "Debian's archive key",
        "test -s /usr/share/keyrings/debian-archive-keyring.gpg || { echo no /usr/share/keyrings/debian-archive-keyring.gpg; false; }",
        "debootstrap, scripts/vm/install-deps",
    ),
    (
        "ansible-playbook",
        "need ansible-playbook",
        "the fleet tests, tests/vm/e2e.sh",
    ),
    (
        "ssh-keygen and ssh",
        "need ssh-keygen ssh",
        "the fleet tests, Ansible",
    ),
    ("ip", "need ip", "the fleet and Docker tests"),
    ("nsenter", "need nsenter", "the fleet and Docker tests"),
    (
        "dockerd and docker",
        "need dockerd docker",
        "the Docker tests",
    ),
    (
        "a static busybox",
        "b=$(type -P busybox) && file -L \"$b\" | grep -E 'statically linked|static-pie linked'",
        "the Docker tests' image",
    ),
    // The VM test (scripts/vm/install-deps).
    (
        "vagrant with vagrant-libvirt",
        "vagrant plugin list | grep vagrant-libvirt",
        "tests/vm/e2e.sh",
    ),
    (
        "virsh, libvirtd, virtlogd",
        "need virsh libvirtd virtlogd",
        "scripts/vm/netns-up",
    ),
    (
        "qemu-system-x86_64 and qemu-img",
        "qemu-system-x86_64 --version && qemu-img --version",
        "the VMs, scripts/vm/build-box",
    ),
    (
        "dnsmasq and iptables",
        "need dnsmasq iptables",
        "libvirt's networks",
    ),
    (
        "sfdisk, losetup, partx, mkfs.ext4",
        "need sfdisk losetup partx mkfs.ext4",
        "scripts/vm/build-box",
    ),
];

/// The check script's start: `need PROGRAM...` fails naming the programs that are not
/// on PATH.
const CHECK_PREAMBLE: &str = r#"#!/bin/bash
need() {
  local m=() p
  for p; do type -P "$p" >/dev/null || m+=("$p"); done
  [ ${#m[@]} -eq 0 ] || { echo "not on PATH: ${m[*]}"; return 1; }
}
n=0
"#;

/// A bash script that runs every check, prints `MISSING|what|needs|why` for each that
/// fails (`why`: the first line of its output), and `CHECKED n` at the end (so that a
/// script that did not run through never passes). `need` looks for programs with
/// `type -P`, so a shell builtin such as `kill` does not count.
fn check_script() -> String {
    let mut s = String::from(CHECK_PREAMBLE);
    for (what, check, needs) in CHECKS {
        let quote = |t: &str| format!("'{}'", t.replace('\'', r"'\''"));
        writeln!(
            s,
            "n=$((n + 1)); if ! out=$( ( {check} ) 2>&1 ); then \
             echo \"MISSING|\"{}\"|\"{}\"|$(head -n1 <<<\"$out\")\"; fi",
            quote(what),
            quote(needs)
        )
        .unwrap();
    }
    s.push_str("echo \"CHECKED $n\"\n");
    s
}

/// Prints one of the run's timings on the process's stderr as it is known (a failing
/// run still shows how far it got, and how fast).
fn timing(line: String) {
    let _ = writeln!(std::io::stderr(), "fresh machine timing: {line}");
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

#[test]
fn setup_installs_everything_on_a_bare_debian_12() {
    if let Some(why) = unsupported() {
        skipped("fresh machine test", &why);
        return;
    }
    let started = Instant::now();
    let image = rootfs();
    timing(format!(
        "bare Debian 12 root ready: {}",
        secs(started.elapsed())
    ));
    let root = FreshRoot::new(&image, Toolchain::find().unwrap());

    // 1. scripts/setup --yes, then the VM test's own packages.
    let setup = root.run("setup-1.log", Rust::Lent, &["scripts/setup", "--yes"]);
    timing(format!("scripts/setup --yes: {}", secs(setup.took)));
    assert!(
        setup.ok(),
        "scripts/setup --yes failed on a bare Debian 12 (exit {:?}):\n{}",
        setup.code,
        setup.tail(40)
    );
    let vm_deps = root.run(
        "install-deps-1.log",
        Rust::Lent,
        &["scripts/vm/install-deps"],
    );
    timing(format!("scripts/vm/install-deps: {}", secs(vm_deps.took)));
    assert!(
        vm_deps.ok(),
        "scripts/vm/install-deps failed after setup (exit {:?}):\n{}",
        vm_deps.code,
        vm_deps.tail(40)
    );

    // 2. Every tool, all checked before failing.
    std::fs::write(root.in_root("/root/fresh-check"), check_script()).unwrap();
    let checked = root.run("check.log", Rust::Lent, &["/bin/bash", "/root/fresh-check"]);
    let missing: Vec<String> = checked
        .lines_from("MISSING|")
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.splitn(4, '|').collect();
            format!("  {} (for {}): {}", f[1], f[2], f.get(3).unwrap_or(&""))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "after scripts/setup --yes and scripts/vm/install-deps, {} of {} tools are missing or broken:\n{}",
        missing.len(),
        CHECKS.len(),
        missing.join("\n")
    );
    assert!(
        checked.ok()
            && checked
                .output
                .contains(&format!("CHECKED {}", CHECKS.len())),
        "the tool check did not run through (exit {:?}):\n{}",
        checked.code,
        checked.tail(20)
    );

    // 3. Again: nothing to install.
    let dpkg_before = root.dpkg_log();
    assert!(!dpkg_before.is_empty(), "setup installed nothing at all");
    let again = root.run("setup-2.log", Rust::Lent, &["scripts/setup", "--yes"]);
    timing(format!("scripts/setup --yes again: {}", secs(again.took)));
    let vm_again = root.run(
        "install-deps-2.log",
        Rust::Lent,
        &["scripts/vm/install-deps"],
    );
    assert!(
        again.ok() && vm_again.ok(),
        "a second run failed:\nsetup (exit {:?}):\n{}\ninstall-deps (exit {:?}):\n{}",
        again.code,
        again.tail(20),
        vm_again.code,
        vm_again.tail(20)
    );
    let acted: Vec<&str> = again
        .lines_from("setup: ")
        .into_iter()
        .filter(|l| l.contains("installing") || l.contains("adding") || l.contains("updating"))
        .collect();
    assert!(
        acted.is_empty(),
        "a second scripts/setup --yes installed again:\n{}",
        acted.join("\n")
    );
    assert!(
        again
            .output
            .contains("setup: apt packages: all present, nothing to install"),
        "a second scripts/setup --yes does not say it has nothing to install:\n{}",
        again.output
    );
    assert!(
        vm_again.output.contains("all packages present"),
        "a second scripts/vm/install-deps does not say it has nothing to install:\n{}",
        vm_again.output
    );
    let dpkg_after = root.dpkg_log();
    assert!(
        dpkg_after == dpkg_before,
        "the second runs changed packages (dpkg.log):\n{}",
        dpkg_after.get(dpkg_before.len()..).unwrap_or(&dpkg_after)
    );

    // 4. No toolchain, no --yes, no terminal: setup refuses to fetch rustup, and says how.
    let refused = root.run("setup-no-rust.log", Rust::Absent, &["scripts/setup"]);
    assert!(
        !refused.ok() && refused.output.contains("pass --yes"),
        "without a Rust toolchain or --yes, setup should refuse to install rustup and name --yes (exit {:?}):\n{}",
        refused.code,
        refused.tail(20)
    );
    let bad_arg = root.run("setup-bad-arg.log", Rust::Lent, &["scripts/setup", "--yse"]);
    assert!(
        bad_arg.code == Some(2) && bad_arg.output.contains("unknown argument: --yse"),
        "setup should refuse an unknown argument with exit 2 (exit {:?}):\n{}",
        bad_arg.code,
        bad_arg.output
    );

    timing(format!("whole test: {}", secs(started.elapsed())));
}
