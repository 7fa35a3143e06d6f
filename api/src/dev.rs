//! `dbaas-api dev`: the embedded default. Starts a state PostgreSQL and a local instance
//! (reusing them when the data dir already has them), registers the instance as `local` and
//! this machine as host `local` (managed instances on it stop and start with `dev`), makes
//! an admin token, serves, and stops the clusters on Ctrl-C / SIGTERM.

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;

use anyhow::{Context, Result};
use dbaas_client::{CreateHost, CreateInstance, Environment, SslMode};

use crate::crypto::MasterKey;
use crate::pgcluster::{Cluster, ClusterOptions};

/// Contrib extensions offered on the local instance when the server has them.
const LOCAL_EXTENSIONS: &[&str] =
    &["pgcrypto", "citext", "hstore", "pg_trgm", "uuid-ossp", "btree_gin", "btree_gist", "pg_stat_statements"];

pub async fn run(dir: &std::path::Path, port: u16, proxy_port: u16, engine: crate::state::EngineConfig) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    check_owned(dir)?;
    make_private(dir)?;

    eprintln!("starting the state database in {}", dir.join("state").display());
    let state_pg = tokio::task::block_in_place(|| Cluster::start(&dir.join("state"), &ClusterOptions::default()))?;
    eprintln!("starting the local instance in {}", dir.join("local").display());
    let local_pg = tokio::task::block_in_place(|| {
        Cluster::start(&dir.join("local"), &ClusterOptions { tls: true, ..Default::default() })
    })?;

    let key_path = dir.join("master.key");
    if !key_path.exists() {
        write_secret(&key_path, &MasterKey::generate_base64())?;
    }
    let key = MasterKey::from_base64(&fs::read_to_string(&key_path)?)?;

    let db = crate::server::connect_state_db(&state_pg.url("postgres")).await?;
    // For `dbaas-api backup-open <id>` with no flags while this runs (0600, like the key).
    write_secret(&dir.join(STATE_URL_FILE), &state_pg.url("postgres"))?;
    let state = crate::server::state(db.clone(), key, engine);

    if crate::store::instances::by_name(&db, "local").await.map_err(|e| anyhow::anyhow!("{e}"))?.is_none() {
        lock_down_local(&local_pg).await?;
        let available = available_extensions(&local_pg).await.unwrap_or_default();
        let req = CreateInstance {
            public_host: Some("localhost".into()),
            labels: BTreeMap::from([("site".to_string(), "local".to_string())]),
            allowed_extensions: LOCAL_EXTENSIONS
                .iter()
                .filter(|e| available.iter().any(|a| a == *e))
                .map(|e| e.to_string())
                .collect(),
            ..instance_request(&local_pg, "local")
        };
        crate::catalog::registration::register(&state, req)
            .await
            .map_err(|e| anyhow::anyhow!("registering the local instance: {e:?}"))?;
    }

    // This machine is also a host: managed instances can be created on it right away.
    let host_root = dir.join("hosts");
    fs::create_dir_all(&host_root)?;
    if crate::hosts::HostRecord::by_name(&db, "local").await?.is_none() {
        let root = host_root.canonicalize().unwrap_or(host_root.clone()).to_string_lossy().into_owned();
        let req = CreateHost { proxy_port: Some(proxy_port), ..CreateHost::local("local", &root, DEV_PORTS) };
        if let Err(e) = crate::hosts::register::register(&state.db, &state.key, req).await {
            eprintln!("warning: this machine is not registered as a host ({e:?}); managed instances need one");
        }
    }
    // Backups work out of the box: a filesystem store under the data dir, for every environment.
    let backups = dir.join("backups");
    fs::create_dir_all(&backups)?;
    fs::set_permissions(&backups, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    if crate::store::backups::store_by_name(&db, "local").await?.is_none() {
        let req = dbaas_client::CreateBackupStore {
            name: "local".into(),
            kind: dbaas_client::BackupStoreKind::Filesystem,
            path: Some(backups.canonicalize().unwrap_or(backups.clone()).to_string_lossy().into_owned()),
            s3: None,
            object_lock: None,
            environments: vec![Environment::Sandbox, Environment::Preprod, Environment::Prod],
        };
        if let Err(e) = crate::http::backups::register_store(&state, req).await {
            eprintln!("warning: no local backup store ({e:?})");
        }
    }
    let managed = local_managed(&db).await?;
    restart_managed(&state, &managed).await;

    let token = reuse_or_create_token(&db, &dir.join("env")).await?;
    let endpoint = format!("http://127.0.0.1:{}", port);
    let env = format!("export DBAAS_ENDPOINT={endpoint}\nexport DBAAS_TOKEN={token}\n");
    let env_path = dir.join("env");
    write_secret(&env_path, &env)?;
    if let Some(ca) = &local_pg.ca_cert {
        fs::write(dir.join("local-ca.crt"), ca)?;
    }
    println!("{env}");
    eprintln!(
        "dbaas dev is ready: instance `local` (sandbox) on 127.0.0.1:{}; these exports are also in {}. Ctrl-C stops everything.",
        local_pg.port,
        env_path.display()
    );

    let listen: SocketAddr = ([127, 0, 0, 1], port).into();
    let result = crate::server::serve(state.clone(), listen, crate::server::shutdown_on_signals()).await;
    // Managed instances on this machine stop with it (and start again with the next `dev`).
    for inst in local_managed(&db).await.unwrap_or_default() {
        if let Ok(node) = crate::managed::server::node_of(&state, &inst).await {
            if let Err(e) = node.stop("fast").await {
                eprintln!("warning: stopping managed instance {}: {e}", inst.name);
            }
        }
    }
    // So does its routing proxy (the next `dev` starts it again with its configuration).
    if let Ok(Some(host)) = crate::hosts::HostRecord::by_name(&db, "local").await {
        if let Err(e) = crate::managed::proxy::sync::stop(&state, &host).await {
            eprintln!("warning: stopping the routing proxy: {}", e.message);
        }
    }
    db.close().await;
    eprintln!("stopping the clusters");
    drop(local_pg);
    drop(state_pg);
    result
}

