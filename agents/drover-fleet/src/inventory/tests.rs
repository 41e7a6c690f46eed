use super::*;
use crate::host::{Role, fleet_from};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[test]
fn reads_the_vagrant_inventory() {
    let inv = Inventory::load(&repo().join("inventory/vagrant")).unwrap();
    assert_eq!(inv.group_hosts("agents"), vec!["agent1", "agent2"]);
    assert_eq!(inv.group_hosts("masters"), vec!["master"]);
    assert_eq!(inv.group_hosts("schedulers"), vec!["master"]);
    let v = inv.host_vars("agent1").unwrap();
    assert_eq!(
        v.string("ansible_host").unwrap().as_deref(),
        Some("192.168.56.11")
    );
    assert_eq!(
        v.string("ansible_user").unwrap().as_deref(),
        Some("vagrant")
    );
    // group_vars/agents.yml
    assert_eq!(
        v.string("drover_agent_reserved_mem").unwrap().as_deref(),
        Some("128")
    );
    // (Others edit this inventory: check only what it has long had.)
    assert!(
        v.map("drover_agent_attributes")
            .unwrap()
            .contains(&("zone".into(), "a".into()))
    );
    // Jinja beyond plain references is reported where it is needed.
    assert!(matches!(
        v.string("ansible_ssh_private_key_file"),
        Err(VarError::Template { .. })
    ));
    let names: Vec<&str> = v
        .get("group_names")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["agents"]);
}

#[test]
fn reads_the_example_inventory() {
    let inv = Inventory::load(&repo().join("inventory/example")).unwrap();
    assert_eq!(
        inv.group_hosts("agents"),
        vec![
            "worker1.example.com",
            "worker2.example.com",
            "worker3.example.com"
        ]
    );
    let v = inv.host_vars("worker3.example.com").unwrap();
    assert_eq!(
        v.string("drover_agent_reserved_cpus").unwrap().as_deref(),
        Some("2")
    );
    assert_eq!(
        v.map("drover_agent_attributes").unwrap(),
        vec![("disk".into(), "ssd".into()), ("rack".into(), "r3".into())]
    );
    assert_eq!(inv.select("agents:!worker2.example.com").len(), 2);
    assert_eq!(inv.select("worker*"), inv.group_hosts("agents"));
    assert_eq!(inv.select("agents:&control*"), Vec::<String>::new());
}

