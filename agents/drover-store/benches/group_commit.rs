//! Write throughput of the redb store with N concurrent writers, one transaction and
//! fsync per batch (`CommitMode::Single`) against group commit (`CommitMode::Group`), in
//! the same run on the same disk. Each writer puts one ~200-byte record per batch and
//! waits for it to be durable, as a master handling one launch per request does.
//!
//! Run with `cargo bench -p drover-store --bench group_commit`; `WRITERS=1,8,32`,
//! `WRITES=20` (per writer and round) and `ROUNDS=3` override the defaults.

use std::sync::{Arc, Barrier};
use std::time::Instant;

use drover_store::redb_store::CommitMode;
use drover_store::{Op, RedbStore, Store};

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| default.to_vec())
}

/// Writes per second of one round: `writers` threads, `writes` durable batches each.
fn round(store: &Arc<RedbStore>, writers: usize, writes: usize, round: usize) -> f64 {
    let start = Arc::new(Barrier::new(writers + 1));
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                let value = vec![b'x'; 200];
                start.wait();
                for i in 0..writes {
                    let key = format!("bench/{round:03}/{w:04}/{i:06}");
                    if let Err(e) = store.apply(&[Op::put(key, value.clone())]) {
                        eprintln!("write failed: {e}");
                        std::process::exit(1);
                    }
                }
            })
        })
        .collect();
    start.wait();
    let t0 = Instant::now();
    for h in handles {
        if h.join().is_err() {
            eprintln!("a writer panicked");
            std::process::exit(1);
        }
    }
    (writers * writes) as f64 / t0.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // cargo test --benches asks for a list; this bench has no tests
    }
    let writers = env_list("WRITERS", &[1, 8, 32]);
    let writes = env_list("WRITES", &[20])[0];
    let rounds = env_list("ROUNDS", &[3])[0].max(1);
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("no temp dir: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "redb store, durable writes/s (median of {rounds} rounds, {writes} writes per writer and round)"
    );
    for &n in &writers {
        let mut medians = Vec::new();
        for (name, mode) in [("single", CommitMode::Single), ("group", CommitMode::Group)] {
            let path = dir.path().join(format!("{name}-{n}.redb"));
            let store = match RedbStore::open_with_mode(&path, mode) {
                Ok(s) => Arc::new(s),
                Err(e) => {
                    eprintln!("cannot open {}: {e}", path.display());
                    std::process::exit(1);
                }
            };
            let samples: Vec<f64> = (0..rounds).map(|r| round(&store, n, writes, r)).collect();
            let m = median(samples);
            println!("  {n:>3} writers, {name:<6} commit: {m:>8.0} writes/s");
            medians.push(m);
        }
        println!(
            "  {n:>3} writers: group/single = {:.1}x",
            medians[1] / medians[0]
        );
    }
}
