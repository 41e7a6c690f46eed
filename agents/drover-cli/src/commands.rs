//! One file per verb: `<noun>_<verb>.rs`, each with a `run` that takes the [`Context`]
//! and the verb's arguments.
//!
//! [`Context`]: crate::context::Context

pub mod node_activate;
pub mod node_drain;
pub mod node_list;
pub mod node_show;
pub mod task_kill;
pub mod task_launch;
pub mod task_list;
pub mod task_logs;
pub mod task_show;
pub mod version;
