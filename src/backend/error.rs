//! Backend errors, classified the way `docs/design.md` (reconcile rule 6) treats them.

use std::time::Duration;

/// The shortest and the longest wait a backend may ask for: what it asks beyond is clamped, so
/// that no answer parks a resource for months or overflows a clock.
pub const MIN_WAIT: Duration = Duration::from_secs(1);
pub const MAX_WAIT: Duration = Duration::from_secs(15 * 60);

/// What went wrong in a backend call. Messages come from the backend's error body and never
/// carry a secret: no request or response body holding one is ever formatted into them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The backend refused the request as invalid (400, 415, 422 and other 4xx): retrying the
    /// same request cannot help.
    #[error("backend rejected the request ({status}): {message}")]
    Invalid { status: u16, message: String },
    /// 401 or 403: the operator's API key for this backend is missing, wrong or not allowed.
    #[error("backend refused the API key ({status}): {message}")]
    Unauthorized { status: u16, message: String },
    /// 404.
    #[error("not found in the backend: {message}")]
    NotFound { message: String },
    /// 409: it exists already.
    #[error("already exists in the backend: {message}")]
    Conflict { message: String },
    /// 429: wait at least `retry_after` (within [`MIN_WAIT`, `MAX_WAIT`]) before the next
    /// call; without one, back off as from any transient error.
    #[error("backend rate limit hit{}", retry_after.map(|w| format!("; retry after {w:?}")).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx, timeouts, connection errors, unreadable responses: worth retrying with backoff.
    #[error("backend unavailable: {message}")]
    Transient { message: String },
    /// The backend has no such operation.
    #[error("the backend does not support {0}")]
    Unsupported(&'static str),
    /// The request cannot be made from the spec, found before any call: the spec must change.
    #[error("cannot make the request: {message}")]
    Unsendable { message: String },
}

/// The class of an error, for retry decisions, conditions, events and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCategory {
    Invalid,
    Unauthorized,
    NotFound,
    Conflict,
    RateLimited,
    Transient,
    Unsupported,
}

impl Error {
    /// The same error with each of `secrets` taken out of its message.
    pub fn redacted(self, secrets: &[String]) -> Error {
        let clean = |mut message: String| {
            for secret in secrets {
                message = message.replace(secret.as_str(), "<redacted>");
            }
            message
        };
        match self {
            Error::Invalid { status, message } => Error::Invalid { status, message: clean(message) },
            Error::Unauthorized { status, message } => Error::Unauthorized { status, message: clean(message) },
            Error::NotFound { message } => Error::NotFound { message: clean(message) },
            Error::Conflict { message } => Error::Conflict { message: clean(message) },
            Error::Transient { message } => Error::Transient { message: clean(message) },
            Error::Unsendable { message } => Error::Unsendable { message: clean(message) },
            other @ (Error::RateLimited { .. } | Error::Unsupported(_)) => other,
        }
    }

    pub fn category(&self) -> ErrorCategory {
        match self {
            Error::Invalid { .. } | Error::Unsendable { .. } => ErrorCategory::Invalid,
            Error::Unauthorized { .. } => ErrorCategory::Unauthorized,
            Error::NotFound { .. } => ErrorCategory::NotFound,
            Error::Conflict { .. } => ErrorCategory::Conflict,
            Error::RateLimited { .. } => ErrorCategory::RateLimited,
            Error::Transient { .. } => ErrorCategory::Transient,
            Error::Unsupported(_) => ErrorCategory::Unsupported,
        }
    }

    /// Classifies an HTTP error status. `retry_after` is the 429 wait the response asked for.
    pub fn from_status(status: u16, message: String, retry_after: Option<Duration>) -> Self {
        match status {
            401 | 403 => Error::Unauthorized { status, message },
            404 => Error::NotFound { message },
            409 => Error::Conflict { message },
            429 => Error::RateLimited { retry_after: retry_after.map(|w| w.clamp(MIN_WAIT, MAX_WAIT)) },
            400..=499 => Error::Invalid { status, message },
            _ => Error::Transient { message: format!("HTTP {status}: {message}") },
        }
    }
}

impl ErrorCategory {
    /// A short label for metrics and condition reasons.
    pub fn label(self) -> &'static str {
        match self {
            ErrorCategory::Invalid => "invalid",
            ErrorCategory::Unauthorized => "unauthorized",
            ErrorCategory::NotFound => "not_found",
            ErrorCategory::Conflict => "conflict",
            ErrorCategory::RateLimited => "rate_limited",
            ErrorCategory::Transient => "transient",
            ErrorCategory::Unsupported => "unsupported",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        let class = |s| Error::from_status(s, String::new(), None).category();
        assert_eq!(class(400), ErrorCategory::Invalid);
        assert_eq!(class(415), ErrorCategory::Invalid);
        assert_eq!(class(422), ErrorCategory::Invalid);
        assert_eq!(class(401), ErrorCategory::Unauthorized);
        assert_eq!(class(403), ErrorCategory::Unauthorized);
        assert_eq!(class(404), ErrorCategory::NotFound);
        assert_eq!(class(409), ErrorCategory::Conflict);
        assert_eq!(class(429), ErrorCategory::RateLimited);
        assert_eq!(class(500), ErrorCategory::Transient);
        assert_eq!(class(502), ErrorCategory::Transient);
    }

    #[test]
    fn rate_limit_keeps_retry_after_within_bounds() {
        let wait = |asked: Option<Duration>| match Error::from_status(429, String::new(), asked) {
            Error::RateLimited { retry_after } => retry_after,
            other => panic!("{other:?}"),
        };
        assert_eq!(wait(Some(Duration::from_secs(7))), Some(Duration::from_secs(7)));
        assert_eq!(wait(Some(Duration::ZERO)), Some(MIN_WAIT), "no hot loop");
        assert_eq!(wait(Some(Duration::from_secs(u64::MAX))), Some(MAX_WAIT), "no overflow, no months");
        assert_eq!(wait(None), None, "backs off like any transient error");
    }
}
