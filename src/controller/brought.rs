//! Clients whose secret the user brings (`spec.clientSecretRef`: a Secret that External
//! Secrets, Vault or Sealed Secrets keep): the operator registers that secret, never generates
//! one, and pushes it again whenever the Secret changes (a watch event, not a poll). The value
//! is read right before it is sent and not kept; what was pushed is remembered by the Secret's
//! `resourceVersion` in `status.credentialsSecretVersion`. The operator never writes that
//! Secret: it is another tool's.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt, runtime::events::EventType};

use super::{
    Context, Error, Waiting,
    client::{Delivery, deliver},
    conditions::reason,
    lists::Listed,
    secret,
    target::{Target, now},
};
use crate::{
    api::{ClientSecretRef, OAuthClient, OAuthClientStatus, ROTATE_ANNOTATION},
    backend::SecretString,
};

/// The secret of the user's Secret, and the version of the Secret it was read from.
pub(super) struct Brought {
    pub secret: SecretString,
    pub version: String,
}

impl Brought {
    /// Whether the backend already has this value (the status records the version pushed).
    pub fn pushed(&self, status: &OAuthClientStatus) -> bool {
        status.credentials_secret_version.as_deref() == Some(self.version.as_str())
    }

    /// The secret for the credentials Secret: only where the spec asks for a copy.
    pub fn copied(&self, obj: &OAuthClient) -> Option<SecretString> {
        obj.spec.client_secret_ref.as_ref().filter(|r| r.copy).map(|_| self.secret.clone())
    }
}

/// Keeps an existing client on the user's secret: pushes it when their Secret changed (or the
/// client was just taken over, its old secret unknown), and writes the credentials Secret when
/// it was `lost` (missing or edited) or holds a copy that changed. A rotate annotation is
/// answered by saying where rotation happens.
#[allow(clippy::too_many_arguments)]
pub(super) async fn settle(
    obj: &OAuthClient,
    ctx: &Context,
    t: &Target,
    current: &Listed,
    brought: &Brought,
    (taken_over, lost): (bool, bool),
    delivery: Delivery<'_>,
    status: &mut OAuthClientStatus,
) -> Result<(), Error> {
    let push = !brought.pushed(status) || taken_over;
    if push {
        push_secret(obj, ctx, t, &current.id, (&brought.secret, &brought.version), status).await?;
    }
    let copy = brought.copied(obj);
    if lost || (push && copy.is_some()) {
        let credentials = secret::Credentials {
            client_id: current.client_id.clone(),
            client_secret: copy,
            backend_id: current.id.clone(),
            rotate_request: status.last_handled_rotate_request.clone(),
            endpoints: t.endpoints.clone(),
            issued_at: status.last_rotated_at.clone(),
            previous: delivery.previous,
            next_key: None,
        };
        deliver(ctx, delivery.secrets, obj, t, credentials, delivery.existing).await?;
    }
    let request = obj.annotations().get(ROTATE_ANNOTATION);
    if request.is_some() && request != status.last_handled_rotate_request.as_ref() {
        let name = obj.spec.client_secret_ref.as_ref().map(|r| r.name.as_str()).unwrap_or_default();
        let note = format!(
            "the rotate annotation does not apply: the client secret comes from Secret {name}; rotate it at its source and the operator pushes the new value"
        );
        ctx.event(obj, EventType::Warning, "RotationNotApplicable", note).await;
    }
    Ok(())
}

/// Reads the secret from the user's Secret. While the Secret or its key is missing the pass
/// waits, before any backend write: no client is created with a secret of the operator's, and
/// one that exists keeps the secret last pushed. A value the backends would not take is
/// refused, without ever being quoted.
pub(super) async fn read(
    ctx: &Context,
    obj: &OAuthClient,
    r: &ClientSecretRef,
    exists: bool,
) -> Result<Brought, Error> {
    ctx.readers.waits_on_secret(obj, Some(&r.name));
    let ns = obj.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let secret = secrets.get_opt(&r.name).await.map_err(Error::kube("read the client secret's Secret"))?;
    let place = format!("the credentials Secret {ns}/{} key {}", r.name, r.key);
    let then = match exists {
        true => "the backend client keeps the secret last pushed",
        false => "no backend client is created until it does",
    };
    let waiting = |what: &str| {
        let message = format!("{place} {what}; {then}");
        Error::Waiting(Waiting { reason: reason::CREDENTIALS_SECRET_NOT_READY, message })
    };
    let Some(secret) = secret else { return Err(waiting("does not exist")) };
    let version = secret.metadata.resource_version.clone().unwrap_or_default();
    let data = secret.data.unwrap_or_default();
    let value = data.get(&r.key).map(|v| String::from_utf8_lossy(&v.0).trim().to_string()).filter(|v| !v.is_empty());
    let Some(value) = value else { return Err(waiting("is missing or empty")) };
    check(&value).map_err(|what| Error::Refused {
        reason: reason::CREDENTIALS_SECRET_INVALID,
        message: format!("{place} {what}"),
    })?;
    Ok(Brought { secret: SecretString::new(value), version })
}

/// Sets the backend client's secret to the one the user's Secret (at `version`) holds, and
/// records that version.
pub(super) async fn push_secret(
    obj: &OAuthClient,
    ctx: &Context,
    t: &Target,
    id: &str,
    (secret, version): (&SecretString, &str),
    status: &mut OAuthClientStatus,
) -> Result<(), Error> {
    t.backend.set_client_secret(&t.app, id, secret).await.map_err(Error::backend("push client secret"))?;
    status.credentials_secret_version = Some(version.to_string());
    status.last_rotated_at = Some(now());
    crate::metrics::metrics().rotations.inc();
    let note = "pushed the client secret of the user's Secret to the backend".into();
    ctx.event(obj, EventType::Normal, "SecretPushed", note).await;
    Ok(())
}

/// What both servers take as a client secret: 6 (Hydra's least) to 512 characters, printable
/// ASCII without spaces (a secret travels in HTTP Basic and form bodies).
fn check(value: &str) -> Result<(), String> {
    let length = value.chars().count();
    if !(6..=512).contains(&length) {
        return Err(format!("is {length} characters long; the backends take 6 to 512"));
    }
    if !value.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err("holds characters other than printable ASCII without spaces".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_the_backends_take_and_messages_that_never_quote_them() {
        assert!(check("abcdef").is_ok());
        assert!(check(&"x".repeat(512)).is_ok());
        let short = check("s3c").expect_err("too short");
        assert!(short.contains("3 characters") && !short.contains("s3c"), "{short}");
        assert!(check(&"x".repeat(513)).is_err());
        let spaced = check("with a space").expect_err("a space");
        assert!(!spaced.contains("with a space"), "{spaced}");
        assert!(check("ünïcode-secret").is_err());
    }
}