#[test]
fn reads_ini_with_children_ranges_and_precedence() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "hosts.ini",
        "# a typical INI inventory\n\
         bastion.example.com\n\
         [masters]\n\
         m1 ansible_host=10.0.0.10 ansible_user=admin\n\
         [agents_eu]\n\
         w[01:03].eu ansible_become=yes zone=eu # three workers\n\
         [agents_us]\n\
         w1.us ansible_port=2222 ansible_ssh_private_key_file=~/.ssh/us note=\"two words\"\n\
         [agents:children]\n\
         agents_eu\n\
         agents_us\n\
         [agents:vars]\n\
         drover_agent_ports=32000-33000\n\
         zone=none\n\
         [all:vars]\n\
         ansible_user=ops\n\
         drover_common_bin_dir=/opt/drover/bin\n",
    );
    write(
        dir.path(),
        "group_vars/agents_eu.yml",
        "drover_agent_reserved_mem: 512\n",
    );
    write(
        dir.path(),
        "group_vars/all/main.yml",
        "drover_token: secret\nmy_dir: /srv\ndrover_common_data_dir: \"{{ my_dir }}/drover\"\n",
    );
    write(dir.path(), "host_vars/w02.eu.yml", "zone: eu-2\n");
    let inv = Inventory::load(dir.path()).unwrap();
    assert_eq!(
        inv.group_hosts("agents"),
        vec!["w01.eu", "w02.eu", "w03.eu", "w1.us"]
    );
    assert_eq!(inv.group_hosts("ungrouped"), vec!["bastion.example.com"]);
    let w1 = inv.host_vars("w01.eu").unwrap();
    // The child group's inline host var wins over the parent group's vars.
    assert_eq!(w1.string("zone").unwrap().as_deref(), Some("eu"));
    assert_eq!(w1.boolean("ansible_become").unwrap(), Some(true));
    assert_eq!(
        w1.string("drover_agent_reserved_mem").unwrap().as_deref(),
        Some("512")
    );
    assert_eq!(
        w1.string("drover_common_data_dir").unwrap().as_deref(),
        Some("/srv/drover")
    );
    assert_eq!(
        inv.host_vars("w02.eu")
            .unwrap()
            .string("zone")
            .unwrap()
            .as_deref(),
        Some("eu-2")
    );
    let us = inv.host_vars("w1.us").unwrap();
    assert_eq!(us.string("note").unwrap().as_deref(), Some("two words"));
    assert_eq!(us.string("ansible_user").unwrap().as_deref(), Some("ops"));

    let fleet = fleet_from(&inv).unwrap();
    assert_eq!(fleet.master_url.as_deref(), Some("http://10.0.0.10:5050"));
    assert_eq!(fleet.token.as_deref(), Some("secret"));
    let m1 = &fleet.hosts[0];
    assert_eq!(
        (m1.name.as_str(), m1.roles.as_slice()),
        ("m1", &[Role::Master][..])
    );
    assert_eq!(m1.conn.user, "admin");
    assert_eq!(m1.bin_path(Role::Master), "/opt/drover/bin/drover-master");
    let us = fleet.hosts.iter().find(|h| h.name == "w1.us").unwrap();
    assert_eq!(us.conn.port, 2222);
    assert!(us.conn.key_file.as_ref().unwrap().ends_with(".ssh/us"));
    let args = us.install(Role::Agent).join(" ");
    assert!(args.contains("--master http://10.0.0.10:5050"), "{args}");
    assert!(args.contains("--ports 32000-33000"), "{args}");
    assert!(args.contains("--work-dir /srv/drover/agent"), "{args}");
    assert!(args.contains("--advertise http://w1.us:5051"), "{args}");
    assert_eq!(
        us.restart(Role::Agent),
        "systemctl daemon-reload && systemctl enable drover-agent && systemctl restart drover-agent"
    );
}

#[test]
fn reads_ansible_inventory_json() {
    let json = r#"{
      "_meta": {"hostvars": {"a1": {"ansible_host": "10.1.1.1", "drover_node_address": "10.1.1.1"},
                             "m": {"ansible_host": "10.1.1.9", "drover_node_address": "10.1.1.9"}}},
      "all": {"children": ["ungrouped", "masters", "agents"]},
      "masters": {"hosts": ["m"]},
      "agents": {"hosts": ["a1"]}
    }"#;
    let inv = Inventory::from_ansible_json(json).unwrap();
    let fleet = fleet_from(&inv).unwrap();
    assert_eq!(fleet.master_url.as_deref(), Some("http://10.1.1.9:5050"));
    assert_eq!(fleet.hosts.len(), 2);
}

#[test]
fn ranges_and_bad_input() {
    assert_eq!(expand_range("n[1:5:2]").unwrap(), vec!["n1", "n3", "n5"]);
    assert_eq!(
        expand_range("db-[a:c]").unwrap(),
        vec!["db-a", "db-b", "db-c"]
    );
    assert!(expand_range("x[3:1]").is_err());
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "hosts", "[g]\nh1 novalue\n");
    assert!(matches!(
        Inventory::load(dir.path()),
        Err(InventoryError::Ini { line: 2, .. })
    ));
    write(dir.path(), "hosts", "");
    write(dir.path(), "x.yml", "all:\n  hostz: {}\n");
    assert!(matches!(
        Inventory::load(dir.path()),
        Err(InventoryError::Yaml { .. })
    ));
}
