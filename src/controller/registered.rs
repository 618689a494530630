//! OAuthClients in registered mode (`spec.registered`, the MCP OAuth clients API): the user
//! keeps an upstream provider's client id and secret in a Secret; the operator registers them
//! with the backend and pushes them again, in place, whenever that Secret changes.
//!
//! The secret is write-only: it is read from the user's Secret right before it is sent and is
//! never recorded. What was pushed is remembered by the Secret's `resourceVersion` in
//! `status.credentialsSecretVersion`, so any write to the Secret pushes once more. The
//! provider is unique in the backend's scope, so a client that exists already is found again
//! rather than duplicated: this resource's own (a crash after registering: the backend records
//! its UID, `backend::OWNER_METADATA`), or one that no resource owns, which it adopts only as the
//! first OAuthClient naming the provider and where the configuration lets its namespace adopt.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt, runtime::events::EventType};

use super::{
    Context, Error, Waiting,
    conditions::{reason, settled},
    desired,
    lists::Listed,
    target::{Target, find, now},
    tenancy,
};
use crate::{
    api::{OAuthClient, OAuthClientStatus, ROTATE_ANNOTATION, RegisteredSpec},
    backend::{self, Mode, SecretString},
};

/// The user's credentials as read from their Secret.
struct Upstream {
    client_id: String,
    secret: SecretString,
    version: String,
}

/// Brings the backend's registered client to the spec and the credentials Secret. Returns the
/// Ready message.
pub(super) async fn sync(
    obj: &OAuthClient,
    spec: &RegisteredSpec,
    ctx: &Context,
    t: &Target,
    status: &mut OAuthClientStatus,
) -> Result<String, Error> {
    ctx.readers.waits_on_secret(obj, Some(&spec.credentials_secret.name));
    tenancy::claim_client(ctx, obj).await?;
    let upstream = read_credentials(ctx, obj, spec).await?;
    let mut wanted = desired::client_settings(obj);
    if let Mode::Registered(r) = &mut wanted.mode {
        r.client_id.clone_from(&upstream.client_id);
    }
    let provider = spec.provider.clone();
    let current = match existing(ctx, t, &provider, status).await? {
        Some(c) => c,
        None => match t.backend.register_client(&t.app, &wanted, &upstream.secret).await {
            Ok(client) => {
                let client = Listed::from(client);
                ctx.lists.put(&t.name, &t.app, client.clone()).await;
                record(status, &client, &upstream);
                let note = format!("registered the {provider} client {} with the backend", client.client_id);
                ctx.event(obj, EventType::Normal, "Registered", note).await;
                return Ok(settled_message(obj).into());
            }
            // Registered meanwhile (by another writer): adopt it below.
            Err(backend::Error::Conflict { .. }) => {
                by_provider(ctx, t, &provider).await?.ok_or_else(|| Error::Refused {
                    reason: reason::BACKEND_REJECTED,
                    message: format!("the backend reports a client for provider {provider} but does not list it"),
                })?
            }
            Err(e) => return Err(Error::backend("register client")(e)),
        },
    };
    let registration = current.registration();
    // Registered by an earlier release before owners were recorded: the status names it.
    let in_status = status.backend_id.as_deref() == Some(current.id.as_str());
    let backend = (t.name.as_str(), t.backend.as_ref());
    let taken_over = tenancy::claim_found(ctx, obj, backend, &current, None, in_status).await?.is_some();
    if registration.is_some_and(|r| r.revoked) {
        return Err(Error::Refused {
            reason: reason::REVOKED,
            message: format!(
                "the backend client {} for provider {provider} is revoked; delete it in the backend to register again",
                current.id
            ),
        });
    }
    let adopted = status.backend_id.as_deref() != Some(current.id.as_str());
    status.backend_id = Some(current.id.clone());
    status.client_id = Some(current.client_id.clone());
    // A client taken over (not one settled before an upgrade) records its new owner at once.
    if !desired::client_matches(&wanted, &current.settings) || taken_over {
        let updated =
            t.backend.update_client(&t.app, &current.id, &wanted).await.map_err(Error::backend("update client"))?;
        ctx.lists.put(&t.name, &t.app, updated.into()).await;
        status.client_id = Some(upstream.client_id.clone());
        ctx.event(obj, EventType::Normal, "Updated", "backend client updated to the spec".into()).await;
    }
    push(obj, ctx, t, &current, &upstream, adopted, status).await?;
    Ok(settled_message(obj).into())
}

