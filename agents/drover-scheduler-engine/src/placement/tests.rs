//! Table tests per constraint and resource failure, and properties of the placement.

#![allow(clippy::unwrap_used)] // tests may unwrap

use std::collections::{BTreeMap, BTreeSet};

use drover_api::app::{Constraint, ConstraintOperator};
use drover_api::node::NodeState;
use drover_api::{PortRange, Resources};
use proptest::prelude::*;

use super::*;

fn node(name: &str, attrs: &[(&str, &str)]) -> NodeSnapshot {
    NodeSnapshot {
        name: name.to_string(),
        state: NodeState::Ready,
        draining: false,
        attributes: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        docker: true,
        free: Resources::new(4.0, 4096.0, 10_000.0),
        ports: PortRange {
            begin: 31000,
            end: 31009,
        },
        ports_allocated: 0,
        used_ports: BTreeSet::new(),
        task_slots: None,
    }
}

fn snap(nodes: Vec<NodeSnapshot>) -> ClusterSnapshot {
    ClusterSnapshot { revision: 7, nodes }
}

fn c(field: &str, op: ConstraintOperator) -> Constraint {
    Constraint {
        field: field.to_string(),
        operator: op,
    }
}

fn req<'a>(
    constraints: &'a [Constraint],
    count: usize,
    existing: &'a BTreeMap<String, usize>,
) -> PlacementRequest<'a> {
    PlacementRequest {
        app_id: "/web",
        resources: Resources::new(1.0, 512.0, 0.0),
        fixed_ports: vec![],
        random_ports: 1,
        needs_docker: false,
        constraints,
        count,
        existing,
    }
}

fn racks() -> Vec<NodeSnapshot> {
    vec![
        node("a1", &[("rack", "r1")]),
        node("a2", &[("rack", "r1")]),
        node("b1", &[("rack", "r2")]),
        node("b2", &[("rack", "r2")]),
        node("c1", &[("rack", "r3")]),
    ]
}

