//! What an operation's code gets: the process state and its own row, a log, and steps.

use uuid::Uuid;

use crate::host::Host;
use crate::queue::{self, OperationRow};

pub struct OpContext<S: Host> {
    pub state: S,
    pub op: OperationRow<S::Kind>,
}

impl<S: Host> OpContext<S> {
    /// Adds a line to the operation's log (failures to log never fail the operation).
    pub async fn log(&self, level: &str, message: &str) {
        if let Err(e) = queue::log(self.state.db(), self.op.id, level, message).await {
            tracing::warn!(error = %e, operation = %self.op.id, "writing an operation log line failed");
        }
    }

    /// Logs the start of a step (and, in tests, pauses so a crash can land mid-operation).
    pub async fn step(&self, message: &str) {
        self.log("info", message).await;
        let delay = self.state.worker_config().step_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }

    pub fn target_id(&self) -> Uuid {
        self.op.target_id
    }
}
