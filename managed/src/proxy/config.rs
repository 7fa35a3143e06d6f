//! The proxy's configuration as data: what a host's pgbouncer should route and admit,
//! rendered to its three files (`pgbouncer.ini`, `hba.conf`, `userlist.txt`). Pure and
//! tested without a server; [`super::desired`] fills it from the state database.
//!
//! Every name that reaches a file is one the service made (physical database and role
//! names) and is checked again here: a name outside `[a-z0-9_-]` is refused, never written.

use dbaas_client::PoolMode;

/// The OS user the proxy runs as, and the only admin-console user (peer authentication on
/// the unix socket; refused over TCP).
pub const ADMIN_USER: &str = "postgres";

/// One routed database: its physical name and its cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub database: String,
    /// The cluster's address: the name its server certificate carries (verify-full).
    pub server_host: String,
    pub server_port: u16,
    pub pool_mode: PoolMode,
    /// Server connections the proxy may open to this database (all its logins together).
    pub pool_size: u32,
    /// The logins that may reach it through the proxy.
    pub users: Vec<String>,
}

/// A login and the SCRAM verifier its cluster has (the same salt and iterations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub name: String,
    pub verifier: String,
}

/// Everything the proxy of one host is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySpec {
    pub listen_addr: String,
    pub port: u16,
    /// The proxy's directory on the host (`<data_root>/.proxy`).
    pub dir: String,
    /// File names (in `dir`) of the client-side certificate and key and of the CA bundle the
    /// clusters' certificates are checked against.
    pub client_cert: String,
    pub client_key: String,
    pub server_ca: String,
    pub routes: Vec<Route>,
    pub logins: Vec<Login>,
}

/// The rendered files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub ini: String,
    pub hba: String,
    pub userlist: String,
}

impl Rendered {
    /// A digest of all three: what the host last applied is compared with it.
    pub fn digest(&self) -> String {
        let mut all = Vec::new();
        for part in [&self.ini, &self.hba, &self.userlist] {
            all.extend_from_slice(part.as_bytes());
            all.push(0);
        }
        hex(&dbaas_crypto::sha256(&all))
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A name the service made: lower-case letters, digits, `_`, `-`; at most 63 bytes.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        && name != "pgbouncer"
        && name != ADMIN_USER
}

/// A verifier as PostgreSQL stores it: nothing that could break out of its quotes.
fn valid_verifier(v: &str) -> bool {
    v.starts_with("SCRAM-SHA-256$")
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'$' | b':' | b'+' | b'/' | b'=' | b'-'))
}

/// A host name or address for the ini's `host=`.
fn valid_host(h: &str) -> bool {
    !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'))
}

/// A StoredKey/ServerKey that no password has (SHA-256 has no known zero preimage): the
/// admin user must be in the auth file for peer logins, and must never log in otherwise.
const UNUSABLE_VERIFIER: &str = "SCRAM-SHA-256$4096:AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

pub fn render(spec: &ProxySpec) -> Result<Rendered, String> {
    if !valid_host(&spec.listen_addr) {
        return Err(format!("listen address {:?} is not a host name or address", spec.listen_addr));
    }
    let mut ini =
        String::from("; Written by the dbaas service from its state database; edits are overwritten.\n[databases]\n");
    let mut hba = String::from(
        "# Written by the dbaas service. The admin console: the proxy's OS user on its unix socket only.\n\
         local pgbouncer postgres peer\n\
         hostssl pgbouncer all 0.0.0.0/0 reject\n\
         hostssl pgbouncer all ::/0 reject\n\
         hostssl all postgres 0.0.0.0/0 reject\n\
         hostssl all postgres ::/0 reject\n",
    );
    for r in &spec.routes {
        if !valid_name(&r.database) {
            return Err(format!("refusing to route database {:?}: not a name the service makes", r.database));
        }
        if !valid_host(&r.server_host) {
            return Err(format!("cluster address {:?} is not a host name or address", r.server_host));
        }
        if let Some(bad) = r.users.iter().find(|u| !valid_name(u)) {
            return Err(format!("refusing login {bad:?}: not a name the service makes"));
        }
        let size = r.pool_size.max(1);
        ini.push_str(&format!(
            "{db} = host={host} port={port} dbname={db} pool_mode={mode} pool_size={size} max_db_connections={size}\n",
            db = r.database,
            host = r.server_host,
            port = r.server_port,
            mode = r.pool_mode.as_str(),
        ));
        // Each database admits its own logins only (the cluster checks CONNECT too); a line
        // per login, however many leases a database has (no line grows without bound).
        for user in &r.users {
            for net in ["0.0.0.0/0", "::/0"] {
                hba.push_str(&format!("hostssl {} {user} {net} scram-sha-256\n", r.database));
            }
        }
    }
    let dir = &spec.dir;
    ini.push_str(&format!(
        "\n[pgbouncer]\n\
         listen_addr = {listen}\n\
         listen_port = {port}\n\
         unix_socket_dir = {dir}/run\n\
         unix_socket_mode = 0700\n\
         pidfile = {dir}/pgbouncer.pid\n\
         logfile = {dir}/pgbouncer.log\n\
         log_connections = 0\n\
         log_disconnections = 0\n\
         auth_type = hba\n\
         auth_hba_file = {dir}/hba.conf\n\
         auth_file = {dir}/userlist.txt\n\
         admin_users = {ADMIN_USER}\n\
         client_tls_sslmode = require\n\
         client_tls_cert_file = {dir}/{cert}\n\
         client_tls_key_file = {dir}/{key}\n\
         server_tls_sslmode = verify-full\n\
         server_tls_ca_file = {dir}/{ca}\n\
         max_client_conn = 2000\n\
         default_pool_size = 1\n\
         server_login_retry = 2\n\
         ignore_startup_parameters = extra_float_digits\n",
        listen = spec.listen_addr,
        port = spec.port,
        cert = spec.client_cert,
        key = spec.client_key,
        ca = spec.server_ca,
    ));
    let mut userlist = format!("\"{ADMIN_USER}\" \"{UNUSABLE_VERIFIER}\"\n");
    for l in &spec.logins {
        if !valid_name(&l.name) {
            return Err(format!("refusing login {:?}: not a name the service makes", l.name));
        }
        if !valid_verifier(&l.verifier) {
            return Err(format!("the verifier of {} is not a SCRAM-SHA-256 verifier", l.name));
        }
        userlist.push_str(&format!("\"{}\" \"{}\"\n", l.name, l.verifier));
    }
    Ok(Rendered { ini, hba, userlist })
}