/// (name, nodes, constraints, existing, count, expected per-node counts, expected unplaced
/// count and reason text).
type Case = (
    &'static str,
    Vec<NodeSnapshot>,
    Vec<Constraint>,
    Vec<(&'static str, usize)>,
    usize,
    Vec<(&'static str, usize)>,
    Option<(usize, &'static str)>,
);

#[test]
fn constraint_table() {
    let cases: Vec<Case> = vec![
        (
            "UNIQUE hostname places one per node, then explains",
            vec![node("n1", &[]), node("n2", &[])],
            vec![c("hostname", ConstraintOperator::Unique)],
            vec![],
            3,
            vec![("n1", 1), ("n2", 1)],
            Some((
                1,
                "no node can take an instance of /web: 2 of 2 nodes: hostname UNIQUE already has an instance",
            )),
        ),
        (
            "UNIQUE counts existing instances, also on nodes gone from the snapshot",
            vec![node("n1", &[]), node("n2", &[])],
            vec![c("hostname", ConstraintOperator::Unique)],
            vec![("n1", 1), ("gone", 1)],
            1,
            vec![("n2", 1)],
            None,
        ),
        (
            "UNIQUE on an attribute: one per rack",
            racks(),
            vec![c("rack", ConstraintOperator::Unique)],
            vec![],
            4,
            vec![("a1", 1), ("b1", 1), ("c1", 1)],
            Some((
                1,
                "no node can take an instance of /web: 5 of 5 nodes: rack UNIQUE value already has an instance",
            )),
        ),
        (
            "CLUSTER with a value",
            racks(),
            vec![c("rack", ConstraintOperator::Cluster(Some("r2".into())))],
            vec![],
            2,
            vec![("b1", 1), ("b2", 1)],
            None,
        ),
        (
            "CLUSTER with a value nobody has",
            racks(),
            vec![c("rack", ConstraintOperator::Cluster(Some("r9".into())))],
            vec![],
            1,
            vec![],
            Some((
                1,
                "no node can take an instance of /web: 2 of 5 nodes: rack CLUSTER r9 is \"r1\"; 2 of 5 nodes: rack CLUSTER r9 is \"r2\"; 1 of 5 nodes: rack CLUSTER r9 is \"r3\"",
            )),
        ),
        (
            "CLUSTER without a value follows the existing instance",
            racks(),
            vec![c("rack", ConstraintOperator::Cluster(None))],
            vec![("c1", 1)],
            2,
            vec![("c1", 2)],
            None,
        ),
        (
            "CLUSTER without a value and no instance yet picks one value for all",
            racks(),
            vec![c("rack", ConstraintOperator::Cluster(None))],
            vec![],
            3,
            vec![("a1", 2), ("a2", 1)],
            None,
        ),
        (
            "GROUP_BY spreads evenly over racks",
            racks(),
            vec![c("rack", ConstraintOperator::GroupBy(Some(3)))],
            vec![],
            6,
            vec![("a1", 1), ("a2", 1), ("b1", 1), ("b2", 1), ("c1", 2)],
            None,
        ),
        (
            "GROUP_BY fills the least-loaded rack first",
            racks(),
            vec![c("rack", ConstraintOperator::GroupBy(None))],
            vec![("a1", 2), ("b1", 2)],
            2,
            vec![("c1", 2)],
            None,
        ),
        (
            "LIKE on an attribute",
            racks(),
            vec![c("rack", ConstraintOperator::Like("r[12]".into()))],
            vec![],
            5,
            vec![("a1", 2), ("a2", 1), ("b1", 1), ("b2", 1)],
            None,
        ),
        (
            "LIKE matches whole values only",
            racks(),
            vec![c("rack", ConstraintOperator::Like("r".into()))],
            vec![],
            1,
            vec![],
            Some((
                1,
                "no node can take an instance of /web: 2 of 5 nodes: rack LIKE r does not match \"r1\"; 2 of 5 nodes: rack LIKE r does not match \"r2\"; 1 of 5 nodes: rack LIKE r does not match \"r3\"",
            )),
        ),
        (
            "UNLIKE on hostname",
            vec![node("web-1", &[]), node("db-1", &[])],
            vec![c("hostname", ConstraintOperator::Unlike("db-.*".into()))],
            vec![],
            2,
            vec![("web-1", 2)],
            None,
        ),
        (
            "UNLIKE accepts nodes without the attribute, LIKE does not",
            vec![node("x", &[]), node("y", &[("zone", "eu")])],
            vec![
                c("zone", ConstraintOperator::Unlike("us".into())),
                c("zone", ConstraintOperator::Like("eu|us".into())),
            ],
            vec![],
            2,
            vec![("y", 2)],
            None,
        ),
        (
            "MAX_PER rack",
            racks(),
            vec![c("rack", ConstraintOperator::MaxPer(1))],
            vec![("a1", 1)],
            3,
            vec![("b1", 1), ("c1", 1)],
            Some((
                1,
                "no node can take an instance of /web: 5 of 5 nodes: rack MAX_PER 1 value already has 1 instance(s) (max 1)",
            )),
        ),
        (
            "MAX_PER hostname",
            vec![node("n1", &[])],
            vec![c("hostname", ConstraintOperator::MaxPer(2))],
            vec![],
            3,
            vec![("n1", 2)],
            Some((
                1,
                "no node can take an instance of /web: 1 of 1 node: hostname MAX_PER 2 value already has 2 instance(s) (max 2)",
            )),
        ),
        (
            "IS",
            racks(),
            vec![c("rack", ConstraintOperator::Is("r3".into()))],
            vec![],
            1,
            vec![("c1", 1)],
            None,
        ),
        (
            "a node without the attribute fails attribute constraints",
            vec![node("n1", &[])],
            vec![c("rack", ConstraintOperator::GroupBy(None))],
            vec![],
            1,
            vec![],
            Some((
                1,
                "no node can take an instance of /web: 1 of 1 node: rack GROUP_BY node has no attribute rack",
            )),
        ),
    ];
    for (name, nodes, constraints, existing, count, want, want_unplaced) in cases {
        let existing: BTreeMap<String, usize> = existing
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let r = req(&constraints, count, &existing);
        let plan = place(&r, &snap(nodes));
        let got: Vec<(&str, usize)> = plan.per_node().into_iter().collect();
        assert_eq!(got, want, "{name}");
        let unplaced = plan
            .unplaced
            .as_ref()
            .map(|u| (u.count, u.reason.to_string()));
        assert_eq!(
            unplaced,
            want_unplaced.map(|(n, s)| (n, s.to_string())),
            "{name}"
        );
        assert_eq!(plan.revision, 7);
    }
}

#[test]
fn resource_and_state_failures_explain_themselves() {
    let existing = BTreeMap::new();
    let cs = [];
    let mut small = node("small", &[]);
    small.free = Resources::new(4.0, 256.0, 0.0);
    let mut busy = node("busy", &[]);
    busy.free.cpus = 0.5;
    let mut disk = node("disk", &[]);
    disk.free.disk = 0.0;
    let mut draining = node("drain", &[]);
    draining.draining = true;
    let mut gone = node("gone", &[]);
    gone.state = NodeState::Unreachable;
    let mut ports = node("ports", &[]);
    ports.ports_allocated = 10;
    let mut no_docker = node("plain", &[]);
    no_docker.docker = false;
    let mut r = req(&cs, 1, &existing);
    r.resources = Resources::new(1.0, 512.0, 10.0);
    r.needs_docker = true;
    let plan = place(
        &r,
        &snap(vec![small, busy, disk, draining, gone, ports, no_docker]),
    );
    assert!(plan.placements.is_empty());
    assert_eq!(
        plan.unplaced.unwrap().reason.to_string(),
        "no node can take an instance of /web: 1 of 7 nodes: draining; 1 of 7 nodes: no docker capability (the app runs a container); \
         1 of 7 nodes: unreachable; 1 of 7 nodes: insufficient cpus (wants 1); 1 of 7 nodes: insufficient disk (wants 10 MiB); \
         1 of 7 nodes: insufficient free ports (wants 1); 1 of 7 nodes: insufficient mem (wants 512 MiB)"
    );
}

#[test]
fn a_node_takes_no_more_instances_than_its_task_slots() {
    let existing = BTreeMap::new();
    let cs = [];
    let mut a = node("a", &[]);
    a.task_slots = Some(1);
    let mut b = node("b", &[]);
    b.task_slots = Some(0);
    let plan = place(&req(&cs, 2, &existing), &snap(vec![a, b]));
    assert_eq!(plan.per_node(), BTreeMap::from([("a", 1)]));
    assert_eq!(
        plan.unplaced.unwrap().reason.to_string(),
        "no node can take an instance of /web: 2 of 2 nodes: runs its most tasks at once (drover-agent --max-tasks)"
    );
}

#[test]
fn mem_runs_out_as_instances_are_placed() {
    let existing = BTreeMap::new();
    let cs = [];
    let nodes: Vec<_> = (0..3)
        .map(|i| {
            let mut n = node(&format!("n{i}"), &[]);
            n.free.mem = 1024.0;
            n
        })
        .collect();
    let plan = place(&req(&cs, 10, &existing), &snap(nodes));
    assert_eq!(plan.placements.len(), 6);
    let u = plan.unplaced.unwrap();
    assert_eq!(u.count, 4);
    assert_eq!(
        u.reason.to_string(),
        "no node can take an instance of /web: 3 of 3 nodes: insufficient mem (wants 512 MiB)"
    );
}

#[test]
fn fixed_ports_must_be_free_and_in_range() {
    let existing = BTreeMap::new();
    let cs = [];
    let mut a = node("a", &[]);
    a.used_ports.insert(31005);
    let b = node("b", &[]);
    let mut r = req(&cs, 3, &existing);
    r.fixed_ports = vec![31005];
    r.random_ports = 0;
    let plan = place(&r, &snap(vec![a, b]));
    assert_eq!(
        plan.per_node().into_iter().collect::<Vec<_>>(),
        vec![("b", 1)]
    );
    assert_eq!(
        plan.unplaced.unwrap().reason.to_string(),
        "no node can take an instance of /web: 2 of 2 nodes: port 31005 already in use"
    );
    r.fixed_ports = vec![80];
    let plan = place(&r, &snap(vec![node("a", &[])]));
    assert_eq!(
        plan.unplaced.unwrap().reason.to_string(),
        "no node can take an instance of /web: 1 of 1 node: hostname UNIQUE already has an instance".replace("hostname UNIQUE already has an instance", "port 80 outside the node's port range")
    );
}

#[test]
fn spreads_by_instance_count_then_free_resources() {
    let existing: BTreeMap<String, usize> = [("a".to_string(), 2)].into();
    let cs = [];
    let mut b = node("b", &[]);
    b.free.mem = 2048.0;
    let c_ = node("c", &[]);
    let plan = place(&req(&cs, 3, &existing), &snap(vec![node("a", &[]), b, c_]));
    // c has more free memory than b, so it goes first; then b (fewer instances), then c.
    let order: Vec<&str> = plan.placements.iter().map(|p| p.node.as_str()).collect();
    assert_eq!(order, vec!["c", "b", "c"]);
}

#[test]
fn empty_cluster_says_so() {
    let existing = BTreeMap::new();
    let cs = [];
    let plan = place(&req(&cs, 2, &existing), &snap(vec![]));
    let u = plan.unplaced.unwrap();
    assert_eq!(u.count, 2);
    assert_eq!(
        u.reason.to_string(),
        "no node can take an instance of /web: the cluster has no nodes"
    );
}

#[test]
fn apply_takes_resources_for_the_next_app() {
    let existing = BTreeMap::new();
    let cs = [];
    let mut s = snap(vec![node("a", &[])]);
    let r = req(&cs, 8, &existing);
    let plan = place(&r, &s);
    assert_eq!(plan.placements.len(), 4);
    s.apply(&r, &plan);
    assert_eq!(s.nodes[0].free.cpus, 0.0);
    assert_eq!(s.nodes[0].ports_allocated, 4);
    assert!(place(&r, &s).placements.is_empty());
}

#[test]
fn request_for_app_reads_ports_image_and_constraints() {
    let v = serde_json::json!({"id": "/w", "cmd": "x", "portDefinitions": [{"port": 8080}, {"port": 0}], "requirePorts": true,
        "constraints": [["hostname", "UNIQUE"]], "container": {"type": "DOCKER", "docker": {"image": "busybox"}}});
    let (app, _) = drover_api::app::AppDefinition::from_marathon(&v).unwrap();
    let existing = BTreeMap::new();
    let r = PlacementRequest::for_app(&app, 2, &existing);
    assert_eq!(r.fixed_ports, vec![8080]);
    assert_eq!(r.random_ports, 1);
    assert!(r.needs_docker);
    assert_eq!(r.constraints.len(), 1);
}

fn arb_node(i: usize) -> impl Strategy<Value = NodeSnapshot> {
    (
        0.0f64..8.0,
        0.0f64..8192.0,
        0usize..4,
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.9),
        0usize..3,
    )
        .prop_map(move |(cpus, mem, rack, ready, docker, used)| {
            let mut n = node(
                &format!("n{i:03}"),
                &[("rack", ["r1", "r2", "r3", "r4"][rack]), ("all", "x")],
            );
            n.free = Resources::new((cpus * 4.0).round() / 4.0, mem.round(), 1000.0);
            n.state = if ready {
                NodeState::Ready
            } else {
                NodeState::Draining
            };
            n.docker = docker;
            n.ports = PortRange {
                begin: 31000,
                end: 31002,
            };
            n.ports_allocated = used;
            n
        })
}

fn arb_cluster() -> impl Strategy<Value = Vec<NodeSnapshot>> {
    (1usize..25).prop_flat_map(|n| (0..n).map(arb_node).collect::<Vec<_>>())
}

fn arb_monotone_constraints() -> impl Strategy<Value = Vec<Constraint>> {
    prop::collection::vec(
        prop_oneof![
            Just(c("hostname", ConstraintOperator::Unique)),
            Just(c("rack", ConstraintOperator::MaxPer(3))),
            Just(c("rack", ConstraintOperator::Unlike("r4".into()))),
            Just(c("rack", ConstraintOperator::Cluster(None))),
        ],
        0..2,
    )
}

fn arb_constraints() -> impl Strategy<Value = Vec<Constraint>> {
    prop::collection::vec(
        prop_oneof![
            Just(c("hostname", ConstraintOperator::Unique)),
            Just(c("rack", ConstraintOperator::GroupBy(None))),
            Just(c("rack", ConstraintOperator::MaxPer(2))),
            Just(c("rack", ConstraintOperator::Like("r[123]".into()))),
            Just(c("rack", ConstraintOperator::Cluster(None))),
        ],
        0..3,
    )
}

proptest! {
    #[test]
    fn never_exceeds_free_resources(nodes in arb_cluster(), constraints in arb_constraints(), count in 0usize..40,
                                    cpus in 0.0f64..2.0, mem in 0.0f64..2048.0, ports in 0usize..3) {
        let existing = BTreeMap::new();
        let mut r = req(&constraints, count, &existing);
        r.resources = Resources::new(cpus, mem, 1.0);
        r.random_ports = ports;
        let s = snap(nodes);
        let plan = place(&r, &s);
        prop_assert_eq!(plan.placements.len() + plan.unplaced.as_ref().map_or(0, |u| u.count), count);
        for (name, k) in plan.per_node() {
            let n = s.nodes.iter().find(|n| n.name == name).unwrap();
            prop_assert_eq!(n.state, NodeState::Ready);
            let k = k as f64;
            prop_assert!(k * cpus <= n.free.cpus + 1e-6, "cpus on {}", name);
            prop_assert!(k * mem <= n.free.mem + 1e-6, "mem on {}", name);
            prop_assert!(k as usize * ports <= n.ports.len() - n.ports_allocated, "ports on {}", name);
        }
    }

    #[test]
    fn unique_never_puts_two_on_one_host(nodes in arb_cluster(), count in 0usize..40, existing_on in prop::collection::btree_set(0usize..25, 0..5)) {
        let constraints = vec![c("hostname", ConstraintOperator::Unique)];
        let existing: BTreeMap<String, usize> = existing_on.iter().map(|i| (format!("n{i:03}"), 1)).collect();
        let mut r = req(&constraints, count, &existing);
        r.resources = Resources::new(0.1, 1.0, 0.0);
        r.random_ports = 0;
        let plan = place(&r, &snap(nodes));
        for (name, k) in plan.per_node() {
            prop_assert_eq!(k, 1);
            prop_assert!(!existing.contains_key(name));
        }
    }

    #[test]
    fn deterministic_and_independent_of_node_order(nodes in arb_cluster(), constraints in arb_constraints(), count in 0usize..30, seed in 0usize..1000) {
        let existing: BTreeMap<String, usize> = [("n001".to_string(), 1)].into();
        let r = req(&constraints, count, &existing);
        let s = snap(nodes.clone());
        let a = place(&r, &s);
        let b = place(&r, &s);
        prop_assert_eq!(&a, &b);
        let mut shuffled = nodes;
        let len = shuffled.len();
        shuffled.rotate_left(seed % len);
        shuffled.reverse();
        let c_ = place(&r, &snap(shuffled));
        prop_assert_eq!(a.placements, c_.placements);
        prop_assert_eq!(a.unplaced.map(|u| u.count), c_.unplaced.map(|u| u.count));
    }

    /// The three searches (one heap; a heap per GROUP_BY value; a full scan) choose alike:
    /// GROUP_BY on a field every node shares changes nothing, and a repeated GROUP_BY means
    /// the same as a single one but takes the scan.
    #[test]
    fn search_strategies_agree(nodes in arb_cluster(), base in arb_monotone_constraints(), count in 0usize..30, field in prop_oneof![Just("all"), Just("rack")]) {
        let existing: BTreeMap<String, usize> = [("n002".to_string(), 1)].into();
        let s = snap(nodes);
        let gb = c(field, ConstraintOperator::GroupBy(None));
        let one: Vec<Constraint> = base.iter().cloned().chain([gb.clone()]).collect();
        let two: Vec<Constraint> = base.iter().cloned().chain([gb.clone(), gb]).collect();
        let groups = place(&req(&one, count, &existing), &s);
        let scan = place(&req(&two, count, &existing), &s);
        prop_assert_eq!(&groups.placements, &scan.placements);
        if field == "all" {
            let heap = place(&req(&base, count, &existing), &s);
            prop_assert_eq!(&heap.placements, &groups.placements);
        }
    }
}
