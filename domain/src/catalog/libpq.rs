//! The one way the service starts an external libpq program (`pg_dump`, `pg_restore`,
//! `pg_repack`, and any later one) against an instance.
//!
//! libpq reads a great deal besides its arguments: every `PG*` variable, `~/.pgpass`,
//! `~/.pg_service.conf`, and `~/.postgresql/{root.crt,root.crl,postgresql.crt,postgresql.key}`.
//! Any of those, left on the machine the service runs on, would change what a client connects
//! to, which certificate it presents or which CA it trusts. So the child's environment is
//! cleared and rebuilt from the instance record alone:
//! - host, port, user, password (in the environment, never in argv, where `ps` shows it),
//!   `PGSSLMODE`, application name, connect timeout and the pinned `search_path`;
//! - `PGSSLROOTCERT`: the instance's stored CA, written to a private directory (0700, the file
//!   0600) that lives as long as the returned [`Libpq`];
//! - `HOME`, `PGPASSFILE`, `PGSERVICEFILE`, `PGSYSCONFDIR` and the client certificate, key and
//!   CRL paths point into that directory, where none of those files exists.
//!
//! Debian's libpq 15 has no `sslrootcert=system`: a `verify-*` instance without a CA is refused
//! at registration (422), and refused here too rather than falling back to a home directory.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use dbaas_client::SslMode;

use super::conn::PINNED_SEARCH_PATH;
use dbaas_engine::OpError;
use dbaas_store::instances::InstanceRow;

/// Seconds libpq waits for the server to answer a connection.
pub const CONNECT_TIMEOUT_SECS: u32 = 10;

/// A prepared command and the private directory its environment points into. Keep it alive
/// until the child has exited: libpq reads the CA file when it connects.
#[derive(Debug)]
pub struct Libpq {
    pub cmd: tokio::process::Command,
    home: tempfile::TempDir,
}

/// Who the client logs in as.
#[derive(Clone, Copy)]
pub struct Login<'a> {
    pub user: &'a str,
    pub password: &'a str,
}

impl std::fmt::Debug for Login<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login").field("user", &self.user).finish_non_exhaustive()
    }
}

/// The instance as a libpq client sees it: address, TLS mode and CA.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint<'a> {
    pub host: &'a str,
    pub port: u16,
    pub sslmode: SslMode,
    pub ca_pem: Option<&'a str>,
}

impl<'a> From<&'a InstanceRow> for Endpoint<'a> {
    fn from(inst: &'a InstanceRow) -> Self {
        Self { host: &inst.host, port: inst.port as u16, sslmode: inst.sslmode, ca_pem: inst.ca_cert.as_deref() }
    }
}

/// The directory the PostgreSQL client programs are taken from.
pub fn bin_dir() -> Result<PathBuf, OpError> {
    dbaas_hosts::pgcluster::find_bin_dir().map_err(|e| OpError::permanent("client_missing", e.to_string()))
}

