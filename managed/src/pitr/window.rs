//! The recovery window: `earliest` is the first base backup's end (from `pgbackrest info
//! --output=json`, a second after its recorded stop, which is rounded down); `latest` is the newest time whose every commit is in the archive.
//!
//! Why `latest` is not simply "when the newest WAL file was archived": a file is archived
//! some time after it was switched, and commits made in between sit in the next file, which
//! is not in the archive yet. So the service samples each archiving instance's clock and WAL
//! insert position (`wal_marks`: every commit stamped at or before `at` is written at or
//! before `lsn`, with a second's margin for a commit stamped just before its record is
//! inserted), and `latest` is the newest sample whose position the archive has reached (the
//! end of the newest archived file). Samples are taken by the metrics collection (once per
//! interval across replicas) and every time a window is read.

use chrono::{DateTime, TimeZone, Utc};
use dbaas_client::{ArchiveHealth, ArchivingState, BaseBackup, BaseBackupKind, RecoveryWindow};
use serde::Deserialize;
use sqlx::PgConnection;

use dbaas_domain::catalog::conn::{InstanceRow, InstanceTarget, MAINTENANCE_DB};
use dbaas_domain::state::AppState;
use dbaas_engine::OpError;

use super::config::Paths;
use crate::node::Node;

/// What the repository holds.
#[derive(Debug, Default)]
pub struct Info {
    /// Oldest first.
    pub backups: Vec<BaseBackup>,
    /// Where each backup lies in the WAL history, in the same order.
    pub sets: Vec<Set>,
    /// The newest archived WAL file of the cluster's current database.
    pub archive_max: Option<String>,
}

/// A backup set as a restore chooses it: its timeline and where it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Set {
    pub label: String,
    pub timeline: i32,
    pub stop_lsn: u64,
    pub stopped_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct Stanza {
    #[serde(default)]
    archive: Vec<ArchiveRange>,
    #[serde(default)]
    backup: Vec<Backup>,
    #[serde(default)]
    db: Vec<Db>,
}

#[derive(Deserialize)]
struct ArchiveRange {
    database: DbRef,
    max: Option<String>,
}

#[derive(Deserialize)]
struct DbRef {
    id: i64,
}

#[derive(Deserialize)]
struct Db {
    id: i64,
}

#[derive(Deserialize)]
struct Backup {
    label: String,
    archive: BackupWal,
    lsn: BackupLsn,
    #[serde(rename = "type")]
    kind: BaseBackupKind,
    timestamp: Stamps,
    info: Sizes,
    #[serde(default)]
    error: Option<bool>,
}

#[derive(Deserialize)]
struct BackupWal {
    start: String,
}

#[derive(Deserialize)]
struct BackupLsn {
    stop: String,
}

#[derive(Deserialize)]
struct Stamps {
    start: i64,
    stop: i64,
}

#[derive(Deserialize)]
struct Sizes {
    size: i64,
    repository: RepoSize,
}

#[derive(Deserialize)]
struct RepoSize {
    delta: i64,
}

fn at(epoch: i64) -> Result<DateTime<Utc>, String> {
    Utc.timestamp_opt(epoch, 0).single().ok_or_else(|| format!("bad timestamp {epoch}"))
}

/// `pgbackrest info --output=json` of one stanza.
pub fn parse_info(json: &str) -> Result<Info, String> {
    let stanzas: Vec<Stanza> = serde_json::from_str(json).map_err(|e| format!("pgbackrest info: {e}"))?;
    let Some(st) = stanzas.into_iter().next() else { return Ok(Info::default()) };
    // After a stanza upgrade the repository knows several cluster ids: the current one is the
    // last listed.
    let current = st.db.last().map(|d| d.id);
    let archive_max = st.archive.iter().filter(|a| Some(a.database.id) == current).find_map(|a| a.max.clone());
    let mut backups = Vec::new();
    let mut sets = Vec::new();
    for b in st.backup.into_iter().filter(|b| b.error != Some(true)) {
        let timeline = b.archive.start.get(0..8).and_then(|t| i32::from_str_radix(t, 16).ok());
        let (Some(timeline), Some(stop_lsn)) = (timeline, parse_lsn(&b.lsn.stop)) else {
            return Err(format!("pgbackrest info: backup {} has no readable timeline or stop position", b.label));
        };
        sets.push(Set { label: b.label.clone(), timeline, stop_lsn, stopped_at: at(b.timestamp.stop)? });
        backups.push(BaseBackup {
            label: b.label,
            kind: b.kind,
            started_at: at(b.timestamp.start)?,
            stopped_at: at(b.timestamp.stop)?,
            size_bytes: b.info.size,
            repository_bytes: b.info.repository.delta,
        });
    }
    backups.sort_by_key(|b| b.stopped_at);
    sets.sort_by_key(|b| b.stopped_at);
    Ok(Info { backups, sets, archive_max })
}

