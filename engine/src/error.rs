//! Errors of operations: PostgreSQL's SQLSTATE is kept, and whether a retry can help.

#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct OpError {
    pub code: String,
    pub message: String,
    pub retryable: bool,
}

impl OpError {
    pub fn permanent(code: &str, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into(), retryable: false }
    }
    pub fn retryable(code: &str, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into(), retryable: true }
    }
}

/// SQLSTATEs a later attempt may get past: connection trouble, serialization failures,
/// deadlocks, lock timeouts, shutdowns, too many connections.
fn retryable_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || matches!(code, "40001" | "40P01" | "55P03" | "57P01" | "57P02" | "57P03" | "53300" | "53400")
}

impl From<sqlx::Error> for OpError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.to_string()).unwrap_or_else(|| "XX000".into());
                let retryable = retryable_sqlstate(&code);
                Self { code, message: db.message().to_string(), retryable }
            }
            sqlx::Error::Io(io) => {
                let code = match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => "connection_refused",
                    std::io::ErrorKind::TimedOut => "timeout",
                    _ => "io_error",
                };
                Self::retryable(code, format!("cannot reach the instance: {io}"))
            }
            sqlx::Error::Tls(t) => Self::retryable("tls_error", format!("TLS with the instance failed: {t}")),
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => Self::retryable("pool_timeout", e.to_string()),
            sqlx::Error::Protocol(m) => Self::retryable("protocol_error", m.clone()),
            other => Self::permanent("internal", other.to_string()),
        }
    }
}

impl From<dbaas_crypto::CryptoError> for OpError {
    fn from(e: dbaas_crypto::CryptoError) -> Self {
        Self::permanent("secret_unreadable", e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::retryable_sqlstate;

    #[test]
    fn classification() {
        for c in ["08006", "08001", "40001", "40P01", "57P01", "53300"] {
            assert!(retryable_sqlstate(c), "{c}");
        }
        for c in ["42601", "42704", "23505", "42501", "0A000"] {
            assert!(!retryable_sqlstate(c), "{c}");
        }
    }
}
