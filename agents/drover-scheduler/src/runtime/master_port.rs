//! What the runtimes need of the master to act: launch tasks and kill them. Reading it
//! comes through the [`MasterView`](crate::runtime::master_sync::MasterView) channel.
//! The real client implements this port over HTTP; a simulated master implements it in
//! tests, so that they drive the real runtimes.

use std::time::Duration;

use drover_api::client::MasterClient;
use drover_api::task::{LaunchRequest, Task, TaskId};
use futures::future::BoxFuture;

use crate::runtime::launcher::{self, LaunchFailure};

/// How long one call to the master may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The master, as the runtimes act on it.
pub trait MasterPort: Send + Sync + 'static {
    /// Sends every launch; one result each, in the order given.
    fn launch(
        &self,
        launches: Vec<LaunchRequest>,
    ) -> BoxFuture<'_, Vec<Result<Task, LaunchFailure>>>;
    /// Asks the master to kill every task. Failures are logged, not returned: the
    /// runtimes send a kill again while the master still shows its task running.
    fn kill(&self, tasks: Vec<TaskId>) -> BoxFuture<'_, ()>;
}

impl MasterPort for MasterClient {
    fn launch(
        &self,
        launches: Vec<LaunchRequest>,
    ) -> BoxFuture<'_, Vec<Result<Task, LaunchFailure>>> {
        Box::pin(launcher::send(self, launches, CALL_TIMEOUT))
    }

    fn kill(&self, tasks: Vec<TaskId>) -> BoxFuture<'_, ()> {
        Box::pin(launcher::kill_all(self, tasks, CALL_TIMEOUT))
    }
}