/// `16/B374D848` as a number.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// The timeline of a WAL file and the last insert position whose WAL it holds all of, as
/// `pg_lsn` text: its end (16 MiB files) plus the next file's long page header (40 bytes),
/// where an idle server's insert position rests after a switch with nothing written since.
pub fn segment_end(wal: &str) -> Option<(i32, String)> {
    if wal.len() != 24 || !wal.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let timeline = i32::from_str_radix(&wal[0..8], 16).ok()?;
    let log = u64::from_str_radix(&wal[8..16], 16).ok()?;
    let seg = u64::from_str_radix(&wal[16..24], 16).ok()?;
    const LONG_PAGE_HEADER: u64 = 40;
    let end = (log << 32) + (seg + 1) * 0x100_0000 + LONG_PAGE_HEADER;
    Some((timeline, format!("{:X}/{:X}", end >> 32, end & 0xffff_ffff)))
}

pub async fn info(node: &Node) -> Result<Info, OpError> {
    let paths = Paths::of(node);
    let out =
        super::ops::pgbackrest(node, &paths, &["info", "--output=json"], std::time::Duration::from_secs(60)).await?;
    parse_info(&out).map_err(|m| OpError::retryable("pgbackrest_info", m))
}

/// Records one (time, WAL insert position) sample of a serving instance. The time is read
/// first and a second taken off it: a commit stamped before it was inserted before the
/// position read next.
pub async fn mark(conn: &mut PgConnection, db: &sqlx::PgPool, inst: &InstanceRow) -> Result<(), OpError> {
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT pg_catalog.clock_timestamp()").fetch_one(&mut *conn).await?;
    let (timeline, lsn): (i32, String) = sqlx::query_as(
        "SELECT (SELECT timeline_id FROM pg_catalog.pg_control_checkpoint()), pg_catalog.pg_current_wal_insert_lsn()::text",
    )
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO wal_marks (instance_id, at, timeline, lsn) VALUES ($1, $2, $3, $4::pg_lsn) ON CONFLICT DO NOTHING",
    )
    .bind(inst.id)
    .bind(now - chrono::Duration::seconds(1))
    .bind(timeline)
    .bind(&lsn)
    .execute(db)
    .await?;
    // A day of samples is plenty: only the newest archived one matters.
    sqlx::query("DELETE FROM wal_marks WHERE instance_id = $1 AND at < now() - interval '1 day'")
        .bind(inst.id)
        .execute(db)
        .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Archiver {
    archived_count: i64,
    last_archived_wal: Option<String>,
    last_archived_time: Option<DateTime<Utc>>,
    failed_count: i64,
    last_failed_wal: Option<String>,
    last_failed_time: Option<DateTime<Utc>>,
}

