//! What a part of the scheduler (apps, jobs) plugs into the server with: its loop over
//! the shared master view, and its metrics. Its routes live in the `http` module; the
//! server (`server::run`) assembles both in one place.

use std::sync::Arc;

use drover_service::http::Metrics;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::runtime::master_sync::MasterView;

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
