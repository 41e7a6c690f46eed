//! Placements per second on a synthetic 5,000-node cluster (`cargo bench -p drover-scheduler-engine`).
//!
//! Prints the median of several runs for: one call placing many instances without
//! constraints; the same with `hostname UNIQUE`, and with `UNIQUE` + `rack GROUP_BY` +
//! `zone LIKE`; and many small calls (each pays the per-call setup over all nodes). No harness: plain `std::time::Instant` figures.

use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;
use std::time::Instant;

use drover_api::app::{Constraint, ConstraintOperator};
use drover_api::node::NodeState;
use drover_api::{PortRange, Resources};
use drover_scheduler_engine::placement::{ClusterSnapshot, NodeSnapshot, PlacementRequest, place};

const NODES: usize = 5_000;
const RUNS: usize = 7;

fn cluster() -> ClusterSnapshot {
    // A small deterministic generator keeps the bench free of extra dependencies.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let nodes = (0..NODES)
        .map(|i| {
            let cpus = 8.0 + (next() % 57) as f64;
            let mem = 16_384.0 + (next() % 245_760) as f64;
            NodeSnapshot {
                name: format!("node-{i:05}"),
                state: if i % 97 == 0 {
                    NodeState::Draining
                } else {
                    NodeState::Ready
                },
                draining: false,
                attributes: BTreeMap::from([
                    ("rack".to_string(), format!("rack-{}", i % 50)),
                    ("zone".to_string(), format!("zone-{}", i % 3)),
                ]),
                docker: i % 10 != 0,
                free: Resources::new(cpus, mem, 100_000.0),
                ports: PortRange {
                    begin: 31000,
                    end: 32000,
                },
                ports_allocated: (next() % 500) as usize,
                used_ports: BTreeSet::new(),
                task_slots: None,
            }
        })
        .collect();
    ClusterSnapshot { revision: 1, nodes }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn run(
    label: &str,
    snapshot: &ClusterSnapshot,
    constraints: &[Constraint],
    per_call: usize,
    calls: usize,
) {
    let existing = BTreeMap::new();
    let mut rates = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let mut placed = 0;
        for _ in 0..calls {
            let req = PlacementRequest {
                app_id: "/bench/web",
                resources: Resources::new(0.25, 256.0, 0.0),
                fixed_ports: vec![],
                random_ports: 2,
                needs_docker: true,
                constraints,
                count: per_call,
                existing: &existing,
            };
            let plan = place(&req, black_box(snapshot));
            placed += plan.placements.len();
        }
        rates.push(placed as f64 / start.elapsed().as_secs_f64());
    }
    println!(
        "{label:<58} median {:>10.0} placements/s  (min {:.0}, max {:.0}, {RUNS} runs)",
        median(rates.clone()),
        rates.iter().copied().fold(f64::INFINITY, f64::min),
        rates.iter().copied().fold(0.0, f64::max)
    );
}

fn main() {
    let snapshot = cluster();
    println!("placement bench: {NODES} nodes (1% draining, 10% without docker, 50 racks)");
    run(
        "1 call x 2000 instances, no constraints",
        &snapshot,
        &[],
        2000,
        1,
    );
    let unique = [Constraint {
        field: "hostname".into(),
        operator: ConstraintOperator::Unique,
    }];
    run(
        "1 call x 2000 instances, hostname UNIQUE",
        &snapshot,
        &unique,
        2000,
        1,
    );
    let mixed = [
        Constraint {
            field: "hostname".into(),
            operator: ConstraintOperator::Unique,
        },
        Constraint {
            field: "rack".into(),
            operator: ConstraintOperator::GroupBy(None),
        },
        Constraint {
            field: "zone".into(),
            operator: ConstraintOperator::Like("zone-[01]".into()),
        },
    ];
    run(
        "1 call x 2000 instances, UNIQUE + rack GROUP_BY + zone LIKE",
        &snapshot,
        &mixed,
        2000,
        1,
    );
    run(
        "200 calls x 1 instance, no constraints (setup included)",
        &snapshot,
        &[],
        1,
        200,
    );
    run(
        "500 calls x 4 instances, no constraints (setup included)",
        &snapshot,
        &[],
        4,
        500,
    );
    run(
        "200 calls x 1 instance, UNIQUE + GROUP_BY + LIKE (setup included)",
        &snapshot,
        &mixed,
        1,
        200,
    );
}