/// The instance's window, read from its host and its server (a sample is taken first).
pub async fn read(s: &AppState, inst: &InstanceRow) -> Result<RecoveryWindow, OpError> {
    let mut window = RecoveryWindow {
        instance: inst.name.clone(),
        archiving: inst.archiving,
        earliest: None,
        latest: None,
        base_backups: Vec::new(),
        archive: None,
        last_drill: super::drill::last(&s.db, inst.id).await?,
    };
    if inst.archiving != ArchivingState::On {
        return Ok(window);
    }
    let node = crate::server::node_of(s, inst).await?;
    // The server's view first (and a fresh sample), so the repository read after it covers
    // at least what the server says it archived.
    let archiver = match inst.target(&s.key)?.connect(MAINTENANCE_DB).await {
        Ok(mut conn) => {
            mark(&mut conn, &s.db, inst).await?;
            Some(
                sqlx::query_as::<_, Archiver>(
                    "SELECT archived_count, last_archived_wal, last_archived_time, failed_count, last_failed_wal, \
                     last_failed_time FROM pg_catalog.pg_stat_archiver",
                )
                .fetch_one(&mut conn)
                .await?,
            )
        }
        // A stopped instance still has its window.
        Err(_) => None,
    };
    let info = info(&node).await?;
    // pgBackRest records the stop in whole seconds, the backup may end up to one later.
    window.earliest = info.backups.first().map(|b| b.stopped_at + chrono::Duration::seconds(1));
    if let Some((timeline, end)) = info.archive_max.as_deref().and_then(segment_end) {
        let latest: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT max(at) FROM wal_marks WHERE instance_id = $1 AND timeline = $2 AND lsn <= $3::pg_lsn",
        )
        .bind(inst.id)
        .bind(timeline)
        .bind(&end)
        .fetch_one(&s.db)
        .await?;
        window.latest = latest.filter(|l| window.earliest.is_some_and(|e| *l >= e));
    }
    window.archive = archiver.map(|a| ArchiveHealth {
        archived_count: a.archived_count,
        last_archived_age_seconds: a.last_archived_time.map(|t| (Utc::now() - t).num_seconds()),
        last_archived_wal: a.last_archived_wal,
        last_archived_at: a.last_archived_time,
        failed_count: a.failed_count,
        last_failed_wal: a.last_failed_wal,
        last_failed_at: a.last_failed_time,
        repository_max_wal: info.archive_max.clone(),
    });
    window.base_backups = info.backups;
    Ok(window)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_ends() {
        assert_eq!(segment_end("000000010000000000000004"), Some((1, "0/5000028".into())));
        assert_eq!(segment_end("0000000200000003000000FF"), Some((2, "4/28".into())));
        assert_eq!(segment_end("00000001000000000000000"), None);
        assert_eq!(segment_end("00000001000000000000000G"), None);
    }

    #[test]
    fn info_of_a_stanza() {
        let json = r#"[{"archive":[{"database":{"id":1,"repo-key":1},"id":"15-1","max":"000000010000000000000004","min":"000000010000000000000001"}],
          "backup":[{"archive":{"start":"000000010000000000000002","stop":"000000010000000000000003"},"backrest":{"format":5,"version":"2.45"},
          "database":{"id":1,"repo-key":1},"error":false,"info":{"delta":23213869,"repository":{"delta":3088384,"size":3088384},"size":23213869},
          "label":"20261203-150922F","lsn":{"start":"0/2000028","stop":"0/3000050"},"prior":null,"reference":null,
          "timestamp":{"start":1796310562,"stop":1796310565},"type":"full"}],
          "cipher":"aes-256-cbc","db":[{"id":1,"repo-key":1,"system-id":7715095106889056633,"version":"15"}],"name":"s1",
          "repo":[{"cipher":"aes-256-cbc","key":1,"status":{"code":0,"message":"ok"}}],"status":{"code":0,"lock":{"backup":{"held":false}},"message":"ok"}}]"#;
        let info = parse_info(json).unwrap();
        assert_eq!(info.archive_max.as_deref(), Some("000000010000000000000004"));
        assert_eq!(info.backups.len(), 1);
        let b = &info.backups[0];
        assert_eq!(
            (b.label.as_str(), b.kind, b.size_bytes, b.repository_bytes),
            ("20261203-150922F", BaseBackupKind::Full, 23213869, 3088384)
        );
        assert_eq!(b.stopped_at.timestamp(), 1796310565);
        assert!(parse_info("[]").unwrap().backups.is_empty());
        assert!(parse_info("{").is_err());
    }
}