/// Server connections each database of an instance may have: what `max_connections`
/// leaves (less the superuser reserve and two for the service), shared evenly, and never
/// more than the database's own connection limit.
pub fn pool_size(max_connections: u32, reserved: u32, databases: u32, connection_limit: i32) -> u32 {
    let budget = max_connections.saturating_sub(reserved + 2).max(1);
    let share = (budget / databases.max(1)).max(1);
    match u32::try_from(connection_limit) {
        Ok(limit) if limit > 0 => share.min(limit),
        _ => share,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ProxySpec {
        ProxySpec {
            listen_addr: "127.0.0.1".into(),
            port: 6432,
            dir: "/var/lib/dbaas/.proxy".into(),
            client_cert: "client-ab.crt".into(),
            client_key: "client-ab.key".into(),
            server_ca: "servers-cd.crt".into(),
            routes: vec![Route {
                database: "acme_app".into(),
                server_host: "127.0.0.1".into(),
                server_port: 5500,
                pool_mode: PoolMode::Transaction,
                pool_size: 15,
                users: vec!["acme_app__read".into(), "acme_app__write".into()],
            }],
            logins: vec![Login {
                name: "acme_app__read".into(),
                verifier: "SCRAM-SHA-256$4096:c2FsdA==$a2V5:c2Vy".into(),
            }],
        }
    }

    #[test]
    fn renders_routes_hba_and_logins() {
        let r = render(&spec()).expect("renders");
        assert!(r.ini.contains(
            "acme_app = host=127.0.0.1 port=5500 dbname=acme_app pool_mode=transaction pool_size=15 max_db_connections=15\n"
        ));
        assert!(r.ini.contains("server_tls_sslmode = verify-full\n"));
        assert!(r.ini.contains("server_tls_ca_file = /var/lib/dbaas/.proxy/servers-cd.crt\n"));
        assert!(r.ini.contains("client_tls_sslmode = require\n"));
        assert!(r.hba.contains("hostssl acme_app acme_app__read 0.0.0.0/0 scram-sha-256\n"));
        assert!(r.hba.contains("hostssl acme_app acme_app__write ::/0 scram-sha-256\n"));
        // The console: peer on the socket, refused over TCP before any database line.
        let reject = r.hba.find("hostssl pgbouncer all 0.0.0.0/0 reject").expect("reject");
        assert!(reject < r.hba.find("hostssl acme_app").expect("route"));
        assert!(!r.hba.lines().any(|l| l.starts_with("host ")), "never without TLS");
        assert!(r.userlist.contains("\"acme_app__read\" \"SCRAM-SHA-256$4096:c2FsdA==$a2V5:c2Vy\"\n"));
        assert_eq!(r.digest(), render(&spec()).expect("again").digest());
    }

    #[test]
    fn refuses_names_it_did_not_make() {
        for bad in ["a b", "x\ny", "a\"b", "pgbouncer", "postgres", "", "UPPER", "a=b", "a;b"] {
            let mut s = spec();
            s.routes[0].database = bad.into();
            assert!(render(&s).is_err(), "{bad:?} as a database");
            let mut s = spec();
            s.logins[0].name = bad.into();
            assert!(render(&s).is_err(), "{bad:?} as a login");
        }
        let mut s = spec();
        s.logins[0].verifier = "md5abc\" \"x".into();
        assert!(render(&s).is_err());
        let mut s = spec();
        s.routes[0].server_host = "h port=1".into();
        assert!(render(&s).is_err());
    }

    #[test]
    fn pools_share_the_connection_budget() {
        // max_connections 20, 3 reserved, 2 for the service: 15 for the proxy.
        assert_eq!(pool_size(20, 3, 1, -1), 15);
        assert_eq!(pool_size(20, 3, 2, -1), 7);
        assert_eq!(pool_size(20, 3, 1, 5), 5);
        assert_eq!(pool_size(4, 3, 9, -1), 1, "never zero");
    }
}