/// The state database's URL in dev's data dir.
const STATE_URL_FILE: &str = "state-url";

/// The state database and master key of the `dev` whose data dir is `dir`, for `backup-open`
/// run without flags (a key given explicitly still wins).
pub fn backup_open_settings(
    dir: &std::path::Path,
    master_key: &Option<String>,
    master_key_file: &Option<std::path::PathBuf>,
) -> Result<(String, MasterKey)> {
    let url_file = dir.join(STATE_URL_FILE);
    let url = fs::read_to_string(&url_file).with_context(|| {
        format!(
            "no --database-url, and {} is not there: start `bash scripts/dev.sh` (with the same data dir), \
             or give --database-url and the master key",
            url_file.display()
        )
    })?;
    let key = match (master_key, master_key_file) {
        (None, None) => MasterKey::load(None, Some(&dir.join("master.key")))?,
        _ => MasterKey::load(master_key.as_deref(), master_key_file.as_deref())?,
    };
    Ok((url.trim().to_string(), key))
}

/// How a cluster started on this machine is registered as an external sandbox instance:
/// `verify-full` against the CA it was started with. `dev` registers `local` with it, and the
/// test harness every instance it starts, so the suite tests the TLS users get.
pub fn instance_request(cluster: &Cluster, name: &str) -> CreateInstance {
    CreateInstance {
        sslmode: SslMode::VerifyFull,
        ca_cert: cluster.ca_cert.clone(),
        ..CreateInstance::external(name, "127.0.0.1", cluster.port, "postgres", &cluster.password, Environment::Sandbox)
    }
}

