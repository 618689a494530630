//! The finalizer of an OAuthClient: its deletion policy (`Delete` deactivates what it owns,
//! `Orphan` lets the backend client go), then its Secret.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Resource, ResourceExt, runtime::controller::Action};

use super::{
    Context, Error,
    conditions::{self, reason},
    desired, key_of,
    rotation::{previous_client, retire},
    secret::{self, Found},
    target::{Target, deactivate, find, release, target},
    tenancy, write_status,
};
use crate::api::{DeletionPolicy, OAuthClient, PreviousClient};

/// The finalizer: runs the deletion policy, removes the Secret, then lets go.
pub(super) async fn cleanup(api: &Api<OAuthClient>, obj: &OAuthClient, ctx: &Context) -> Result<Action, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    if obj.spec.deletion_policy == DeletionPolicy::Delete
        && let Err(e) = run_deletion_policy(obj, ctx, &secrets).await
    {
        let mut status = obj.status.clone().unwrap_or_default();
        let message = format!(
            "deletion waits for the backend ({}); set spec.deletionPolicy: Orphan to finish without it",
            e.message()
        );
        status.conditions = conditions::set(
            &status.conditions,
            conditions::READY,
            false,
            reason::DELETING,
            message,
            obj.metadata.generation,
        );
        write_status(api, obj, obj.status.as_ref(), &status).await?;
        return Err(e);
    }
    if obj.spec.deletion_policy == DeletionPolicy::Orphan {
        release(obj, ctx).await;
        retire_on_orphan(obj, ctx, &secrets).await;
    }
    ctx.readers.waits_on_secret(obj, None);
    ctx.held.lock().remove(&key_of(obj));
    crate::metrics::secret_age(&key_of(obj), None, None);
    ctx.writes.wrote::<OAuthClient>(&obj.namespace().unwrap_or_default(), &obj.name_any(), Vec::new());
    // A registered client's only Secret is the user's own.
    if obj.spec.registered.is_none() {
        delete_secret(&secrets, &desired::secret_name(obj), obj).await?;
        ctx.writes.wrote::<Secret>(&obj.namespace().unwrap_or_default(), &desired::secret_name(obj), Vec::new());
    }
    Ok(Action::await_change())
}

/// Deactivates the backend client and a previous one that has not retired, found where the
/// Secret and the status recorded them: the app may be gone already (a namespace being
/// deleted) or no longer let this namespace in.
async fn run_deletion_policy(obj: &OAuthClient, ctx: &Context, secrets: &Api<Secret>) -> Result<(), Error> {
    let status = obj.status.clone().unwrap_or_default();
    let t = match &status.backend_ref {
        Some(recorded) => Target::recorded(ctx, recorded)?,
        // Recorded by older releases only once reached: without a record or an app, nothing
        // was created.
        None => match target(obj, ctx).await {
            Ok(t) => t,
            Err(Error::Waiting(w)) if w.reason == reason::APP_NOT_FOUND => return Ok(()),
            Err(e) => return Err(e),
        },
    };
    let (from_secret, previous) = match obj.spec.registered {
        Some(_) => (None, None),
        None => {
            let inspected = secret::inspect(secrets, obj, &t.key).await.map_err(Error::kube("read the Secret"))?;
            let id = match inspected.found {
                Found::Intact { backend_id, .. } | Found::Damaged { backend_id } => backend_id,
                Found::Missing | Found::Foreign { .. } => None,
            };
            (id, previous_client(None, inspected.previous, status.previous_client.as_ref()))
        }
    };
    let caps = t.backend.capabilities();
    let recorded = from_secret.or(status.backend_id.clone());
    let ids = candidates(obj, caps.chosen_client_ids, recorded, previous.as_ref());
    for id in ids {
        // Where the backend records owners, a client goes only if it is this resource's by
        // that record or (none recorded) by the status: a chosen id is no proof.
        if caps.records_owner {
            let owner = find(ctx, &t, &id).await?.and_then(|c| c.owner);
            let in_status = status.backend_id.as_deref() == Some(id.as_str());
            if tenancy::Owner::recorded(owner.as_deref(), obj, in_status, None) != tenancy::Owner::This {
                continue;
            }
        }
        deactivate(ctx, &t, &id).await?;
    }
    Ok(())
}

