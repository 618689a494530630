//! The client a `NewClient` rotation replaced: which it is, the client that replaces it, and
//! its retirement when its overlap ends.

use std::time::Duration;

use kube::runtime::events::EventType;

use super::{
    Context, Error, desired,
    lists::Listed,
    secret,
    target::{Target, deactivate, find},
    tenancy,
};
use crate::{
    api::{OAuthClient, PreviousClient, RotationStrategy},
    backend,
};

/// The client a `NewClient` rotation replaced, from the newest record: credentials held for
/// the Secret, the Secret, the status (which alone says whether it retired).
pub(super) fn previous_client(
    held: Option<&secret::Credentials>,
    in_secret: Option<PreviousClient>,
    in_status: Option<&PreviousClient>,
) -> Option<PreviousClient> {
    let mut p = held.and_then(|h| h.previous.clone()).or(in_secret).or_else(|| in_status.cloned())?;
    p.retired = in_status.is_some_and(|s| s.backend_id == p.backend_id && s.retired);
    Some(p)
}

/// Creates the client that replaces `current` in a `NewClient` rotation, with the same
/// settings. Where ids are chosen, one that a kill hid after an earlier try created
/// it is taken with a new secret (its first never reached the Secret).
pub(super) async fn replacement(
    obj: &OAuthClient,
    ctx: &Context,
    t: &Target,
    wanted: &backend::ClientSettings,
    current: &Listed,
) -> Result<(Listed, Option<backend::SecretString>), Error> {
    let mut wanted = wanted.clone();
    if let Some(id) = wanted.chosen_id_mut() {
        *id = desired::next_chosen_id(obj, &current.id);
        if let Some(found) = find(ctx, t, id).await? {
            tenancy::claim_found(ctx, obj, (&t.name, t.backend.as_ref()), &found, None, false).await?;
            let secret = match obj.spec.client_auth_method.has_secret() {
                true => {
                    Some(t.backend.rotate_secret(&t.app, &found.id).await.map_err(Error::backend("rotate secret"))?)
                }
                false => None,
            };
            return Ok((found, secret));
        }
    }
    let (client, creds) = t.backend.create_client(&t.app, &wanted).await.map_err(Error::backend("create client"))?;
    let client = Listed::from(client);
    ctx.lists.put(&t.name, &t.app, client.clone()).await;
    Ok((client, creds.client_secret))
}

/// Deactivates the client a `NewClient` rotation replaced, unless it is inactive or gone
/// already (a kill after the call and before the status write): once per client.
pub(super) async fn retire(obj: &OAuthClient, ctx: &Context, t: &Target, p: &PreviousClient) -> Result<(), Error> {
    let Some(client) = find(ctx, t, &p.backend_id).await?.filter(|c| c.active) else {
        return Ok(());
    };
    // The backend's owner record says whose it is; a record signed for this resource names
    // only its own.
    if let Some(owner) = &client.owner
        && Some(owner.as_str()) != obj.metadata.uid.as_deref()
    {
        return Ok(());
    }
    deactivate(ctx, t, &p.backend_id).await?;
    crate::metrics::metrics().retirements.inc();
    let note =
        format!("deactivated the previous client {}: its overlap ended or a newer rotation replaced it", p.client_id);
    ctx.event(obj, EventType::Normal, "RetiredPreviousClient", note).await;
    Ok(())
}

/// `spec.rotation.strategy`.
pub(super) fn strategy(obj: &OAuthClient) -> RotationStrategy {
    obj.spec.rotation.as_ref().map(|r| r.strategy).unwrap_or_default()
}

/// How long a replaced client keeps working: `spec.rotation.overlap`, 10 minutes by default.
pub(super) fn overlap(obj: &OAuthClient) -> Duration {
    let overlap = obj.spec.rotation.as_ref().and_then(|r| r.overlap.as_deref());
    overlap.and_then(|o| crate::duration::parse_duration(o).ok()).unwrap_or(DEFAULT_OVERLAP)
}

const DEFAULT_OVERLAP: Duration = Duration::from_secs(600);
