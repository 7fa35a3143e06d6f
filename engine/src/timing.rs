//! When things may run: cron expressions (parsed, next slot, shortest gap between runs) and
//! daily windows given as `HH:MM` UTC start and end. Used by the HTTP checks and the
//! application's schedulers alike.

use chrono::{DateTime, Utc};

/// Parses a cron expression (5 fields, or 6 with seconds first), UTC.
pub fn parse_cron(expr: &str) -> Result<croner::Cron, String> {
    if expr.trim().is_empty() || expr.len() > 200 {
        return Err("must be a cron expression such as `0 3 * * SUN`".into());
    }
    croner::Cron::new(expr)
        .with_seconds_optional()
        .parse()
        .map_err(|e| format!("{expr:?} is not a valid cron expression: {e}"))
}

/// The shortest gap between consecutive runs over the next 64 occurrences (`None` when it
/// fires fewer than twice).
pub fn shortest_gap(cron: &croner::Cron, from: DateTime<Utc>) -> Option<chrono::Duration> {
    let mut prev = next_slot(cron, from)?;
    let mut gap: Option<chrono::Duration> = None;
    for _ in 0..64 {
        let Some(next) = next_slot(cron, prev) else { break };
        let d = next - prev;
        gap = Some(gap.map_or(d, |g| g.min(d)));
        prev = next;
    }
    gap
}

/// The first slot strictly after `after`.
pub fn next_slot(cron: &croner::Cron, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&after, false).ok()
}

/// Minutes after midnight of `HH:MM` (`24:00` allowed as an end).
pub fn parse_hhmm(t: &str) -> Result<u32, String> {
    let bad = || format!("{t:?} is not a time of day; use HH:MM (UTC)");
    let (h, m) = t.split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// Whether `minute` (after midnight, UTC) is inside the window from `start` to `end`
/// (`HH:MM`); end before start wraps.
pub fn in_window(start: &str, end: &str, minute: u32) -> bool {
    match (parse_hhmm(start), parse_hhmm(end)) {
        (Ok(s), Ok(e)) if s <= e => (s..e).contains(&minute),
        (Ok(s), Ok(e)) => minute >= s || minute < e,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows() {
        assert!(in_window("01:00", "05:00", 60));
        assert!(!in_window("01:00", "05:00", 300));
        assert!(in_window("22:00", "02:00", 23 * 60) && in_window("22:00", "02:00", 30));
        assert!(!in_window("22:00", "02:00", 12 * 60));
        assert!(in_window("00:00", "24:00", 24 * 60 - 1));
        for bad in ["1:5", "25:00", "24:01", "ab:cd", "12", "", "123:00"] {
            assert!(parse_hhmm(bad).is_err(), "{bad}");
        }
    }
}
