//! Hosts where managed instances are provisioned: the executors that run commands there, the
//! connections kept to them, and what registration discovers (PostgreSQL versions, a usable
//! data root).

pub mod executor;
mod pool;
pub mod ssh;

pub use pool::{HostPool, HostRecord, HOST_COLUMNS};

use dbaas_client::PgVersion;

use executor::{Command, ExecError, Executor};

/// Where Debian/Ubuntu packages put server binaries; `find` looks no deeper than needed.
const PG_ROOT: &str = "/usr/lib/postgresql";

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
    Ok(())
}

/// Creates the data root if needed and checks the postgres user can write there.
pub async fn prepare_data_root<E: Executor>(exec: &E, path: &str) -> Result<(), ExecError> {
    exec.run(&Command::new("/bin/mkdir", &["-p", path])?).await?;
    if exec.is_root() {
        exec.run(&Command::new("/bin/chown", &["postgres:postgres", path])?).await?;
        exec.run(&Command::new("/bin/chmod", &["0750", path])?).await?;
    }
    exec.run(&Command::new("/usr/bin/test", &["-w", path])?.as_postgres()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_roots() {
        assert!(validate_data_root("/var/lib/dbaas").is_ok());
        for bad in ["var/lib", "/", "/a/../b", "/a//b", "/a/", "/a b", "/a;rm", "/a/./b", "/é"] {
            assert!(validate_data_root(bad).is_err(), "{bad}");
        }
    }
}