/// The clients a `Delete` deactivates: the one recorded (the Secret's signed record, else the
/// status) and the previous client of a NewClient rotation that has not retired. Where ids are
/// chosen, also the resource's own id when nothing recorded it (a create a crash hid), and the
/// next `<id>-r<n>` (a NewClient rotation cut short by a kill, its request withdrawn since); a
/// recorded id that is not of this resource's form is not its.
fn candidates(
    obj: &OAuthClient,
    chosen_ids: bool,
    recorded: Option<String>,
    previous: Option<&PreviousClient>,
) -> Vec<String> {
    let mut ids: Vec<String> = recorded.into_iter().collect();
    if chosen_ids {
        ids.retain(|id| desired::is_chosen_id(obj, id));
        if ids.is_empty() {
            ids.push(desired::chosen_id(obj));
        }
        ids.push(desired::next_chosen_id(obj, &ids[0]));
    }
    ids.extend(previous.filter(|p| !p.retired).map(|p| p.backend_id.clone()));
    ids
}

/// Under the Orphan policy the current client stays, but the one a `NewClient` rotation
/// replaced was due to retire anyway: retired now, or left (with a log line) when the backend
/// cannot be reached, so that a deletion never waits for it.
async fn retire_on_orphan(obj: &OAuthClient, ctx: &Context, secrets: &Api<Secret>) {
    let status = obj.status.clone().unwrap_or_default();
    let Some(recorded) = &status.backend_ref else { return };
    let Ok(t) = Target::recorded(ctx, recorded) else { return };
    let in_secret = match secret::inspect(secrets, obj, &t.key).await {
        Ok(inspected) => inspected.previous,
        Err(_) => None,
    };
    let Some(p) = previous_client(None, in_secret, status.previous_client.as_ref()).filter(|p| !p.retired) else {
        return;
    };
    if let Err(e) = retire(obj, ctx, &t, &p).await {
        tracing::warn!(error = %e.message(), client = %p.client_id, "could not retire the previous client of an orphaned OAuthClient");
    }
}

/// Deletes a credentials Secret if this client controls it; one already gone is fine.
pub(super) async fn delete_secret(secrets: &Api<Secret>, name: &str, obj: &OAuthClient) -> Result<(), Error> {
    secret::delete(secrets, name, obj.meta().uid.as_deref()).await.map_err(Error::kube("delete the Secret"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> OAuthClient {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "oauth-operator.dev/v1alpha1", "kind": "OAuthClient",
            "metadata": {"name": "web", "namespace": "team-b", "uid": "u1"},
            "spec": {"backend": "b", "application": {"type": "web"}, "redirectUris": ["https://a.example.com/cb"]}
        }))
        .expect("client")
    }

    /// Chosen ids, the recorded id, the previous client: the ids a deletion considers.
    type Row<'a> = (bool, Option<&'a str>, Option<&'a PreviousClient>, &'a [&'a str]);

    /// Which ids a deletion considers, by what the backend declares (chosen ids or not), what
    /// was recorded, and the previous client. Each is then deactivated only if it is this
    /// resource's (where the backend records owners: `tenancy::claim` rules).
    #[test]
    fn deletion_candidates_by_capability() {
        let obj = client();
        let previous = |retired| PreviousClient {
            client_id: "p".into(),
            backend_id: "prev".into(),
            retires_at: "2026-01-01T00:00:00Z".into(),
            retired,
        };
        let serving = previous(false);
        let retired = previous(true);
        let ids =
            |chosen, recorded: Option<&str>, previous| candidates(&obj, chosen, recorded.map(String::from), previous);
        let table: [Row; 8] = [
            (false, None, None, &[]),
            (false, Some("42"), None, &["42"]),
            (false, Some("42"), Some(&serving), &["42", "prev"]),
            (false, Some("42"), Some(&retired), &["42"]),
            (true, None, None, &["u1", "u1-r1"]),
            (true, Some("u1-r2"), None, &["u1-r2", "u1-r3"]),
            (true, Some("someone-else"), None, &["u1", "u1-r1"]),
            (true, Some("u1"), Some(&serving), &["u1", "u1-r1", "prev"]),
        ];
        for (chosen, recorded, previous, want) in table {
            assert_eq!(ids(chosen, recorded, previous), want, "chosen ids {chosen}, recorded {recorded:?}");
        }
    }
}
