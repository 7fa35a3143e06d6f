//! Running commands on a remote host over SSH.
//!
//! Built on the `openssh` crate, which drives the system's OpenSSH client with a control
//! master: one authenticated connection per host, reused by every command (each command is a
//! multiplexed channel, so a provisioning run of twenty commands costs one handshake). The
//! host key is checked strictly against the key registered with the host; nothing is ever
//! added to a known-hosts file. Arguments are shell-escaped by the crate (`Command::arg`), so
//! the remote shell sees each argument as one word.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::AsyncWriteExt;

use super::executor::{finish, Command, ExecError, Executor, Output};

/// Seconds an unused connection stays open.
const IDLE_SECS: std::num::NonZeroUsize = match std::num::NonZeroUsize::new(300) {
    Some(n) => n,
    None => unreachable!(),
};

/// What it takes to reach a host.
#[derive(Clone)]
pub struct SshTarget {
    pub address: String,
    pub port: u16,
    pub user: String,
    /// OpenSSH or PEM private key (no passphrase).
    pub private_key: String,
    /// The host's public key: `<type> <base64> [comment]`.
    pub known_host_key: String,
}

/// Key types the OpenSSH client checks host keys with.
const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// Checks a public key line (`<type> <base64> [comment]`); returns `<type> <base64>`.
pub fn parse_host_key(line: &str) -> Result<String, String> {
    let mut parts = line.split_whitespace();
    let (Some(kind), Some(b64)) = (parts.next(), parts.next()) else {
        return Err(
            "must be a public key line such as `ssh-ed25519 AAAAC3Nza…` (from /etc/ssh/ssh_host_*_key.pub)".into()
        );
    };
    if !KEY_TYPES.contains(&kind) {
        return Err(format!("unknown key type {kind:?}; expected one of {}", KEY_TYPES.join(", ")));
    }
    use base64::Engine;
    if b64.len() > 16_384 || base64::engine::general_purpose::STANDARD.decode(b64).is_err() {
        return Err("the key is not valid base64".into());
    }
    Ok(format!("{kind} {b64}"))
}

/// Checks that a private key looks like one the OpenSSH client reads.
pub fn check_private_key(pem: &str) -> Result<(), String> {
    let t = pem.trim();
    if !(t.starts_with("-----BEGIN ") && t.contains("PRIVATE KEY-----") && t.ends_with("-----")) || t.len() > 32_768 {
        return Err("must be a private key in OpenSSH or PEM format (-----BEGIN … PRIVATE KEY-----)".into());
    }
    if t.contains("ENCRYPTED") {
        return Err("the key is protected by a passphrase; give an unencrypted key (it is stored encrypted)".into());
    }
    Ok(())
}

pub struct SshExecutor {
    session: Session,
    root: bool,
    timeout: Duration,
    /// Holds the private key and known-hosts files for as long as the connection lives.
    _files: tempfile::TempDir,
}

impl SshExecutor {
    /// Connects (the host key must match) and learns whether the login is root.
    pub async fn connect(t: &SshTarget) -> Result<Self, ExecError> {
        let io = |e: std::io::Error| ExecError::Unreachable(format!("preparing the connection: {e}"));
        // 0700: tempfile leaves the directory to the umask, and it holds the key and the
        // control socket.
        let files = tempfile::Builder::new()
            .prefix("dbaas-ssh-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir()
            .map_err(io)?;
        let key_path = files.path().join("id");
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&key_path).map_err(io)?;
        f.write_all(t.private_key.trim().as_bytes()).and_then(|_| f.write_all(b"\n")).map_err(io)?;
        let host_key = parse_host_key(&t.known_host_key).map_err(ExecError::Unreachable)?;
        let pattern = if t.port == 22 { t.address.clone() } else { format!("[{}]:{}", t.address, t.port) };
        let kh_path = files.path().join("known_hosts");
        std::fs::write(&kh_path, format!("{pattern} {host_key}\n")).map_err(io)?;

        let mut b = SessionBuilder::default();
        b.user(t.user.clone())
            .port(t.port)
            .keyfile(&key_path)
            .known_hosts_check(KnownHosts::Strict)
            .user_known_hosts_file(&kh_path)
            .config_file("/dev/null")
            .connect_timeout(Duration::from_secs(10))
            .server_alive_interval(Duration::from_secs(15))
            .control_directory(files.path())
            // An idle master goes away on its own (also when this process died without
            // closing it); the pool notices and reconnects.
            .control_persist(ControlPersist::IdleFor(IDLE_SECS));
        let session = b.connect(&t.address).await.map_err(|e| classify(&e))?;
        let mut exec = Self { session, root: false, timeout: Duration::from_secs(120), _files: files };
        let id = exec.run(&Command::new("/usr/bin/id", &["-u"])?).await?;
        exec.root = id.stdout.trim() == "0";
        Ok(exec)
    }

    /// Whether the shared connection still works.
    pub async fn alive(&self) -> bool {
        self.session.check().await.is_ok()
    }
}

/// Host-key failures get their own error: they mean "wrong key registered" or an attack.
fn classify(e: &openssh::Error) -> ExecError {
    let mut text = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        text.push_str(": ");
        text.push_str(&s.to_string());
        src = s.source();
    }
    if text.contains("Host key verification failed") || text.contains("HOST IDENTIFICATION HAS CHANGED") {
        ExecError::HostKeyMismatch(text)
    } else {
        ExecError::Unreachable(text)
    }
}

impl Executor for SshExecutor {
    async fn run(&self, cmd: &Command) -> Result<Output, ExecError> {
        // `env` fixes the locale (messages we parse); `runuser` drops root for PostgreSQL's
        // commands, as the local executor does with setuid.
        let mut argv: Vec<&str> = vec!["LC_ALL=C"];
        if cmd.as_postgres && self.root {
            argv.extend(["/usr/sbin/runuser", "-u", "postgres", "--"]);
        }
        argv.push(&cmd.program);
        argv.extend(cmd.args.iter().map(String::as_str));
        let mut c = self.session.command("/usr/bin/env");
        c.args(&argv)
            .stdin(if cmd.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let run = async {
            let mut child = c.spawn().await.map_err(|e| classify(&e))?;
            if let (Some(data), Some(mut stdin)) = (&cmd.stdin, child.stdin().take()) {
                stdin
                    .write_all(data)
                    .await
                    .map_err(|e| ExecError::Unreachable(format!("writing to {}: {e}", cmd.program)))?;
                stdin.shutdown().await.ok();
            }
            child.wait_with_output().await.map_err(|e| classify(&e))
        };
        let out = tokio::time::timeout(cmd.timeout.unwrap_or(self.timeout), run)
            .await
            .map_err(|_| ExecError::Timeout(cmd.program.clone()))??;
        finish(cmd, out.status.code(), &out.stdout, &out.stderr)
    }

    fn is_root(&self) -> bool {
        self.root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_keys() {
        assert_eq!(
            parse_host_key("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 root@h").expect("ok"),
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5"
        );
        for bad in ["", "ssh-ed25519", "ssh-foo AAAA", "ssh-ed25519 not*base64"] {
            assert!(parse_host_key(bad).is_err(), "{bad}");
        }
        assert!(
            check_private_key("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n").is_ok()
        );
        assert!(check_private_key("ssh-ed25519 AAAA").is_err());
    }
}