/// The backend client the status names, else the one registered for `provider`.
async fn existing(
    ctx: &Context,
    t: &Target,
    provider: &str,
    status: &OAuthClientStatus,
) -> Result<Option<Listed>, Error> {
    let recorded = match &status.backend_id {
        Some(id) => find(ctx, t, id).await?,
        None => None,
    };
    match recorded {
        Some(c) => Ok(Some(c)),
        None => by_provider(ctx, t, provider).await,
    }
}

/// Pushes the user's secret when their Secret changed, a rotation is asked for, or the client
/// was just adopted; records the request as handled.
async fn push(
    obj: &OAuthClient,
    ctx: &Context,
    t: &Target,
    current: &Listed,
    upstream: &Upstream,
    adopted: bool,
    status: &mut OAuthClientStatus,
) -> Result<(), Error> {
    let rotate_request = obj.annotations().get(ROTATE_ANNOTATION).cloned();
    let asked = rotate_request.is_some() && rotate_request != status.last_handled_rotate_request;
    let changed = status.credentials_secret_version.as_deref() != Some(upstream.version.as_str());
    if changed || asked || adopted {
        super::brought::push_secret(obj, ctx, t, &current.id, (&upstream.secret, &upstream.version), status).await?;
    }
    if asked {
        status.last_handled_rotate_request = rotate_request;
    }
    Ok(())
}

fn settled_message(obj: &OAuthClient) -> &'static str {
    if obj.spec.active { settled::REGISTERED } else { settled::INACTIVE }
}

fn record(status: &mut OAuthClientStatus, client: &Listed, upstream: &Upstream) {
    status.backend_id = Some(client.id.clone());
    status.client_id = Some(client.client_id.clone());
    status.credentials_secret_version = Some(upstream.version.clone());
    status.last_rotated_at = Some(now());
}

/// The backend client registered for `provider`, if any.
async fn by_provider(ctx: &Context, t: &Target, provider: &str) -> Result<Option<Listed>, Error> {
    let registered =
        |list: &[Listed]| list.iter().find(|c| c.registration().is_some_and(|r| r.provider == provider)).cloned();
    ctx.lists.with(&t.name, t.backend.as_ref(), &t.app, true, registered).await.map_err(Error::backend("list clients"))
}

/// The client id and secret from the Secret that `spec.registered.credentialsSecret` names.
async fn read_credentials(ctx: &Context, obj: &OAuthClient, r: &RegisteredSpec) -> Result<Upstream, Error> {
    let ns = obj.namespace().unwrap_or_default();
    let name = &r.credentials_secret.name;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let waiting = |message: String| Error::Waiting(Waiting { reason: reason::CREDENTIALS_SECRET_NOT_READY, message });
    let Some(secret) = secrets.get_opt(name).await.map_err(Error::kube("read the credentials Secret"))? else {
        return Err(waiting(format!("the credentials Secret {ns}/{name} does not exist yet")));
    };
    let keys = r.credentials_secret.keys.clone().unwrap_or_default();
    let data = secret.data.unwrap_or_default();
    let value =
        |key: &str| data.get(key).map(|v| String::from_utf8_lossy(&v.0).trim().to_string()).filter(|v| !v.is_empty());
    let (Some(client_id), Some(client_secret)) = (value(&keys.client_id), value(&keys.client_secret)) else {
        return Err(waiting(format!(
            "the credentials Secret {ns}/{name} needs non-empty keys {} and {}",
            keys.client_id, keys.client_secret
        )));
    };
    Ok(Upstream {
        client_id,
        secret: SecretString::new(client_secret),
        version: secret.metadata.resource_version.unwrap_or_default(),
    })
}