/// `program` (a path, or a name in [`bin_dir`]) connecting to `dbname` on `endpoint` as
/// `login`, with `application` as its application name. Arguments are added by the caller,
/// as a vector, never through a shell. stdin is closed and stderr piped unless the caller
/// changes them.
pub fn command(
    program: &Path,
    endpoint: Endpoint<'_>,
    login: Login<'_>,
    dbname: &str,
    application: &str,
) -> Result<Libpq, OpError> {
    if matches!(endpoint.sslmode, SslMode::VerifyCa | SslMode::VerifyFull) && endpoint.ca_pem.is_none() {
        return Err(OpError::permanent(
            "ca_missing",
            format!(
                "the instance is registered with sslmode={} but has no CA certificate: register its CA (ca_cert)",
                endpoint.sslmode.as_str()
            ),
        ));
    }
    let program = if program.is_absolute() { program.to_path_buf() } else { bin_dir()?.join(program) };
    let io = |e: std::io::Error| OpError::retryable("io", format!("preparing the libpq client's directory: {e}"));
    let home = tempfile::Builder::new()
        .prefix("dbaas-libpq-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
        .map_err(io)?;
    let dir = home.path();
    let absent = |name: &str| dir.join(name);
    let mut cmd = tokio::process::Command::new(program);
    cmd.env_clear()
        .env("HOME", dir)
        .env("PGHOST", endpoint.host)
        .env("PGPORT", endpoint.port.to_string())
        .env("PGUSER", login.user)
        .env("PGPASSWORD", login.password)
        .env("PGDATABASE", dbname)
        .env("PGSSLMODE", endpoint.sslmode.as_str())
        .env("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT_SECS.to_string())
        .env("PGAPPNAME", application)
        // Startup options win over `ALTER DATABASE/ROLE … SET search_path`, which a tenant
        // controls for its own database.
        .env("PGOPTIONS", format!("-c search_path={PINNED_SEARCH_PATH}"))
        // No Kerberos or GSSAPI lookups (they read the environment and files of their own).
        .env("PGGSSENCMODE", "disable")
        .env("PGPASSFILE", absent("pgpass"))
        .env("PGSERVICEFILE", absent("pg_service.conf"))
        .env("PGSYSCONFDIR", dir)
        .env("PGSSLCERT", absent("postgresql.crt"))
        .env("PGSSLKEY", absent("postgresql.key"))
        .env("PGSSLCRL", absent("root.crl"))
        .env("PGSSLCRLDIR", absent("crl"))
        .env("PGSSLROOTCERT", absent("root.crt"))
        // Messages in English whatever the machine's locale: they are quoted in operation logs.
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        // A cancelled operation drops the future holding the child: the child dies with it.
        .kill_on_drop(true);
    if endpoint.sslmode == SslMode::Require {
        // TLS without a verified certificate: SCRAM's channel binding is what tells a man in
        // the middle from the server (and it refuses to hand over a password in the clear).
        cmd.env("PGCHANNELBINDING", "require");
    }
    if let Some(pem) = endpoint.ca_pem {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.join("root.crt"))
            .map_err(io)?;
        f.write_all(pem.as_bytes()).map_err(io)?;
    }
    Ok(Libpq { cmd, home })
}

impl Libpq {
    /// The private directory (the child's `HOME`).
    pub fn home(&self) -> &Path {
        self.home.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::ffi::OsStr;

    fn envs(l: &Libpq) -> BTreeMap<String, Option<String>> {
        l.cmd
            .as_std()
            .get_envs()
            .map(|(k, v)| (k.to_string_lossy().into_owned(), v.map(|v| v.to_string_lossy().into_owned())))
            .collect()
    }

    fn endpoint(ca: Option<&str>, sslmode: SslMode) -> Endpoint<'_> {
        Endpoint { host: "db.example", port: 5433, sslmode, ca_pem: ca }
    }

    #[test]
    fn the_environment_comes_from_the_instance_only() {
        let login = Login { user: "svc", password: "s3cret" };
        let l = command(Path::new("/bin/true"), endpoint(Some("PEM"), SslMode::VerifyFull), login, "orders", "dbaas-x")
            .unwrap();
        let std = l.cmd.as_std();
        assert!(!std.get_args().any(|a| a == OsStr::new("s3cret")), "no password in argv");
        let env = envs(&l);
        let home = l.home().to_string_lossy().into_owned();
        let get = |k: &str| env.get(k).cloned().flatten().unwrap_or_else(|| panic!("{k} not set"));
        assert_eq!(get("HOME"), home);
        assert_eq!(get("PGHOST"), "db.example");
        assert_eq!(get("PGPORT"), "5433");
        assert_eq!(get("PGUSER"), "svc");
        assert_eq!(get("PGPASSWORD"), "s3cret");
        assert_eq!(get("PGDATABASE"), "orders");
        assert_eq!(get("PGSSLMODE"), "verify-full");
        assert_eq!(get("PGAPPNAME"), "dbaas-x");
        assert_eq!(get("PGOPTIONS"), "-c search_path=pg_catalog,pg_temp");
        assert_eq!(std::fs::read_to_string(get("PGSSLROOTCERT")).unwrap(), "PEM");
        // Every file libpq would otherwise look up in a home directory points into ours.
        for k in ["PGPASSFILE", "PGSERVICEFILE", "PGSYSCONFDIR", "PGSSLCERT", "PGSSLKEY", "PGSSLCRL", "PGSSLCRLDIR"] {
            assert!(get(k).starts_with(&home), "{k}");
        }
        for k in ["PGPASSFILE", "PGSERVICEFILE", "PGSSLCERT", "PGSSLKEY", "PGSSLCRL"] {
            assert!(!Path::new(&get(k)).exists(), "{k} must name no file");
        }
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(l.home()).unwrap().permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(get("PGSSLROOTCERT")).unwrap().permissions().mode() & 0o077, 0);
        // Nothing inherited: exactly the variables set above.
        assert!(env.keys().all(|k| k.starts_with("PG") || ["HOME", "LC_ALL"].contains(&k.as_str())), "{env:?}");
    }

    #[tokio::test]
    async fn nothing_of_the_parent_environment_reaches_the_child() {
        let login = Login { user: "svc", password: "pw" };
        let mut l =
            command(Path::new("/usr/bin/env"), endpoint(None, SslMode::Require), login, "orders", "dbaas-x").unwrap();
        assert_eq!(envs(&l)["PGCHANNELBINDING"].as_deref(), Some("require"), "TLS without a CA binds the channel");
        let out = l.cmd.stdout(Stdio::piped()).output().await.unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let names: Vec<&str> = text.lines().filter_map(|l| l.split('=').next()).collect();
        // cargo test runs with CARGO_* and PATH set: none of them may be inherited.
        assert!(!names.iter().any(|n| *n == "PATH" || n.starts_with("CARGO")), "{names:?}");
        assert!(!Path::new(&envs(&l)["PGSSLROOTCERT"].clone().unwrap()).exists(), "no CA: no file");
    }

    #[test]
    fn verify_modes_without_a_ca_are_refused() {
        let login = Login { user: "svc", password: "pw" };
        for mode in [SslMode::VerifyCa, SslMode::VerifyFull] {
            let e = command(Path::new("/bin/true"), endpoint(None, mode), login, "d", "a").unwrap_err();
            assert_eq!(e.code, "ca_missing");
        }
    }
}
