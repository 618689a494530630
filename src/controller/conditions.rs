//! Conditions as the Kubernetes API conventions describe them, with stable transition times
//! so that a status rewritten with the same meaning does not change.

use k8s_openapi::{
    apimachinery::pkg::apis::meta::v1::{Condition, Time},
    jiff::Timestamp,
};

pub const READY: &str = "Ready";
pub const DOMAIN_VERIFIED: &str = "DomainVerified";
/// kstatus (Flux) conventions, present only while true: still working towards the spec...
pub const RECONCILING: &str = "Reconciling";
/// ...or unable to get there without someone changing something.
pub const STALLED: &str = "Stalled";

/// Reasons, in PascalCase as the conventions ask.
pub mod reason {
    pub const RECONCILED: &str = "Reconciled";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const APP_NOT_READY: &str = "AppNotReady";
    pub const APP_NOT_FOUND: &str = "AppNotFound";
    pub const NAMESPACE_NOT_ALLOWED: &str = "NamespaceNotAllowed";
    pub const BACKEND_NOT_CONFIGURED: &str = "BackendNotConfigured";
    pub const BACKEND_CREDENTIALS_REJECTED: &str = "BackendCredentialsRejected";
    pub const BACKEND_REJECTED: &str = "BackendRejected";
    pub const BACKEND_UNAVAILABLE: &str = "BackendUnavailable";
    pub const BACKEND_RATE_LIMITED: &str = "BackendRateLimited";
    pub const SCOPE_MAPPING_IMMUTABLE: &str = "ScopeMappingImmutable";
    pub const DELETING: &str = "Deleting";
    pub const KUBERNETES_ERROR: &str = "KubernetesError";
    pub const VERIFIED: &str = "Verified";
    pub const PENDING: &str = "Pending";
    pub const CREDENTIALS_SECRET_NOT_READY: &str = "CredentialsSecretNotReady";
    /// The secret a user's Secret holds is one the backends would not take.
    pub const CREDENTIALS_SECRET_INVALID: &str = "CredentialsSecretInvalid";
    /// The ConfigMap key of `spec.logo` is not there yet (it may come in a later sync wave).
    pub const LOGO_NOT_READY: &str = "LogoNotReady";
    pub const REVOKED: &str = "Revoked";
    /// The credentials Secret's name is taken by a Secret this OAuthClient does not control.
    pub const SECRET_CONFLICT: &str = "SecretConflict";
    /// Another resource manages the backend object this one names.
    pub const ALREADY_CLAIMED: &str = "AlreadyClaimed";
    /// The backend object this resource names belongs to no resource, and the operator's
    /// configuration does not let this namespace adopt on that backend.
    pub const ADOPTION_NOT_ALLOWED: &str = "AdoptionNotAllowed";
    /// `spec.adoptId` names a backend client that does not exist.
    pub const ADOPTION_TARGET_NOT_FOUND: &str = "AdoptionTargetNotFound";
    /// The operator's configuration does not let this namespace use the backend (or the value
    /// the spec chose).
    pub const BACKEND_NOT_ALLOWED: &str = "BackendNotAllowed";
}

/// The messages of `Ready=True`. They tell the state, never what a pass did (events do): a
/// pass that finds the same state writes the same status, so it writes nothing, whether this
/// process saw the resource before or not.
pub mod settled {
    pub const APP: &str = "backend app matches the spec";
    pub const CLIENT: &str = "backend client and Secret match the spec";
    pub const REGISTERED: &str = "registered client matches the spec";
    pub const INACTIVE: &str = "inactive in the backend, as the spec asks";
}

/// `conditions` with `type_` set to the given state. The transition time moves only when the
/// status changes; an unchanged condition is kept as it was.
pub fn set(
    conditions: &[Condition],
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> Vec<Condition> {
    let status = if ok { "True" } else { "False" };
    let previous = conditions.iter().find(|c| c.type_ == type_);
    let last_transition_time = match previous {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => Time(Timestamp::now()),
    };
    let condition = Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time,
    };
    let mut out: Vec<Condition> = conditions.iter().filter(|c| c.type_ != type_).cloned().collect();
    out.push(condition);
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_moves_only_with_the_status() {
        let first = set(&[], READY, true, reason::RECONCILED, "ok".into(), Some(1));
        let again = set(&first, READY, true, reason::RECONCILED, "ok".into(), Some(2));
        assert_eq!(first[0].last_transition_time, again[0].last_transition_time);
        assert_eq!(again[0].observed_generation, Some(2));
        let failed = set(&again, READY, false, reason::INVALID_SPEC, "bad".into(), Some(2));
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].status, "False");
        let both = set(&failed, DOMAIN_VERIFIED, false, reason::PENDING, String::new(), Some(2));
        assert_eq!(both.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(), [DOMAIN_VERIFIED, READY]);
    }
}
