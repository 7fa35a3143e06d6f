//! "Show as Terraform": a database's current configuration as a `dbaas_database` resource,
//! with the import block that adopts it into a state without recreating anything.

use dbaas_client::Database;

use super::layout::label;

/// A Terraform string literal: quotes, backslashes and control characters escaped, and the
/// template sequences `${` and `%{` doubled (HCL un-doubles only those: a lone `$` stays).
fn hcl_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A resource label from the database's name (`-` is allowed in labels but `_` reads better).
fn resource_label(name: &str) -> String {
    let l: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    if l.starts_with(|c: char| c.is_ascii_alphabetic()) {
        l
    } else {
        format!("db_{l}")
    }
}

pub fn snippet(db: &Database) -> String {
    let r = resource_label(&db.name);
    let mut lines = vec![
        format!("resource \"dbaas_database\" \"{r}\" {{"),
        format!("  tenant   = {}", hcl_string(&db.tenant)),
        format!("  name     = {}", hcl_string(&db.name)),
        format!("  instance = {}", hcl_string(&db.instance)),
        format!("  mode     = {}", hcl_string(&label(&db.mode))),
    ];
    if !db.extensions.is_empty() {
        let exts: Vec<String> = db.extensions.iter().map(|e| hcl_string(e)).collect();
        lines.push(format!("  extensions = [{}]", exts.join(", ")));
    }
    if db.connection_limit != -1 {
        lines.push(format!("  connection_limit = {}", db.connection_limit));
    }
    if db.pool_mode != dbaas_client::PoolMode::Session {
        lines.push(format!("  pool_mode = {}", hcl_string(db.pool_mode.as_str())));
    }
    if let Some(days) = db.backups.retention_days {
        lines.push(format!("  backup_retention_days = {days}"));
    }
    if let Some(store) = &db.backups.store {
        lines.push(format!("  backup_store = {}", hcl_string(store)));
    }
    lines.push("}".into());
    lines.push(String::new());
    lines.push("import {".into());
    lines.push(format!("  to = dbaas_database.{r}"));
    lines.push(format!("  id = \"{}\"", db.id));
    lines.push("}".into());
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_cannot_break_out_of_their_literal() {
        assert_eq!(hcl_string("a\"b"), "\"a\\\"b\"");
        assert_eq!(hcl_string("${file(\"/etc/passwd\")}"), "\"$${file(\\\"/etc/passwd\\\")}\"");
        assert_eq!(hcl_string("%{ if true }"), "\"%%{ if true }\"");
        assert_eq!(hcl_string("a$b 100%"), "\"a$b 100%\"");
        assert_eq!(resource_label("orders-eu"), "orders_eu");
        assert_eq!(resource_label("9x"), "db_9x");
    }
}
