//! postgresql.conf parameters of managed instances: checked before anything is created, then
//! rendered into the include file the service owns.
//!
//! Values are checked by the server binary of the instance's version itself
//! (`postgres -C … -c name=value` against an empty configuration), so units, ranges, enum
//! values and booleans are judged exactly as the server will judge them, with its own message.

use dbaas_client::Settings;

use super::node::Node;
use dbaas_hosts::executor::{Command, ExecError, Executor};
use dbaas_hosts::HostExec;

/// Parameters the service sets itself: the cluster's layout, TLS and authentication.
const RESERVED: &[&str] = &[
    "config_file",
    "data_directory",
    "external_pid_file",
    "hba_file",
    "ident_file",
    "include",
    "include_dir",
    "include_if_exists",
    "password_encryption",
    "port",
    "ssl",
    "ssl_ca_file",
    "ssl_cert_file",
    "ssl_crl_dir",
    "ssl_crl_file",
    "ssl_key_file",
    "ssl_passphrase_command",
    "unix_socket_directories",
    "unix_socket_group",
    "unix_socket_permissions",
];

/// What platform admins may tune: memory, connections and timeouts, WAL and checkpoints,
/// the planner, parallelism, autovacuum, statistics and logging. Anything else is refused:
/// a deny-list cannot keep up, and parameters such as `archive_command`, `restore_command`
/// (shell commands run by the server), `*_preload_libraries` (code loaded into every
/// backend), `ssl_*` or `fsync` change what the service guarantees.
const ALLOWED: &[&str] = &[
    // memory
    "shared_buffers",
    "work_mem",
    "maintenance_work_mem",
    "autovacuum_work_mem",
    "temp_buffers",
    "effective_cache_size",
    "huge_pages",
    "logical_decoding_work_mem",
    "hash_mem_multiplier",
    "wal_buffers",
    "temp_file_limit",
    "max_stack_depth",
    // connections and timeouts
    "max_connections",
    "superuser_reserved_connections",
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "idle_session_timeout",
    "tcp_keepalives_idle",
    "tcp_keepalives_interval",
    "tcp_keepalives_count",
    "client_connection_check_interval",
    "deadlock_timeout",
    // WAL, checkpoints, replication slots
    "max_wal_size",
    "min_wal_size",
    "checkpoint_timeout",
    "checkpoint_completion_target",
    "checkpoint_warning",
    "wal_compression",
    "wal_writer_delay",
    "wal_writer_flush_after",
    "commit_delay",
    "commit_siblings",
    "synchronous_commit",
    "wal_level",
    "max_wal_senders",
    "max_replication_slots",
    "wal_keep_size",
    "max_slot_wal_keep_size",
    "hot_standby_feedback",
    // planner and parallelism
    "random_page_cost",
    "seq_page_cost",
    "cpu_tuple_cost",
    "cpu_index_tuple_cost",
    "cpu_operator_cost",
    "parallel_setup_cost",
    "parallel_tuple_cost",
    "effective_io_concurrency",
    "maintenance_io_concurrency",
    "default_statistics_target",
    "jit",
    "join_collapse_limit",
    "from_collapse_limit",
    "plan_cache_mode",
    "geqo",
    "geqo_threshold",
    "max_worker_processes",
    "max_parallel_workers",
    "max_parallel_workers_per_gather",
    "max_parallel_maintenance_workers",
    "parallel_leader_participation",
    // locks and transactions
    "max_locks_per_transaction",
    "max_pred_locks_per_transaction",
    "max_prepared_transactions",
    "default_transaction_isolation",
    "max_files_per_process",
    // autovacuum and vacuum (also every autovacuum_* below)
    "autovacuum",
    "vacuum_cost_delay",
    "vacuum_cost_limit",
    "vacuum_freeze_min_age",
    "vacuum_freeze_table_age",
    "vacuum_multixact_freeze_min_age",
    "vacuum_multixact_freeze_table_age",
    "vacuum_failsafe_age",
    "vacuum_multixact_failsafe_age",
    // WAL: how old the newest archived WAL may grow on a quiet instance (the environment's
    // point-in-time policy sets it; an instance may ask for less or more)
    "archive_timeout",
    // background writer
    "bgwriter_delay",
    "bgwriter_lru_maxpages",
    "bgwriter_lru_multiplier",
    "bgwriter_flush_after",
    // statistics and logging
    "track_io_timing",
    "track_wal_io_timing",
    "track_functions",
    "track_activity_query_size",
    "log_min_duration_statement",
    "log_statement",
    "log_checkpoints",
    "log_connections",
    "log_disconnections",
    "log_lock_waits",
    "log_temp_files",
    "log_autovacuum_min_duration",
    "log_line_prefix",
    "log_min_messages",
    "log_min_error_statement",
    "log_timezone",
    // locale and formatting defaults
    "timezone",
    "datestyle",
    "intervalstyle",
    "default_text_search_config",
    "lc_messages",
    "lc_monetary",
    "lc_numeric",
    "lc_time",
    "extra_float_digits",
    // extensions' own knobs that need no preloading
    "pg_stat_statements.max",
    "pg_stat_statements.track",
    "pg_stat_statements.save",
];

