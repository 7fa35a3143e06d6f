//! The executor of a registered host: local or over SSH, chosen by the host's kind.

use crate::executor::{Command, ExecError, Executor, LocalExecutor, Output};
use crate::ssh::SshExecutor;

/// The executor of one registered host, chosen by its kind.
pub enum HostExec {
    Local(LocalExecutor),
    Ssh(SshExecutor),
}

impl Executor for HostExec {
    async fn run(&self, cmd: &Command) -> Result<Output, ExecError> {
        match self {
            Self::Local(e) => e.run(cmd).await,
            Self::Ssh(e) => e.run(cmd).await,
        }
    }

    fn is_root(&self) -> bool {
        match self {
            Self::Local(e) => e.is_root(),
            Self::Ssh(e) => e.is_root(),
        }
    }
}
