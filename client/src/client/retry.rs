//! Rate-limited calls: how long to wait before sending one again, and the error kept to
//! answer with when no retry is left (see [`super::Client::send`]).

use std::time::Duration;

use super::ClientError;
use crate::models::Problem;

/// How many times a rate-limited call is sent again.
pub const MAX_RETRIES: u32 = 4;
/// The longest single wait before sending a rate-limited call again.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);
/// The longest a call waits in all before answering with the 429 itself.
pub const MAX_RETRY_TOTAL: Duration = Duration::from_secs(60);

/// A 429's `Retry-After` (seconds) and body, kept to answer with if no retry is left.
#[derive(Debug)]
pub(super) struct RateLimited {
    pub(super) retry_after: Option<Duration>,
    pub(super) bytes: Vec<u8>,
}

/// One attempt's outcome when it did not succeed.
#[derive(Debug)]
pub(super) enum Retry {
    After(RateLimited),
    No(ClientError),
}

impl Retry {
    pub(super) fn into_error(self) -> ClientError {
        match self {
            Retry::After(r) => error_of(429, &r.bytes),
            Retry::No(e) => e,
        }
    }
}

/// The wait before retry number `attempt` (0-based): the server's `Retry-After`, else 1, 2,
/// 4, 8 s; never more than [`MAX_RETRY_WAIT`].
pub(super) fn retry_wait(hint: &RateLimited, attempt: u32) -> Duration {
    hint.retry_after.unwrap_or_else(|| Duration::from_secs(1u64 << attempt.min(5))).min(MAX_RETRY_WAIT)
}

/// A problem document's error, or the raw answer when the body is no problem.
pub(super) fn error_of(status: u16, bytes: &[u8]) -> ClientError {
    match serde_json::from_slice::<Problem>(bytes) {
        Ok(p) => ClientError::Api(Box::new(p)),
        Err(_) => ClientError::Unexpected { status, body: String::from_utf8_lossy(bytes).into_owned() },
    }
}

#[cfg(test)]
mod retry_tests {
    use super::*;

    #[test]
    fn waits_follow_retry_after_within_bounds() {
        let hint = |s: Option<u64>| RateLimited { retry_after: s.map(Duration::from_secs), bytes: vec![] };
        assert_eq!(retry_wait(&hint(Some(7)), 0), Duration::from_secs(7));
        assert_eq!(retry_wait(&hint(Some(600)), 0), MAX_RETRY_WAIT);
        let backoff: Vec<u64> = (0..4).map(|a| retry_wait(&hint(None), a).as_secs()).collect();
        assert_eq!(backoff, vec![1, 2, 4, 8]);
        let most: Duration = (0..MAX_RETRIES).map(|a| retry_wait(&hint(Some(u64::MAX)), a)).sum();
        assert!(most >= MAX_RETRY_TOTAL, "the total bound is what stops a server asking for long waits");
    }
}
