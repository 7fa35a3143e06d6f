//! Where an instance's pgBackRest files live, its `pgbackrest.conf`, the archiving lines of
//! `dbaas.conf`, and the repository's cipher pass.
//!
//! One repository per instance, on its host, inside the instance's directory:
//! `<dir>/pgbackrest.conf` (0600, the postgres user's: it holds the cipher pass, which
//! pgBackRest refuses on a command line, so it is in no process list) and `<dir>/backrest/`
//! (`repo/`, `spool/` for asynchronous archiving, `lock/`, `log/`). The stanza is the
//! instance's name.

use dbaas_crypto::{random_alnum, MasterKey};
use dbaas_domain::catalog::conn::InstanceRow;
use dbaas_engine::OpError;

use crate::node::Node;

/// pgBackRest on the hosts (Debian's package).
pub const PGBACKREST: &str = "/usr/bin/pgbackrest";

/// The instance's pgBackRest paths.
pub struct Paths {
    pub conf: String,
    pub root: String,
    pub repo: String,
    pub stanza: String,
}

impl Paths {
    pub fn of(node: &Node) -> Self {
        let root = format!("{}/backrest", node.dir);
        Self {
            conf: format!("{}/pgbackrest.conf", node.dir),
            repo: format!("{root}/repo"),
            root,
            stanza: node.name.clone(),
        }
    }

    /// `--config=… --stanza=…`: what every pgBackRest command of this instance starts with.
    pub fn args(&self) -> [String; 2] {
        [format!("--config={}", self.conf), format!("--stanza={}", self.stanza)]
    }

    /// The directories pgBackRest writes to.
    pub fn dirs(&self) -> [String; 5] {
        let r = &self.root;
        [r.clone(), self.repo.clone(), format!("{r}/spool"), format!("{r}/lock"), format!("{r}/log")]
    }
}

/// What the environment's point-in-time policy asks of an instance.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Policy {
    pub archive_timeout_s: i32,
    pub full_cron: String,
    pub diff_cron: Option<String>,
    pub retention_days: i32,
}

pub async fn policy(db: &sqlx::PgPool, inst: &InstanceRow) -> Result<Policy, OpError> {
    let p = sqlx::query_as(
        "SELECT archive_timeout_s, full_cron, diff_cron, retention_days FROM pitr_policies WHERE environment = $1",
    )
    .bind(inst.environment.as_str())
    .fetch_optional(db)
    .await?
    .ok_or_else(|| {
        OpError::permanent("no_policy", format!("no point-in-time policy for {}", inst.environment.as_str()))
    })?;
    Ok(p)
}

fn key_context(inst: &InstanceRow) -> String {
    format!("pitr-repo:{}", inst.id)
}

/// The repository's cipher pass: made once (the first attempt that gets here stores it; a
/// later or concurrent one reads what was stored), kept encrypted.
pub async fn cipher_pass(db: &sqlx::PgPool, key: &MasterKey, inst: &InstanceRow) -> Result<String, OpError> {
    let fresh = key.encrypt(&random_alnum(48), &key_context(inst));
    let stored: Vec<u8> = sqlx::query_scalar(
        "UPDATE instances SET repo_key_enc = coalesce(repo_key_enc, $2) WHERE id = $1 RETURNING repo_key_enc",
    )
    .bind(inst.id)
    .bind(&fresh)
    .fetch_one(db)
    .await?;
    key.decrypt(&stored, &key_context(inst)).map_err(|e| OpError::permanent("secret", e.to_string()))
}

/// `pgbackrest.conf`: encrypted repository, retention by days, asynchronous archive-push
/// (WAL leaves the server as fast as the repository takes it), lz4 (cheap on CPU).
pub fn render(node: &Node, paths: &Paths, pass: &str, policy: &Policy) -> String {
    format!(
        "# Written by dbaas-api for instance {name}; edits are overwritten.\n\
         [global]\n\
         repo1-path={repo}\n\
         repo1-cipher-type=aes-256-cbc\n\
         repo1-cipher-pass={pass}\n\
         repo1-retention-full-type=time\n\
         repo1-retention-full={days}\n\
         compress-type=lz4\n\
         archive-async=y\n\
         spool-path={root}/spool\n\
         lock-path={root}/lock\n\
         log-path={root}/log\n\
         log-level-console=warn\n\
         log-level-stderr=warn\n\
         log-level-file=info\n\
         start-fast=y\n\
         process-max=2\n\
         \n\
         [{stanza}]\n\
         pg1-path={data}\n\
         pg1-port={port}\n\
         pg1-socket-path={run}\n\
         pg1-user=postgres\n",
        name = node.name,
        repo = paths.repo,
        root = paths.root,
        days = policy.retention_days,
        stanza = paths.stanza,
        data = node.data(),
        port = node.port,
        run = node.run_dir(),
    )
}

/// The `dbaas.conf` lines that archive every WAL file through pgBackRest. The instance's own
/// settings come after them and may set `archive_timeout`.
pub fn conf_lines(paths: &Paths, policy: &Policy) -> String {
    let [config, stanza] = paths.args();
    format!(
        "wal_level = 'replica'\n\
         archive_mode = 'on'\n\
         archive_command = '{PGBACKREST} {config} {stanza} archive-push %p'\n\
         archive_timeout = '{}s'\n",
        policy.archive_timeout_s
    )
}

/// Writes the configuration and makes the directories (idempotent).
pub async fn install(node: &Node, paths: &Paths, pass: &str, policy: &Policy) -> Result<(), OpError> {
    for dir in paths.dirs() {
        node.sys("/bin/mkdir", &["-p", "-m", "0700", &dir]).await?;
    }
    node.replace_file(&paths.conf, &render(node, paths, pass, policy), "0600").await?;
    Ok(())
}

/// Whether the host has pgBackRest.
pub async fn available(node: &Node) -> Result<bool, OpError> {
    Ok(node.exists(PGBACKREST).await?)
}
