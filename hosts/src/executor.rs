//! Running commands on a host. Commands are a program path and an argument vector, never a
//! shell string, so nothing a caller sends can change what runs.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The host could not be reached (SSH: connection, authentication or host key).
    #[error("cannot reach the host: {0}")]
    Unreachable(String),
    /// The host's SSH key is not the one registered.
    #[error("the host key does not match the registered one: {0}")]
    HostKeyMismatch(String),
    #[error("invalid command: {0}")]
    Invalid(String),
    #[error("cannot run {program}: {message}")]
    Spawn { program: String, message: String },
    #[error("{program} exited with {status}: {stderr}")]
    Failed { program: String, status: i32, stderr: String },
    #[error("{0} did not finish in time")]
    Timeout(String),
    /// A server's port is held by another socket.
    #[error("port unavailable: {0}")]
    PortUnavailable(String),
    /// A server process died and is not reaped yet: nothing can start in its place.
    #[error("{0}")]
    NotReaped(String),
}

/// A validated command.
#[derive(Debug, Clone)]
pub struct Command {
    pub program: String,
    pub args: Vec<String>,
    /// Run as the `postgres` system user (when the service runs as root).
    pub as_postgres: bool,
    /// Bytes written to the program's standard input (files are written this way, so their
    /// content never appears in an argument list).
    pub stdin: Option<Vec<u8>>,
    /// Longer than the executor's default, for work that scales with the data (base backups,
    /// restores).
    pub timeout: Option<Duration>,
}

impl Command {
    pub fn new(program: &str, args: &[&str]) -> Result<Self, ExecError> {
        if !program.starts_with('/') || program.split('/').any(|c| c == "..") {
            return Err(ExecError::Invalid(format!("program {program:?} must be an absolute path without '..'")));
        }
        if program.contains('\0') || args.iter().any(|a| a.contains('\0')) {
            return Err(ExecError::Invalid("NUL byte in a command".into()));
        }
        Ok(Self {
            program: program.to_string(),
            args: args.iter().map(|a| a.to_string()).collect(),
            as_postgres: false,
            stdin: None,
            timeout: None,
        })
    }

    pub fn as_postgres(mut self) -> Self {
        self.as_postgres = true;
        self
    }

    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// The program and arguments, for messages.
    pub fn display(&self) -> String {
        std::iter::once(self.program.as_str()).chain(self.args.iter().map(String::as_str)).collect::<Vec<_>>().join(" ")
    }
}

#[derive(Debug, Clone)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

/// Runs commands on one host. Implementations: [`LocalExecutor`] (the API's machine) and
/// [`super::ssh::SshExecutor`]; [`HostExec`] picks one at run time.
pub trait Executor: Send + Sync {
    /// Runs `cmd`; a non-zero exit is an error carrying stderr.
    fn run(&self, cmd: &Command) -> impl std::future::Future<Output = Result<Output, ExecError>> + Send;
    /// Whether commands run as root (then postgres-owned files need a chown).
    fn is_root(&self) -> bool;
}

pub struct LocalExecutor {
    timeout: Duration,
}

impl Default for LocalExecutor {
    fn default() -> Self {
        // Longer than `pg_ctl -t 60`, so pg_ctl reports its own timeout first.
        Self { timeout: Duration::from_secs(120) }
    }
}

impl Executor for LocalExecutor {
    async fn run(&self, cmd: &Command) -> Result<Output, ExecError> {
        use std::process::Stdio;
        use tokio::io::AsyncWriteExt;
        let mut c = tokio::process::Command::new(&cmd.program);
        c.args(&cmd.args)
            .stdin(if cmd.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .env("LC_ALL", "C");
        if cmd.as_postgres && self.is_root() {
            let user = nix::unistd::User::from_name("postgres").ok().flatten().ok_or_else(|| ExecError::Spawn {
                program: cmd.program.clone(),
                message: "no postgres system user".into(),
            })?;
            c.uid(user.uid.as_raw()).gid(user.gid.as_raw()).current_dir("/");
        }
        let spawn_err = |e: std::io::Error| ExecError::Spawn { program: cmd.program.clone(), message: e.to_string() };
        let run = async {
            let mut child = c.spawn().map_err(spawn_err)?;
            if let (Some(data), Some(mut stdin)) = (&cmd.stdin, child.stdin.take()) {
                stdin.write_all(data).await.map_err(spawn_err)?;
            }
            child.wait_with_output().await.map_err(spawn_err)
        };
        let out = tokio::time::timeout(cmd.timeout.unwrap_or(self.timeout), run)
            .await
            .map_err(|_| ExecError::Timeout(cmd.program.clone()))??;
        finish(cmd, out.status.code(), &out.stdout, &out.stderr)
    }

    fn is_root(&self) -> bool {
        nix::unistd::geteuid().is_root()
    }
}

/// Turns an exit status and captured output into our result.
pub(super) fn finish(cmd: &Command, code: Option<i32>, stdout: &[u8], stderr: &[u8]) -> Result<Output, ExecError> {
    let output = Output {
        stdout: String::from_utf8_lossy(stdout).into_owned(),
        stderr: String::from_utf8_lossy(stderr).into_owned(),
    };
    if code == Some(0) {
        Ok(output)
    } else {
        Err(ExecError::Failed {
            program: cmd.program.clone(),
            status: code.unwrap_or(-1),
            stderr: output.stderr.trim().to_string(),
        })
    }
}

/// How a failed command fails an operation: what a later attempt may get past is retryable.
impl From<ExecError> for dbaas_engine::OpError {
    fn from(e: ExecError) -> Self {
        match &e {
            ExecError::Unreachable(_) => dbaas_engine::OpError::retryable("host_unreachable", e.to_string()),
            ExecError::Timeout(_) => dbaas_engine::OpError::retryable("host_timeout", e.to_string()),
            ExecError::PortUnavailable(_) => dbaas_engine::OpError::retryable("port_in_use", e.to_string()),
            ExecError::NotReaped(_) => dbaas_engine::OpError::retryable("server_not_reaped", e.to_string()),
            ExecError::HostKeyMismatch(_) => dbaas_engine::OpError::permanent("host_key_mismatch", e.to_string()),
            ExecError::Failed { .. } => dbaas_engine::OpError::permanent("host_command_failed", e.to_string()),
            ExecError::Spawn { .. } | ExecError::Invalid(_) => {
                dbaas_engine::OpError::permanent("host_command_invalid", e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_validated() {
        assert!(Command::new("/bin/true", &[]).is_ok());
        assert!(Command::new("true", &[]).is_err());
        assert!(Command::new("/usr/../bin/sh", &[]).is_err());
        assert!(Command::new("/bin/echo", &["a\0b"]).is_err());
    }

    #[tokio::test]
    async fn runs_and_reports_failures() {
        let e = LocalExecutor::default();
        let out = e.run(&Command::new("/bin/echo", &["hello; rm -rf /"]).expect("cmd")).await.expect("runs");
        assert_eq!(out.stdout, "hello; rm -rf /\n", "arguments are passed verbatim, never to a shell");
        let err = e.run(&Command::new("/bin/false", &[]).expect("cmd")).await.expect_err("fails");
        assert!(matches!(err, ExecError::Failed { status: 1, .. }), "{err}");
        let out = e.run(&Command::new("/bin/cat", &[]).expect("cmd").stdin("from stdin")).await.expect("cat");
        assert_eq!(out.stdout, "from stdin");
        let err = e.run(&Command::new("/no/such/program", &[]).expect("cmd")).await.expect_err("missing");
        assert!(matches!(err, ExecError::Spawn { .. }), "{err}");
    }
}
