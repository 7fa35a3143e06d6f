//! Database sizes for the list page, from one call to `GET /v1/prometheus/metrics` (the
//! caller's databases' series, as of the last collection) rather than one call per database.

use std::collections::HashMap;

const SERIES: &str = "pg_database_size_bytes{";

/// `(tenant, database) -> bytes` from Prometheus exposition text.
pub fn parse(text: &str) -> HashMap<(String, String), i64> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(SERIES) else { continue };
        let Some((labels, value)) = split_labels(rest) else { continue };
        let Ok(v) = value.trim().parse::<f64>() else { continue };
        let labels = parse_labels(labels);
        if let (Some(t), Some(d)) = (labels.get("tenant"), labels.get("database")) {
            out.insert((t.clone(), d.clone()), v as i64);
        }
    }
    out
}

/// The label block (up to its closing `}` outside quotes) and what follows it.
fn split_labels(s: &str) -> Option<(&str, &str)> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some((&s[..i], &s[i + 1..])),
            _ => {}
        }
    }
    None
}

/// `a="x",b="y\"z"` -> {a: x, b: y"z} (the exposition format's escapes: `\\`, `\"`, `\n`).
fn parse_labels(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s;
    while let Some((name, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.insert(name.trim_start_matches(',').trim().to_string(), value);
        rest = &after[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_by_tenant_and_database() {
        let text = "# HELP pg_database_size_bytes Disk space used by the database.\n\
            # TYPE pg_database_size_bytes gauge\n\
            pg_database_size_bytes{tenant=\"load\",database=\"db-0\",environment=\"sandbox\",instance=\"local\",datname=\"load_db-0\"} 7732583\n\
            pg_database_size_bytes{tenant=\"b\",database=\"x\",odd=\"a}\\\"b\"} 1.5e3\n\
            pg_stat_database_numbackends{tenant=\"load\",database=\"db-0\"} 3\n";
        let m = parse(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[&("load".to_string(), "db-0".to_string())], 7_732_583);
        assert_eq!(m[&("b".to_string(), "x".to_string())], 1500);
    }
}
