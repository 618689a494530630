//! The one error type of a pass, which decides its whole outcome: the Ready reason, Stalled or
//! Reconciling, the event, the retry.

use std::{sync::Arc, time::Duration};

use kube::{
    Resource,
    core::DeserializeGuard,
    runtime::{controller::Action, events::EventType},
};

use super::{Context, conditions, key_of, trigger};
use crate::{
    api::InvalidSpec,
    backend::{self, ErrorCategory},
};

/// What can stop a reconcile. Messages never carry a secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid spec: {0}")]
    InvalidSpec(#[from] InvalidSpec),
    #[error("no backend named {0:?} in the operator's configuration")]
    UnknownBackend(String),
    #[error("{0}")]
    Waiting(Waiting),
    /// The backend holds something the spec cannot change; retrying cannot help.
    #[error("{message}")]
    Refused { reason: &'static str, message: String },
    /// Something this resource names belongs to another (a Secret, a backend app or client):
    /// nothing is written until it is let go, which is checked again at each resync.
    #[error("{message}")]
    Conflict { reason: &'static str, message: String },
    #[error("backend {op}: {source}")]
    Backend { op: &'static str, source: backend::Error },
    #[error("kubernetes {op}: {source}")]
    Kube { op: &'static str, source: kube::Error },
}

/// A dependency that is not there yet; the watches requeue the resource when it comes.
#[derive(Debug)]
pub struct Waiting {
    pub reason: &'static str,
    pub message: String,
}

impl std::fmt::Display for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error {
    pub fn backend(op: &'static str) -> impl FnOnce(backend::Error) -> Error {
        move |source| Error::Backend { op, source }
    }

    pub fn kube(op: &'static str) -> impl FnOnce(kube::Error) -> Error {
        move |source| Error::Kube { op, source }
    }

    /// The `Ready=False` reason for this error.
    pub fn reason(&self) -> &'static str {
        use conditions::reason::*;
        match self {
            Error::InvalidSpec(_) => INVALID_SPEC,
            Error::UnknownBackend(_) => BACKEND_NOT_CONFIGURED,
            Error::Waiting(w) => w.reason,
            Error::Refused { reason, .. } | Error::Conflict { reason, .. } => reason,
            Error::Backend { source: backend::Error::Unsendable { .. }, .. } => INVALID_SPEC,
            Error::Backend { source, .. } => match source.category() {
                ErrorCategory::Unauthorized => BACKEND_CREDENTIALS_REJECTED,
                ErrorCategory::Invalid
                | ErrorCategory::Conflict
                | ErrorCategory::Unsupported
                | ErrorCategory::NotFound => BACKEND_REJECTED,
                ErrorCategory::RateLimited => BACKEND_RATE_LIMITED,
                ErrorCategory::Transient => BACKEND_UNAVAILABLE,
            },
            Error::Kube { .. } => KUBERNETES_ERROR,
        }
    }

    /// Waiting for a dependency is expected while resources are created together: a Normal
    /// event; anything else is a Warning.
    pub fn event_type(&self) -> EventType {
        match self {
            Error::Waiting(_) => EventType::Normal,
            _ => EventType::Warning,
        }
    }

    /// The message of the `Ready=False` condition.
    pub fn message(&self) -> String {
        match self {
            Error::Backend { source, .. } if source.category() == ErrorCategory::Unauthorized => {
                format!("the backend rejected the operator's API key (check the backend credentials): {self}")
            }
            _ => self.to_string(),
        }
    }

    /// Whether progress needs someone to change something (the spec, the backend, its API key),
    /// as opposed to time passing.
    pub fn stalled(&self) -> bool {
        match self {
            Error::InvalidSpec(_) | Error::UnknownBackend(_) | Error::Refused { .. } | Error::Conflict { .. } => true,
            Error::Backend { source, .. } => {
                !matches!(source.category(), ErrorCategory::Transient | ErrorCategory::RateLimited)
            }
            Error::Waiting(_) | Error::Kube { .. } => false,
        }
    }

    /// When to try again: `None` waits for a change of the resource (retrying cannot help).
    /// Waiting for a dependency is not backed off: its watch brings the resource back.
    fn retry(&self, ctx: &Context, key: &str, trigger: String) -> Option<Duration> {
        match self {
            Error::InvalidSpec(_) | Error::UnknownBackend(_) | Error::Refused { .. } => None,
            Error::Waiting(_) => Some(ctx.resync.min(Duration::from_secs(60))),
            Error::Conflict { .. } => Some(ctx.resync),
            Error::Backend { source: backend::Error::RateLimited { retry_after }, .. } => {
                Some(ctx.backoffs.next(key, trigger, *retry_after))
            }
            Error::Backend { source, .. } if source.category() == ErrorCategory::Invalid => None,
            _ => Some(ctx.backoffs.next(key, trigger, None)),
        }
    }

    /// A short label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Error::InvalidSpec(_) => "invalid_spec",
            Error::UnknownBackend(_) => "unknown_backend",
            Error::Waiting(_) => "waiting",
            Error::Refused { .. } => "refused",
            Error::Conflict { .. } => "conflict",
            Error::Backend { source, .. } => source.category().label(),
            Error::Kube { .. } => "kubernetes",
        }
    }
}

/// The action after a failed reconcile (the condition is already written by then).
pub(super) fn error_action<K: Resource>(err: &Error, ctx: &Context, obj: &K) -> Action {
    match err.retry(ctx, &key_of(obj), trigger(obj)) {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    }
}

/// What the controllers do after a failed pass (its condition is written by then): log it and
/// retry as the error says.
pub(super) fn error_policy<K: Resource<DynamicType = ()>>(
    guard: Arc<DeserializeGuard<K>>,
    err: &Error,
    ctx: Arc<Context>,
) -> Action {
    let Ok(obj) = &guard.0 else {
        return Action::await_change();
    };
    let key = key_of(obj);
    tracing::info!(object = %key, error = %err, kind = err.label(), "{} not reconciled", K::kind(&()).to_lowercase());
    error_action(err, &ctx, obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_the_spec_cannot_make_is_an_invalid_spec() {
        let source = backend::Error::Unsendable { message: "ownerOrgId: set spec.application.ownerOrgId".into() };
        let err = Error::Backend { op: "create client", source };
        assert_eq!(err.reason(), conditions::reason::INVALID_SPEC);
        assert!(err.stalled(), "waits for a change of the spec");
        assert_eq!(
            err.message(),
            "backend create client: cannot make the request: ownerOrgId: set spec.application.ownerOrgId"
        );
    }
}
