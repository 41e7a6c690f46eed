//! What a part of the scheduler (apps, jobs) plugs into the server with: its loop over
//! the shared master view, and its metrics. Its routes live in the `http` module; the
//! server (`server::run`) assembles both in one place.

use std::sync::Arc;

use drover_service::http::Metrics;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::runtime::clock::Clock;
use crate::runtime::master_port::MasterPort;
use crate::runtime::master_sync::MasterView;

/// What a runtime is built on: where it persists, how it acts on the master, what it
/// last read of the master, and its clock. The server passes the real ones; a
/// simulation passes an in-memory store, a simulated master and a paused clock.
#[derive(Clone)]
pub struct Ports {
    /// Where the runtime's state is persisted.
    pub store: Arc<dyn drover_store::Store>,
    /// Launches and kills.
    pub master: Arc<dyn MasterPort>,
    /// The master's tasks and nodes as last read.
    pub view: watch::Receiver<Arc<MasterView>>,
    /// The wall clock.
    pub clock: Arc<dyn Clock>,
}

/// What a component's loop gets from the server.
#[derive(Debug, Clone)]
pub struct LoopContext {
    /// The latest master view; `changed()` wakes the loop after every read of the master.
    pub view: watch::Receiver<Arc<MasterView>>,
    /// Turns true when the server shuts down; the loop returns then. The server holds
    /// the sender.
    pub stop: watch::Receiver<bool>,
}

/// A part of the scheduler with its own state and loop.
pub trait Component: Send + Sync + 'static {
    /// A short name for logs.
    fn name(&self) -> &'static str;
    /// Adds the component's gauges to the `/metrics` text.
    fn metrics(&self, out: &mut Metrics);
    /// Starts the component's loop; it ends when `ctx.stop` turns true.
    fn spawn(self: Arc<Self>, ctx: LoopContext) -> JoinHandle<()>;
}
