//! Which base backup a restore starts from. pgBackRest picks by time alone; after an in-place
//! restore the newest backup can be the safety backup taken on the abandoned timeline, from
//! which the instance's current timeline cannot be reached (PostgreSQL refuses: "the server
//! forked off from that timeline"). So the service chooses the set itself: the newest one that
//! ended before the target, on the current timeline or on one of its ancestors before the
//! fork, read from the timeline's history file.

use chrono::{DateTime, Utc};

use dbaas_engine::OpError;

use super::window::{info, parse_lsn, segment_end, Set};
use crate::node::Node;

/// A timeline's history file (`0000000N.history`): each ancestor timeline and the position
/// where the next one forked off it.
pub fn parse_history(text: &str) -> Vec<(i32, u64)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.parse().ok()?, parse_lsn(f.next()?)?))
        })
        .collect()
}

/// The backup set a restore onto `timeline` starts from, for a target time (or the end of
/// the archive): the newest that ended before the target, on that timeline or on an ancestor
/// before the fork. pgBackRest's own choice goes by time alone, and after an in-place restore
/// it would pick the safety backup taken on the abandoned timeline, from which the new one
/// cannot be reached.
pub fn choose_set<'a>(sets: &'a [Set], timeline: i32, history: &[(i32, u64)], target: Until) -> Option<&'a Set> {
    sets.iter()
        .filter(|b| b.timeline == timeline || history.iter().any(|(tl, fork)| *tl == b.timeline && b.stop_lsn <= *fork))
        .filter(|b| match target {
            Until::Time(t) => b.stopped_at + chrono::Duration::seconds(1) <= t,
            Until::Lsn(l) => b.stop_lsn <= l,
            Until::End => true,
        })
        .max_by_key(|b| b.stopped_at)
}

/// Where a restore stops, as far as choosing its backup set goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    Time(DateTime<Utc>),
    Lsn(u64),
    End,
}

/// `--set=<label>` for a restore of `live`'s repository onto the archive's newest timeline,
/// to `target` (or the archive's end).
pub async fn set_for(live: &Node, target: Until) -> Result<String, OpError> {
    Ok(chosen(live, target).await?.0)
}

/// [`set_for`] and the chosen set's size (the cluster's size when it was taken: about what a
/// restore of it writes, before WAL).
pub async fn chosen(live: &Node, target: Until) -> Result<(String, i64), OpError> {
    let info = info(live).await?;
    let timeline = info.archive_max.as_deref().and_then(segment_end).map_or(1, |(tl, _)| tl);
    let history = if timeline > 1 { history(live, timeline).await? } else { Vec::new() };
    let set = choose_set(&info.sets, timeline, &history, target).ok_or_else(|| {
        OpError::permanent(
            "no_base_backup",
            format!(
                "no base backup on timeline {timeline}'s history ended before {}",
                match target {
                    Until::Time(t) => t.to_rfc3339(),
                    Until::Lsn(l) => format!("{:X}/{:X}", l >> 32, l & 0xffff_ffff),
                    Until::End => "the archive's end".into(),
                }
            ),
        )
    })?;
    let size = info.backups.iter().find(|b| b.label == set.label).map_or(0, |b| b.size_bytes);
    Ok((format!("--set={}", set.label), size))
}

/// Whether a copy of `bytes` fits on the filesystem that holds `dir`, keeping a margin (a
/// tenth of the copy, at least 256 MiB) for the WAL recovery replays and the server's own
/// files: a restore that would fill the disk the instances live on stops before it starts.
pub async fn room_for(node: &Node, dir: &str, bytes: i64) -> Result<(), OpError> {
    let (_, available) = dbaas_hosts::disk::space(&*node.exec, dir).await?;
    check_room(bytes.max(0) as u64, available, &node.host.name)
}

fn check_room(bytes: u64, available: u64, host: &str) -> Result<(), OpError> {
    let needed = bytes + (bytes / 10).max(256 << 20);
    if needed > available {
        return Err(OpError::permanent(
            "disk_full",
            format!(
                "not enough disk on host {host} for a restored copy: about {} MiB needed, {} MiB free",
                needed >> 20,
                available >> 20
            ),
        ));
    }
    Ok(())
}

/// The timeline's history: from the server's `pg_wal` (PostgreSQL keeps every history file
/// there), else from the repository.
async fn history(live: &Node, timeline: i32) -> Result<Vec<(i32, u64)>, OpError> {
    let name = format!("{timeline:08X}.history");
    if let Ok(text) = live.read_file(&format!("{}/pg_wal/{name}", live.data())).await {
        return Ok(parse_history(&text));
    }
    let paths = super::config::Paths::of(live);
    let dest = format!("{}/{name}", paths.root);
    super::ops::pgbackrest(live, &paths, &["archive-get", &name, &dest], std::time::Duration::from_secs(60)).await?;
    let text = live.read_file(&dest).await?;
    live.sys("/bin/rm", &["-f", &dest]).await?;
    Ok(parse_history(&text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_copy_needs_its_size_and_a_margin() {
        let gib = 1u64 << 30;
        assert!(check_room(gib, 2 * gib, "h").is_ok());
        let e = check_room(gib, gib, "h").unwrap_err();
        assert_eq!(e.code, "disk_full");
        assert!(e.message.contains("1280 MiB needed, 1024 MiB free"), "{}", e.message);
        // Large ones keep a tenth.
        assert!(check_room(10 * gib, 11 * gib, "h").is_ok());
        assert!(check_room(10 * gib, 11 * gib - 1, "h").is_err());
        // Small clusters still keep 256 MiB free.
        assert!(check_room(10 << 20, 200 << 20, "h").is_err());
        assert!(check_room(10 << 20, 300 << 20, "h").is_ok());
    }

    #[test]
    fn sets_on_the_timeline_s_history() {
        let t = |s: i64| Utc.timestamp_opt(1_800_000_000 + s, 0).single().unwrap();
        let set = |label: &str, timeline, stop_lsn, stop| Set {
            label: label.into(),
            timeline,
            stop_lsn,
            stopped_at: t(stop),
        };
        // A full backup on timeline 1, a restore forking timeline 2 off at 0/5000068 after a
        // safety backup on timeline 1 past the fork, then a backup on timeline 2.
        let sets = vec![set("F", 1, 0x300_0050, 10), set("S", 1, 0x600_0060, 50), set("N", 2, 0x900_0000, 90)];
        let history = parse_history("1\t0/5000068\tbefore 2026-12-03 15:35:50+00\n");
        assert_eq!(history, vec![(1, 0x500_0068)]);
        let pick = |target: Option<i64>| {
            choose_set(&sets, 2, &history, target.map_or(Until::End, |s| Until::Time(t(s)))).map(|s| s.label.as_str())
        };
        assert_eq!(pick(None), Some("N"));
        assert_eq!(pick(Some(60)), Some("F"), "never the safety backup past the fork");
        assert_eq!(pick(Some(95)), Some("N"));
        assert_eq!(pick(Some(5)), None);
        // On timeline 1 itself the safety backup is fine.
        assert_eq!(choose_set(&sets, 1, &[], Until::Time(t(60))).map(|s| s.label.as_str()), Some("S"));
        assert_eq!(choose_set(&sets, 2, &history, Until::Lsn(0x400_0000)).map(|s| s.label.as_str()), Some("F"));
        assert_eq!(choose_set(&sets, 2, &history, Until::Lsn(0x200_0000)), None);
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(parse_lsn("x/1"), None);
    }
}