/// Whole families allowed by prefix: planner switches and autovacuum tuning.
const ALLOWED_PREFIXES: &[&str] = &["enable_", "autovacuum_"];

fn allowed(name: &str) -> bool {
    ALLOWED.contains(&name) || ALLOWED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// A problem with one setting: (name, code, message).
pub type SettingError = (String, &'static str, String);

/// Checks names and value text without running anything.
pub fn check_syntax(settings: &Settings) -> Vec<SettingError> {
    let mut errs = Vec::new();
    if settings.len() > 200 {
        errs.push((String::new(), "too_many", "at most 200 settings".into()));
    }
    for (name, value) in settings {
        let valid_part = |p: &str| {
            p.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        if name.len() > 63 || name.split('.').count() > 2 || !name.split('.').all(valid_part) {
            errs.push((
                name.clone(),
                "invalid_name",
                "a parameter name is lowercase letters, digits and '_' (custom ones: prefix.name)".into(),
            ));
        } else if RESERVED.contains(&name.as_str()) {
            errs.push((
                name.clone(),
                "reserved",
                format!("{name} is set by the service (layout, TLS and authentication of managed instances)"),
            ));
        } else if !allowed(name) {
            errs.push((
                name.clone(),
                "not_allowed",
                format!(
                    "{name} is not among the parameters platform admins may set (memory, connections, timeouts, \
                     WAL, planner, parallelism, autovacuum, logging); see docs/runbooks/managed-instances.md"
                ),
            ));
        }
        if value.len() > 1024 || value.chars().any(char::is_control) {
            errs.push((
                name.clone(),
                "invalid_value",
                "values are at most 1024 characters, without control characters".into(),
            ));
        }
    }
    errs
}

/// Asks the server binary whether each setting is valid. `scratch` is a directory on the host
/// with an empty postgresql.conf, readable by the postgres user.
pub async fn check_values(
    exec: &HostExec,
    bin: &str,
    scratch: &str,
    settings: &Settings,
) -> Result<Vec<SettingError>, ExecError> {
    let postgres = &format!("{bin}/postgres");
    let run = |pairs: Vec<(&String, &String)>| {
        let mut args = vec!["-D".to_string(), scratch.to_string(), "-C".into(), "port".into()];
        for (k, v) in pairs {
            args.push("-c".into());
            args.push(format!("{k}={v}"));
        }
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            exec.run(&Command::new(postgres, &refs)?.as_postgres()).await
        }
    };
    // One run for all; only when it fails, one per setting to say which.
    match run(settings.iter().collect()).await {
        Ok(_) => return Ok(Vec::new()),
        Err(ExecError::Failed { .. }) => {}
        Err(e) => return Err(e),
    }
    let mut errs = Vec::new();
    for (k, v) in settings {
        match run(vec![(k, v)]).await {
            Ok(_) => {}
            Err(ExecError::Failed { stderr, .. }) => {
                let code = if stderr.contains("unrecognized configuration parameter") {
                    "unknown_setting"
                } else {
                    "invalid_value"
                };
                errs.push((k.clone(), code, server_message(&stderr)));
            }
            Err(e) => return Err(e),
        }
    }
    if errs.is_empty() {
        // Each is fine alone but not together (rare: e.g. limits that depend on each other).
        errs.push((String::new(), "invalid_combination", "the server refuses these settings together".into()));
    }
    Ok(errs)
}

/// The FATAL line (and HINT) of a server message, without timestamps.
fn server_message(stderr: &str) -> String {
    let parts: Vec<&str> = stderr
        .lines()
        .filter_map(|l| {
            ["FATAL:", "HINT:", "DETAIL:"].iter().find_map(|tag| l.find(tag).map(|i| l[i + tag.len()..].trim()))
        })
        .collect();
    if parts.is_empty() {
        stderr.trim().to_string()
    } else {
        parts.join(" ")
    }
}

/// Makes (once) the empty configuration the checks run against.
pub async fn scratch_dir(exec: &HostExec, data_root: &str) -> Result<String, ExecError> {
    let dir = format!("{data_root}/.settings-check");
    let conf = format!("{dir}/postgresql.conf");
    exec.run(&Command::new("/bin/mkdir", &["-p", "-m", "0700", &dir])?.as_postgres()).await?;
    exec.run(&Command::new("/usr/bin/touch", &[&conf])?.as_postgres()).await?;
    Ok(dir)
}

/// A postgresql.conf value, quoted (every type accepts the quoted form).
fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "''"))
}