/// The default data dir lies in /var/tmp, where anyone may create it first: a directory
/// someone else owns (or a link to one) would let them read or swap the key and token files,
/// and as root we would hand it to the postgres group. Only a directory of our own is used.
fn check_owned(dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::symlink_metadata(dir).with_context(|| format!("inspecting {}", dir.display()))?;
    if meta.file_type().is_symlink() {
        anyhow::bail!("{} is a symbolic link; give the data dir's real path", dir.display());
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        anyhow::bail!(
            "{} belongs to uid {}, not to you (uid {me}): it may not hold your master key and token; \
             choose another --data-dir",
            dir.display(),
            meta.uid()
        );
    }
    Ok(())
}

/// The data dir holds the master key, the admin token and the clusters: only the invoking
/// user may enter it (0700). As root, the postgres user running the clusters must pass
/// through it, so it is `root:postgres 0710` (traverse, not list).
fn make_private(dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match crate::pgcluster::postgres_gid()? {
        Some(gid) => {
            std::os::unix::fs::chown(dir, None, Some(gid))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o710))?;
        }
        None => fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?,
    }
    Ok(())
}

/// Writes a secret file readable by its owner only, from its creation on (no window in
/// which it exists with the umask's mode).
fn write_secret(path: &std::path::Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    // O_NOFOLLOW: a link planted in place of the file is an error, not a redirection; an
    // older file gets its mode fixed through the open handle before the secret goes in.
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false) // after the mode is fixed, below
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    f.set_len(0)?;
    f.write_all(text.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Ports of managed instances created on this machine in dev mode: below the usual
/// ephemeral range (32768-60999), which registration refuses.
const DEV_PORTS: [u16; 2] = [15500, 15599];

/// Managed instances on this machine's host that should be running.
async fn local_managed(db: &sqlx::PgPool) -> Result<Vec<crate::catalog::InstanceRow>> {
    use crate::catalog::conn::INSTANCE_COLUMNS;
    Ok(sqlx::query_as(&format!(
        "SELECT {INSTANCE_COLUMNS} FROM instances i JOIN hosts h ON h.id = i.host_id \
         WHERE h.name = 'local' AND h.kind = 'local' AND i.status = 'ready'"
    ))
    .fetch_all(db)
    .await?)
}

/// Starts (as operations, run once the server is up) the managed instances stopped when the
/// last `dev` exited.
async fn restart_managed(state: &crate::state::AppState, instances: &[crate::catalog::InstanceRow]) {
    for inst in instances {
        let r = async {
            let mut tx = state.db.begin().await?;
            let job = crate::managed::jobs::StartInstance { reason: Some("dev start".into()) };
            crate::managed::enqueue(&mut tx, inst.id, &job).await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = r {
            eprintln!("warning: cannot restart managed instance {}: {e}", inst.name);
        }
    }
}

/// Only the service and each database's own roles may connect anywhere.
async fn lock_down_local(pg: &Cluster) -> Result<()> {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(&pg.url("postgres")).await?;
    sqlx::raw_sql(
        "REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC; REVOKE CONNECT ON DATABASE template1 FROM PUBLIC",
    )
    .execute(&mut c)
    .await?;
    Ok(())
}

async fn available_extensions(pg: &Cluster) -> Result<Vec<String>> {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(&pg.url("postgres")).await?;
    Ok(sqlx::query_scalar("SELECT name::text FROM pg_available_extensions").fetch_all(&mut c).await?)
}

/// A restart keeps the admin token of the env file while it is still valid.
async fn reuse_or_create_token(db: &sqlx::PgPool, env_path: &std::path::Path) -> Result<String> {
    if let Ok(text) = fs::read_to_string(env_path) {
        if let Some(tok) = text.lines().find_map(|l| l.strip_prefix("export DBAAS_TOKEN=")) {
            if crate::auth::authenticate(db, tok.trim()).await.is_ok_and(|p| p.is_admin()) {
                return Ok(tok.trim().to_string());
            }
        }
    }
    let created = crate::store::tokens::issue(db, None, "dev admin", None).await?;
    Ok(created.secret)
}
