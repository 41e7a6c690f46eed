//! `drover fleet`: roll Drover's own binaries out over SSH, gated on the master.
//!
//! # Layout
//!
//! - [`inventory`]: Ansible inventories (INI, YAML, `group_vars/`, `host_vars/`,
//!   `ansible-inventory --list` JSON) and host patterns; pure.
//! - [`host`]: what the rollout needs of each host (connection, roles, install
//!   arguments, restart command), from its variables as the playbook roles read them.
//! - [`plan`]: the rollout plan, a pure function (masters, schedulers, canary, batches,
//!   `--max-unavailable`).
//! - [`gate`]: the health gates, pure functions over master snapshots.
//! - [`ssh`]: ssh2 sessions: host keys, auth, sudo, commands, uploads.
//! - [`rollout`]: the thin executor: scan, swap, gate, roll back, report.

pub mod gate;
pub mod host;
pub mod inventory;
pub mod plan;
pub mod rollout;
pub mod ssh;
