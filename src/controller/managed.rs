//! Managed signing keys (`spec.managedKeys`, `private_key_jwt`): the backend holds only public
//! keys, the Secret the private one. A rotation never changes the client id and never breaks
//! a workload: the new key is written to the Secret as `next_private_key` first (so a kill never
//! loses it), published beside the current one, then handed over as the current key; the old
//! public key stays published, recorded in `status.previousKey`, until the overlap ends. A kill
//! at any step leaves a working key in the Secret and at most two keys published: a pass that
//! finds a key not handed over finishes the rotation with it.

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::{
    Context, Error,
    client::{Delivery, announce_rotation, deliver},
    credentials::Rotation,
    lists::Listed,
    rotation::overlap,
    secret::{self, Held},
    target::{Target, now, rfc3339},
};
use kube::ResourceExt;

use crate::{
    api::{OAuthClient, OAuthClientStatus, PreviousKey, ROTATE_ANNOTATION},
    backend::{self, SecretString},
    keys::{self, Key},
};

fn algorithm(obj: &OAuthClient) -> Option<keys::Algorithm> {
    obj.spec.managed_keys.as_ref().map(|m| m.algorithm.keys())
}

/// A key the Secret holds, read back; `None` when it holds none or one that does not parse.
fn read(obj: &OAuthClient, pem: Option<&SecretString>) -> Option<Key> {
    keys::read(algorithm(obj)?, pem?.expose()).ok()
}

/// The JWKS the backend should hold, where keys are managed: the Secret's key and one not
/// handed over yet, and the previous key until it retires (dropped from the status then).
pub(super) fn published(obj: &OAuthClient, held: &Held, status: &mut OAuthClientStatus) -> Option<Value> {
    algorithm(obj)?;
    let retired = |p: &PreviousKey| p.retires_at.parse::<Timestamp>().is_ok_and(|at| at <= Timestamp::now());
    if status.previous_key.as_ref().is_some_and(retired) {
        status.previous_key = None;
    }
    let previous = status.previous_key.as_ref().and_then(|p| serde_json::from_str::<Value>(&p.jwk).ok());
    let current = [held.current.as_ref(), held.next.as_ref()].into_iter().filter_map(|pem| read(obj, pem));
    let public: Vec<Value> = previous.into_iter().chain(current.map(|k| k.public)).collect();
    Some(keys::jwks(&public))
}

/// The key a new client starts with: the Secret's own (a create a kill cut short wrote it
/// first), else a new one, written to the Secret before the backend publishes it.
pub(super) async fn first_key(
    obj: &OAuthClient,
    ctx: &Context,
    t: &Target,
    (held, backend_id): (&Held, &str),
    delivery: Delivery<'_>,
) -> Result<Key, Error> {
    if let Some(key) = read(obj, held.current.as_ref()) {
        return Ok(key);
    }
    let key = generate(obj)?;
    let request = obj.annotations().get(ROTATE_ANNOTATION).cloned();
    let credentials = credentials(t, (backend_id, request), Some(key.pem.clone()), None);
    deliver(ctx, delivery.secrets, obj, t, credentials, delivery.existing).await?;
    Ok(key)
}

/// Rotates the managed key of `current` (see the module): `lost` (the Secret was missing or
/// edited) withdraws the old key at once instead of after the overlap.
#[allow(clippy::too_many_arguments)]
pub(super) async fn rotate(
    obj: &OAuthClient,
    ctx: &Context,
    t: &Target,
    (wanted, held): (&backend::ClientSettings, &Held),
    current: &Listed,
    rotation: Rotation,
    delivery: Delivery<'_>,
    status: &mut OAuthClientStatus,
) -> Result<(), Error> {
    let lost = rotation == Rotation::Regenerate;
    let old = read(obj, held.current.as_ref()).filter(|_| !lost);
    let request = status.last_handled_rotate_request.clone();
    let next = match read(obj, held.next.as_ref()) {
        Some(key) => key,
        None => {
            let key = generate(obj)?;
            let pending = credentials(
                t,
                (&current.id, request.clone()),
                old.as_ref().map(|k| k.pem.clone()),
                Some(key.pem.clone()),
            );
            deliver(ctx, delivery.secrets, obj, t, pending, delivery.existing).await?;
            key
        }
    };
    // One overlap at a time: a previous key still serving is withdrawn now.
    let mut settings = wanted.clone();
    let public: Vec<&Value> = old.iter().map(|k| &k.public).chain([&next.public]).collect();
    settings.jwks = Some(keys::jwks(public));
    let updated =
        t.backend.update_client(&t.app, &current.id, &settings).await.map_err(Error::backend("publish the new key"))?;
    ctx.lists.put(&t.name, &t.app, updated.into()).await;
    let answered = super::client::pending_request(obj, status).or(request);
    let handed = credentials(t, (&current.id, answered), Some(next.pem.clone()), None);
    let issued_at = handed.issued_at.clone();
    deliver(ctx, delivery.secrets, obj, t, handed, delivery.existing).await?;
    status.last_rotated_at = issued_at;
    status.previous_key = old.map(|k| PreviousKey {
        kid: k.kid,
        jwk: k.public.to_string(),
        retires_at: rfc3339(Timestamp::now() + overlap(obj)),
    });
    announce_rotation(obj, ctx, rotation, None, status).await;
    Ok(())
}

fn generate(obj: &OAuthClient) -> Result<Key, Error> {
    let algorithm = algorithm(obj).expect("managed keys");
    keys::generate(algorithm).map_err(|message| Error::backend("generate a key")(backend::Error::Transient { message }))
}

/// The credentials Secret's content for a managed key (`key`) and a key not handed over yet,
/// recording the rotate request it answers.
fn credentials(
    t: &Target,
    (backend_id, rotate_request): (&str, Option<String>),
    key: Option<SecretString>,
    next: Option<SecretString>,
) -> secret::Credentials {
    secret::Credentials {
        client_id: backend_id.to_string(),
        client_secret: key,
        backend_id: backend_id.to_string(),
        rotate_request,
        endpoints: t.endpoints.clone(),
        issued_at: Some(now()),
        previous: None,
        next_key: next,
    }
}
