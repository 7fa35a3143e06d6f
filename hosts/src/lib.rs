//! dbaas-hosts: the machines managed instances run on. The executors that run commands
//! there (local processes, SSH with a pinned host key), the connections kept to them, what
//! registration discovers (PostgreSQL versions, a usable data root, the ephemeral port range),
//! and local clusters (`pgcluster`: the throwaway or embedded PostgreSQL the service and its
//! tests start, with certificates from `tlsgen`).
//!
//! May use: `dbaas-store` (host rows), `dbaas-crypto` (to open stored SSH keys), `dbaas-engine`
//! (only its `OpError`: how a failed command fails an operation).
//! Must never: connect to PostgreSQL as a client, write the state database, or know about
//! tenants, databases or operations.

pub mod disk;
pub mod executor;
mod host_exec;
pub mod pgcluster;
mod pool;
pub mod ssh;
pub mod tlsgen;

pub use dbaas_store::hosts::{HostRecord, HOST_COLUMNS};
pub use host_exec::HostExec;
pub use pool::HostPool;

use dbaas_client::PgVersion;

use executor::{Command, ExecError, Executor};

/// Where Debian/Ubuntu packages put server binaries; `find` looks no deeper than needed.
const PG_ROOT: &str = "/usr/lib/postgresql";

/// The host's ephemeral port range (`net.ipv4.ip_local_port_range`): the local ports its
/// outgoing connections take. A server listening on one of them can find it held by such a
/// connection (or its TIME_WAIT), so instance ports must stay outside.
pub async fn ephemeral_ports<E: Executor>(exec: &E) -> Result<std::ops::RangeInclusive<u16>, ExecError> {
    let out = exec.run(&Command::new("/bin/cat", &["/proc/sys/net/ipv4/ip_local_port_range"])?).await?;
    parse_port_range(&out.stdout)
        .ok_or_else(|| ExecError::Invalid(format!("unexpected ip_local_port_range: {:?}", out.stdout.trim())))
}

fn parse_port_range(text: &str) -> Option<std::ops::RangeInclusive<u16>> {
    let mut it = text.split_whitespace().map(str::parse::<u16>);
    match (it.next(), it.next(), it.next()) {
        (Some(Ok(lo)), Some(Ok(hi)), None) if lo <= hi => Some(lo..=hi),
        _ => None,
    }
}

/// PostgreSQL versions installed on the host (`pg_config --version` of each).
pub async fn discover_versions<E: Executor>(exec: &E) -> Result<Vec<PgVersion>, ExecError> {
    let out = exec
        .run(&Command::new(
            "/usr/bin/find",
            &[PG_ROOT, "-mindepth", "3", "-maxdepth", "3", "-path", "*/bin/pg_config"],
        )?)
        .await?;
    let mut versions = Vec::new();
    let mut paths: Vec<&str> = out.stdout.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    paths.sort();
    for pg_config in paths {
        let v = exec.run(&Command::new(pg_config, &["--version"])?).await?;
        let full = v.stdout.trim().to_string();
        let major = full.split_whitespace().nth(1).and_then(|n| n.split('.').next()).unwrap_or_default().to_string();
        let bin_dir = pg_config.trim_end_matches("/pg_config").to_string();
        if !major.is_empty() {
            versions.push(PgVersion { version: major, full_version: full, bin_dir });
        }
    }
    Ok(versions)
}

/// A data root: absolute, normalised, plain characters (it ends up in commands and configs).
pub fn validate_data_root(path: &str) -> Result<(), String> {
    if !path.starts_with('/') || path.len() < 2 || path.len() > 200 {
        return Err("must be an absolute path such as /var/lib/dbaas (at most 200 characters)".into());
    }
    if path.ends_with('/') || path.contains("//") || path.split('/').any(|c| c == "." || c == "..") {
        return Err("must be normalised: no trailing '/', no '//', no '.' or '..' components".into());
    }
    if let Some(bad) = path.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '.'))) {
        return Err(format!("contains {bad:?}; allowed: letters, digits, '/', '_', '-', '.'"));
    }
    // Registration hands the directory to the postgres user: never a system directory.
    let first = path.split('/').nth(1).unwrap_or_default();
    if SYSTEM_TREES.contains(&first) || first.starts_with("lib") || SYSTEM_DIRS.contains(&path) {
        return Err(format!(
            "{path} is a system directory or lies in one; use a directory of its own such as /var/lib/dbaas"
        ));
    }
    Ok(())
}

