//! A store on a small tmpfs that fills up: writes fail and are refused while it is
//! full, nothing acknowledged is lost, and the store takes writes again by itself once
//! there is room. Needs root (to mount the tmpfs); skipped otherwise.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use drover_store::{Expect, RedbStore, Store, StoreError};

struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount tmpfs on {}", dir.path().display());
        Tmpfs(dir)
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

/// Writes zeros to `path` until the file system says it is full.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 64 * 1024];
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // Smaller writes take the last partial block too.
    while f.write(&[0u8; 512]).is_ok_and(|n| n > 0) {}
}

#[test]
fn a_full_disk_refuses_writes_then_the_store_recovers_by_itself() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "SKIPPED a_full_disk_refuses_writes_then_the_store_recovers_by_itself: needs root to mount a tmpfs"
        );
        return;
    }
    let fs = Tmpfs::mount("8m");
    let store = RedbStore::open(fs.path().join("state.redb")).unwrap();
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let key = format!("k/{i:04}");
        store.put(&key, &[7u8; 1024], Expect::Absent).unwrap();
        acknowledged.push(key);
    }
    fill(&fs.path().join("filler"));

    // Writes with new pages fail once nothing is left; the first failure takes the
    // store down, and from then on writes are refused at once.
    let mut failed = None;
    for i in 20..20_000 {
        let key = format!("k/{i:04}");
        match store.put(&key, &[7u8; 4096], Expect::Absent) {
            Ok(_) => acknowledged.push(key),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let failed = failed.expect("a write fails on a full disk");
    assert!(failed.is_unavailable(), "{failed}");
    let refused = store.put("after", b"x", Expect::Any).unwrap_err();
    assert!(
        matches!(refused, StoreError::Unavailable { .. }),
        "{refused}"
    );
    assert!(store.health().is_err());

    // Room again: the store reopens by itself and takes writes.
    std::fs::remove_file(fs.path().join("filler")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.health().is_err() {
        assert!(Instant::now() < deadline, "the store did not recover");
        std::thread::sleep(Duration::from_millis(50));
    }
    store.put("after", b"x", Expect::Absent).unwrap();
    for key in &acknowledged {
        assert!(store.get(key).unwrap().is_some(), "{key} was acknowledged");
    }
    let path = store.path().to_path_buf();
    drop(store);
    let reopened = RedbStore::open(&path).unwrap();
    for key in acknowledged
        .iter()
        .chain(std::iter::once(&"after".to_string()))
    {
        assert!(
            reopened.get(key).unwrap().is_some(),
            "{key} survives a reopen"
        );
    }
}
