//! One file per verb: `<noun>_<verb>.rs`, each with a `run` that takes the [`Context`]
//! and the verb's arguments.
//!
//! [`Context`]: crate::context::Context

pub mod app_create;
pub mod app_delete;
pub mod app_list;
pub mod app_restart;
pub mod app_rollback;
pub mod app_scale;
pub mod app_show;
pub mod app_update;
pub mod apply;
pub mod deployment_cancel;
pub mod deployment_list;
pub mod deployment_show;
pub mod dev;
pub mod fleet_status;
pub mod fleet_upgrade;
pub mod job_create;
pub mod job_delete;
pub mod job_disable;
pub mod job_enable;
pub mod job_graph;
pub mod job_history;
pub mod job_kill;
pub mod job_list;
pub mod job_logs;
pub mod job_run;
pub mod job_show;
pub mod job_stats;
pub mod job_success;
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