/// The include file: what the service needs, then the instance's own settings (allow-listed
/// tuning only, so they never override the lines above).
pub fn render_conf(node: &Node, settings: &Settings, archiving: Option<&str>) -> String {
    let mut conf = format!(
        "# Written by dbaas-api for instance {name}; edits are overwritten.\n\
         listen_addresses = '*'\n\
         port = {port}\n\
         unix_socket_directories = {run}\n\
         password_encryption = 'scram-sha-256'\n\
         ssl = on\n\
         ssl_cert_file = 'server.crt'\n\
         ssl_key_file = 'server.key'\n\
         ssl_ca_file = 'ca.crt'\n",
        name = node.name,
        port = node.port,
        run = quote(&node.run_dir()),
    );
    if let Some(lines) = archiving {
        conf.push_str(lines);
    }
    for (k, v) in settings {
        conf.push_str(&format!("{k} = {}\n", quote(v)));
    }
    conf
}

/// Only TLS + SCRAM from the network; locally, the postgres system user by peer
/// authentication (how the service bootstraps its admin role). Nothing else matches.
pub const HBA: &str = "# Written by dbaas-api; edits are overwritten.\n\
    local   all  postgres                peer\n\
    hostssl all  all       0.0.0.0/0     scram-sha-256\n\
    hostssl all  all       ::/0          scram-sha-256\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax() {
        let s = |pairs: &[(&str, &str)]| -> Settings {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        assert!(check_syntax(&s(&[("work_mem", "64MB"), ("enable_seqscan", "off"), ("autovacuum_naptime", "1min")]))
            .is_empty());
        let errs = check_syntax(&s(&[("Work_Mem", "1"), ("port", "1"), ("a;b", "1"), ("work_mem", "a\nb")]));
        let codes: Vec<&str> = errs.iter().map(|e| e.1).collect();
        assert_eq!(codes, vec!["invalid_name", "invalid_name", "reserved", "invalid_value"], "{errs:?}");
        // What a deny-list let through: shell commands, preloaded code, TLS policy, fsync.
        for name in [
            "archive_command",
            "restore_command",
            "shared_preload_libraries",
            "session_preload_libraries",
            "local_preload_libraries",
            "ssl_min_protocol_version",
            "fsync",
            "myapp.mode",
            "listen_addresses",
            "ssl_ciphers",
            "dynamic_library_path",
            "log_directory",
            "cluster_name",
        ] {
            let errs = check_syntax(&s(&[(name, "x")]));
            assert_eq!(errs.iter().map(|e| e.1).collect::<Vec<_>>(), vec!["not_allowed"], "{name}");
        }
        // The layout the service owns has its own code.
        for name in ["data_directory", "hba_file", "port", "ssl", "ssl_key_file", "unix_socket_directories"] {
            let errs = check_syntax(&s(&[(name, "x")]));
            assert_eq!(errs.iter().map(|e| e.1).collect::<Vec<_>>(), vec!["reserved"], "{name}");
        }
        // The ordinary tuning knobs stay settable.
        for name in [
            "max_connections",
            "statement_timeout",
            "idle_in_transaction_session_timeout",
            "log_min_duration_statement",
            "log_statement",
            "autovacuum_vacuum_scale_factor",
            "random_page_cost",
            "effective_cache_size",
        ] {
            assert!(check_syntax(&s(&[(name, "1")])).is_empty(), "{name}");
        }
        assert_eq!(quote("it's \\ ok"), "'it''s \\\\ ok'");
        assert_eq!(
            server_message(
                "2026 GMT [1] FATAL:  invalid value for parameter \"jit\": \"x\"\n2026 GMT [1] HINT:  Use on."
            ),
            "invalid value for parameter \"jit\": \"x\" Use on."
        );
    }
}