/// Trees no data root may lie in.
const SYSTEM_TREES: &[&str] = &["etc", "usr", "bin", "sbin", "boot", "dev", "proc", "sys", "run", "root"];
/// Directories that may hold a data root but never be one.
const SYSTEM_DIRS: &[&str] =
    &["/var", "/var/lib", "/var/tmp", "/var/log", "/home", "/tmp", "/opt", "/srv", "/mnt", "/media", "/data"];

/// The file that marks a directory as a dbaas data root.
pub const DATA_ROOT_MARKER: &str = ".dbaas-data-root";

/// Readies the data root for the postgres user: created when missing; an existing directory
/// is taken only when it is empty, or already marked as a dbaas data root (a second
/// registration) and owned by the user the clusters run as; anything else (a path through a
/// symbolic link, a file, a directory holding other things, someone else's marked directory)
/// is refused rather than handed to postgres.
pub async fn prepare_data_root<E: Executor>(exec: &E, path: &str) -> Result<(), ExecError> {
    let marker = format!("{path}/{DATA_ROOT_MARKER}");
    let test = |flag: &'static str, p: String| async move {
        succeeds(exec.run(&Command::new("/usr/bin/test", &[flag, &p])?).await)
    };
    // The checks below judge the path as written; a symbolic link anywhere on it (not only
    // the last component) could point them, and the chown, somewhere else.
    let real = exec.run(&Command::new("/usr/bin/realpath", &["-m", "--", path])?).await?;
    let real = real.stdout.trim_end_matches('\n');
    if real != path {
        return Err(ExecError::Invalid(format!(
            "{path} goes through a symbolic link (it is really {real}); give the real path"
        )));
    }
    if test("-e", path.to_string()).await? {
        if !test("-d", path.to_string()).await? {
            return Err(ExecError::Invalid(format!("{path} exists and is not a directory")));
        }
        if test("-f", marker.clone()).await? {
            // A marker proves nothing by itself (anyone who can write there can make one):
            // the directory must also belong to the user our clusters run as.
            let owner = exec.run(&Command::new("/usr/bin/stat", &["-c", "%u", "--", path])?).await?;
            let ours = exec.run(&Command::new("/usr/bin/id", &["-u"])?.as_postgres()).await?;
            if owner.stdout.trim() != ours.stdout.trim() {
                return Err(ExecError::Invalid(format!(
                    "{path} is marked as a dbaas data root but is not owned by the user the clusters run as"
                )));
            }
        } else {
            let listing =
                exec.run(&Command::new("/usr/bin/find", &[path, "-mindepth", "1", "-maxdepth", "1"])?).await?;
            if !listing.stdout.trim().is_empty() {
                return Err(ExecError::Invalid(format!(
                    "{path} is not empty and not a dbaas data root; give a new or empty directory"
                )));
            }
        }
    } else {
        exec.run(&Command::new("/bin/mkdir", &["-p", path])?).await?;
    }
    if exec.is_root() {
        // -h: should the path have become a link since the checks, change the link, not its
        // target.
        exec.run(&Command::new("/bin/chown", &["-h", "postgres:postgres", path])?).await?;
        exec.run(&Command::new("/bin/chmod", &["0750", path])?).await?;
    }
    exec.run(&Command::new("/usr/bin/touch", &[&marker])?.as_postgres()).await?;
    exec.run(&Command::new("/usr/bin/test", &["-w", path])?.as_postgres()).await?;
    Ok(())
}

/// A command's exit as a yes/no: a non-zero exit is "no", other failures are errors.
fn succeeds(r: Result<executor::Output, ExecError>) -> Result<bool, ExecError> {
    match r {
        Ok(_) => Ok(true),
        Err(ExecError::Failed { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_roots() {
        assert!(validate_data_root("/var/lib/dbaas").is_ok());
        assert!(validate_data_root("/var/lib/dbaas/data").is_ok());
        assert!(validate_data_root("/data/dbaas").is_ok());
        for bad in [
            "var/lib",
            "/",
            "/a/../b",
            "/a//b",
            "/a/",
            "/a b",
            "/a;rm",
            "/a/./b",
            "/é",
            "/etc",
            "/etc/dbaas",
            "/usr/local/x",
            "/var",
            "/var/lib",
            "/home",
            "/tmp",
            "/lib64/x",
            "/root/data",
            "/proc/1",
            "/data",
        ] {
            assert!(validate_data_root(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some(32768..=60999));
        for bad in ["", "32768", "60999 32768", "a b", "1 2 3", "70000 80000"] {
            assert_eq!(parse_port_range(bad), None, "{bad}");
        }
    }
}
