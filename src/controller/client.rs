//! The OAuthClient reconciler: the backend client, its credentials Secret, rotation by
//! annotation; the finalizer is added here and run by `deletion`.

use std::{future::Future, sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::{
    Api, Resource, ResourceExt,
    api::{PartialObjectMeta, Patch, PatchParams},
    core::DeserializeGuard,
    runtime::{
        WatchStreamExt,
        controller::Action,
        events::EventType,
        reflector::{self, ObjectRef},
        watcher::{self, watcher},
    },
};

use super::{
    Context, Error, brought, conclude,
    conditions::{reason, settled},
    credentials::{self, ClientState, Plan, Rotation, SecretState},
    deletion::{cleanup, delete_secret},
    desired, error_policy, key_of,
    lists::Listed,
    managed, names, prelude, registered,
    rotation::{overlap, previous_client, replacement, retire, strategy},
    schedule,
    secret::{self, Found},
    target::{Target, app_ready, deactivate, find, now, rfc3339, target},
    tenancy, watch,
    writes::Seen,
};
use crate::{
    api::{
        FINALIZER, InvalidSpec, OAuthApp, OAuthClient, OAuthClientStatus, PreviousClient, ROTATE_ANNOTATION,
        RotationStrategy, Validate,
    },
    backend,
};

/// Runs the OAuthClient controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    clients: Api<DeserializeGuard<OAuthClient>>,
    apps: Api<DeserializeGuard<OAuthApp>>,
    secrets: Api<PartialObjectMeta<Secret>>,
    wc: watcher::Config,
    concurrency: u16,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let managed = format!("{}={}", secret::MANAGED_BY.0, secret::MANAGED_BY.1);
    // Changes of the credentials Secrets by anyone but the operator (its own writes are known).
    let own_secrets = ctx.clone();
    // Both Secret watches also keep the names of the Secrets there are (`names`).
    let seen = ctx.clone();
    let owned = watcher(secrets.clone(), watch::config().labels(&managed))
        .default_backoff()
        .inspect(move |event| seen.secret_names.observe(names::OWN, event))
        .modify(watch::slim)
        .touched_objects()
        .filter(move |s| not_own_write(&own_secrets, s.as_ref().ok().map(Seen::of)));
    // Users' Secrets that registered clients take their credentials from (any Secret: users do
    // not label them). Metadata only, and no cache: an event only names the Secret.
    let unmanaged = format!("{}!={}", secret::MANAGED_BY.0, secret::MANAGED_BY.1);
    let seen = ctx.clone();
    let credentials = watcher(secrets, watch::config().labels(&unmanaged))
        .default_backoff()
        .inspect(move |event| seen.secret_names.observe(names::OTHERS, event))
        .touched_objects();
    let (store, writer) = reflector::store();
    let _ = ctx.clients.set(store.clone());
    // Our own writes change nothing a pass needs: only what a user changes triggers one.
    let own = ctx.clone();
    let events = watcher(clients, wc.clone()).default_backoff().modify(watch::slim);
    let changes = watch::changed(writer, events, watch::user_changes)
        .filter(move |c| not_own_write(&own, c.as_ref().ok().map(Seen::of)));
    // An app requeues its clients when its spec changes or it first lands in the backend.
    let (app_store, app_writer) = reflector::store();
    let _ = ctx.apps.set(app_store);
    let app_changes =
        watch::changed(app_writer, watcher(apps, wc).default_backoff().modify(watch::slim), app_readiness);
    let mapper_store = store.clone();
    let credential_readers = ctx.clone();
    let waiting = ctx.clone();
    watch::controller(changes, store, concurrency)
        // A credentials Secret requeues its controller, and the clients its name stands in the way of.
        .watches_stream(owned, move |secret| {
            let namespace = secret.namespace().unwrap_or_default();
            let controller = secret
                .owner_references()
                .iter()
                .filter(|r| r.controller == Some(true) && r.kind == "OAuthClient")
                .map(|r| r.name.clone())
                .collect::<Vec<_>>();
            controller
                .into_iter()
                .chain(waiting.readers.of(&secret))
                .map(move |name| ObjectRef::new(&name).within(&namespace))
        })
        .watches_stream(app_changes, move |app| {
            let (name, namespace) = (app.name_any(), app.namespace().unwrap_or_default());
            mapper_store
                .state()
                .into_iter()
                .filter(|guard| guard.0.as_ref().is_ok_and(|c| c.app_ref() == Some((namespace.clone(), name.clone()))))
                .map(|guard| ObjectRef::from_obj(&*guard))
                .collect::<Vec<_>>()
        })
        .watches_stream(credentials, move |secret| {
            let namespace = secret.namespace().unwrap_or_default();
            credential_readers.readers.of(&secret).into_iter().map(move |name| ObjectRef::new(&name).within(&namespace))
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy::<OAuthClient>, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "oauthclient reconcile failed");
            }
        })
        .await;
}

/// Whether a watch event is other than the operator's own write (an error always passes on).
fn not_own_write(ctx: &Arc<Context>, seen: Option<Seen>) -> impl Future<Output = bool> + use<> {
    let ctx = ctx.clone();
    async move {
        match seen {
            Some(seen) => !ctx.writes.is_own_write(seen).await,
            None => true,
        }
    }
}

/// What of an app its clients depend on: its spec, and whether it exists in the backend.
fn app_readiness(app: &DeserializeGuard<OAuthApp>) -> Option<u64> {
    let ready = app.0.as_ref().is_ok_and(app_ready);
    Some(watch::hash(&(app.meta().generation, ready)))
}

async fn reconcile(guard: Arc<DeserializeGuard<OAuthClient>>, ctx: Arc<Context>) -> Result<Action, Error> {
    crate::metrics::reconcile("oauthclient", Error::label, pass(guard, ctx)).await
}

async fn pass(guard: Arc<DeserializeGuard<OAuthClient>>, ctx: Arc<Context>) -> Result<Action, Error> {
    let obj = match prelude(&guard, &ctx).await {
        Ok(obj) => obj,
        Err(done) => return done,
    };
    let api: Api<OAuthClient> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let ours = obj.finalizers().iter().any(|f| f == FINALIZER);
    if obj.metadata.deletion_timestamp.is_some() {
        if !ours {
            return Ok(Action::await_change());
        }
        let action = cleanup(&api, obj, &ctx).await?;
        let rest: Vec<&String> = obj.finalizers().iter().filter(|f| *f != FINALIZER).collect();
        // A conflict may come from the operator's own status write, whose event triggers no
        // pass: try again soon rather than wait for a change.
        let released = set_finalizers(&api, obj, &rest).await?;
        return Ok(if released.is_some() { action } else { Action::requeue(Duration::from_secs(1)) });
    }
    if ours {
        return apply(&api, obj, &ctx).await;
    }
    // Added, then the first pass goes on at once: the watch event of this write is ours.
    let mut all: Vec<&String> = obj.finalizers().iter().collect();
    let finalizer = FINALIZER.to_string();
    all.push(&finalizer);
    let (namespace, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    let writing = ctx.writes.writing::<OAuthClient>(&namespace, &name);
    let Some(version) = set_finalizers(&api, obj, &all).await? else {
        return Ok(Action::await_change());
    };
    ctx.writes.wrote::<OAuthClient>(&namespace, &name, vec![version]);
    drop(writing);
    apply(&api, obj, &ctx).await
}

/// Sets the finalizers if the object is still at the version this pass read (a newer one
/// brings its own pass): its new `resourceVersion`, or `None` after such a conflict or when
/// the object is gone.
async fn set_finalizers(
    api: &Api<OAuthClient>,
    obj: &OAuthClient,
    finalizers: &[&String],
) -> Result<Option<String>, Error> {
    let patch = serde_json::json!({"metadata": {"finalizers": finalizers, "resourceVersion": obj.resource_version()}});
    match api.patch(&obj.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await {
        Ok(updated) => Ok(updated.resource_version()),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(None),
        Err(e) => Err(Error::kube("update finalizer")(e)),
    }
}

/// One pass: bring the backend and the Secret to the spec, then write the status.
async fn apply(api: &Api<OAuthClient>, obj: &OAuthClient, ctx: &Context) -> Result<Action, Error> {
    let Some(obj) = super::current(ctx, api, obj).await? else { return Ok(Action::await_change()) };
    let obj = obj.as_ref();
    let mut status = obj.status.clone().unwrap_or_default();
    let result = sync(obj, ctx, &mut status).await;
    // The next scheduled rotation, from what this pass issued or found (the status now says),
    // or the end of a previous client's overlap if that comes first.
    let issued = status.last_rotated_at.as_deref().and_then(|t| t.parse().ok());
    let retires = status.previous_client.as_ref().filter(|p| !p.retired).and_then(|p| p.retires_at.parse().ok());
    let key_retires = status.previous_key.as_ref().and_then(|p| p.retires_at.parse().ok());
    let due = [rotation_due_at(obj, ctx, issued), retires, key_retires].into_iter().flatten().min();
    crate::metrics::secret_age(&key_of(obj), issued, rotation_every(obj));
    conclude(ctx, api, obj, obj.status.as_ref(), status, result.as_deref()).await?;
    result.map(|_| ctx.settled_until(&key_of(obj), due))
}

/// Brings the backend and the Secret to the spec, recording progress in `status` as it goes
/// (so that a later failure still records what exists): read, plan, act. Returns the Ready
/// message.
async fn sync(obj: &OAuthClient, ctx: &Context, status: &mut OAuthClientStatus) -> Result<String, Error> {
    obj.validate()?;
    let t = target(obj, ctx).await?;
    status.backend_ref = Some(t.record());
    if let Some(spec) = &obj.spec.registered {
        return registered::sync(obj, spec, ctx, &t, status).await;
    }
    let read = read(obj, ctx, &t, status).await?;
    let facts = facts(obj, ctx, &read, status);
    let plan = credentials::plan(&facts);
    act(obj, ctx, &t, read, &facts, plan, status).await
}

/// What a pass read before it decides: the credentials Secret, the backend client this
/// resource's records name (or its spec, where it takes one over), and what to write.
struct Read {
    secrets: Api<Secret>,
    found: Found,
    /// What a write needs of this client's Secret as last read or written, once it exists.
    existing: Option<secret::Base>,
    /// Credentials of the current client whose Secret write failed on an earlier pass.
    held: Option<secret::Credentials>,
    current: Option<Listed>,
    /// The owner record the current client is taken over from, if this pass takes it over.
    taken_over: Option<String>,
    previous: Option<PreviousClient>,
    wanted: backend::ClientSettings,
    /// The Secret the status named before this pass (`spec.secretTemplate.name` may change).
    previous_secret: Option<String>,
    /// The secret of the user's Secret (`spec.clientSecretRef`).
    brought: Option<brought::Brought>,
    /// The managed private keys the Secret holds (`spec.managedKeys`).
    keys: secret::Held,
}

/// Reads the Secret (a Secret in the way stops the pass before any backend call), this
/// resource's records, and the backend client they name; checks that it may manage it.
async fn read(obj: &OAuthClient, ctx: &Context, t: &Target, status: &mut OAuthClientStatus) -> Result<Read, Error> {
    tenancy::claim_client(ctx, obj).await?;
    check_endpoint_keys(obj, t)?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let name = desired::secret_name(obj);
    // No Secret of that name, as the Secret watches see it: nothing to read (a first pass).
    let inspected = match ctx.secret_names.surely_absent(&obj.namespace().unwrap_or_default(), &name) {
        true => secret::Inspected::missing(),
        false => secret::inspect(&secrets, obj, &t.key).await.map_err(Error::kube("read the Secret"))?,
    };
    if let Found::Foreign { holder } = &inspected.found {
        ctx.readers.waits_on_secret(obj, Some(&name));
        return Err(secret_conflict(&name, holder));
    }
    ctx.readers.waits_on_secret(obj, None);
    // Only a record signed for this resource counts (see `secret`).
    let secret_backend_id = match &inspected.found {
        Found::Intact { backend_id, .. } | Found::Damaged { backend_id } => backend_id.clone(),
        Found::Missing | Found::Foreign { .. } => None,
    };
    // Credentials whose Secret write failed are the newest (a NewClient rotation's name another
    // client than the Secret); the Secret is written before the status, so it comes next.
    let held = ctx.held.lock().get(&key_of(obj)).cloned();
    let recorded = held.as_ref().map(|c| c.backend_id.clone()).or(secret_backend_id).or(status.backend_id.clone());
    let (current, taken_over) = current_client(obj, ctx, t, recorded.as_deref(), status).await?;
    // Read before any backend write: without it, nothing is created or changed.
    let brought = match &obj.spec.client_secret_ref {
        Some(r) => Some(brought::read(ctx, obj, r, current.is_some()).await?),
        None => None,
    };
    let mut wanted = desired::client_settings(obj);
    if let Some(jwks) = managed::published(obj, &inspected.keys, status) {
        wanted.jwks = Some(jwks);
    }
    // A NewClient rotation's client keeps the id it was created with.
    if let (Some(id), Some(c)) = (wanted.chosen_id_mut(), &current) {
        id.clone_from(&c.id);
    }
    take_issue_time(&inspected.found, status);
    let held = held.filter(|h| current.as_ref().is_some_and(|c| h.backend_id == c.id));
    let previous = previous_client(held.as_ref(), inspected.previous, status.previous_client.as_ref());
    status.previous_client.clone_from(&previous);
    Ok(Read {
        secrets,
        found: inspected.found,
        existing: inspected.base,
        held,
        current,
        taken_over,
        previous,
        wanted,
        previous_secret: status.secret_name.replace(name),
        brought,
        keys: inspected.keys,
    })
}

/// The backend client this resource manages: the one its records name, the one its id is
/// where ids are chosen (known even when a crash hid its creation), or the one `adoptId`
/// names; and, when it takes that client over, the owner record it had.
async fn current_client(
    obj: &OAuthClient,
    ctx: &Context,
    t: &Target,
    recorded: Option<&str>,
    status: &OAuthClientStatus,
) -> Result<(Option<Listed>, Option<String>), Error> {
    let known_id = match t.backend.capabilities().chosen_client_ids {
        true => Some(
            recorded
                .filter(|id| desired::is_chosen_id(obj, id))
                .map_or_else(|| desired::chosen_id(obj), str::to_string),
        ),
        false => recorded.or(obj.spec.adopt_id.as_deref()).map(str::to_string),
    };
    let current = match &known_id {
        Some(id) => find(ctx, t, id).await?,
        None => None,
    };
    let Some(c) = current else {
        return match (&obj.spec.adopt_id, recorded) {
            (Some(id), None) => Err(Error::Conflict {
                reason: reason::ADOPTION_TARGET_NOT_FOUND,
                message: format!("spec.adoptId: backend {:?} has no client {id} to take over", t.name),
            }),
            _ => Ok((None, None)),
        };
    };
    let in_status = status.backend_id.as_deref() == Some(c.id.as_str());
    let taken_over = tenancy::claim_found(ctx, obj, (&t.name, t.backend.as_ref()), &c, recorded, in_status).await?;
    Ok((Some(c), taken_over))
}

/// The Secret is read fresh while the status may come from a cache that lags: its record of
/// the issue time wins when newer (a time to come is a user's edit, and never recorded).
fn take_issue_time(found: &Found, status: &mut OAuthClientStatus) {
    if let Some(issued) = recorded_issue(found).filter(|t| *t <= Timestamp::now())
        && status.last_rotated_at.as_deref().and_then(|t| t.parse::<Timestamp>().ok()).is_none_or(|s| s < issued)
    {
        status.last_rotated_at = Some(rfc3339(issued));
    }
}

/// The rotate request not handled yet, if any.
pub(super) fn pending_request(obj: &OAuthClient, status: &OAuthClientStatus) -> Option<String> {
    let request = obj.annotations().get(ROTATE_ANNOTATION).cloned();
    request.filter(|r| status.last_handled_rotate_request.as_ref() != Some(r))
}

/// What the plan decides on (`credentials`), from what the pass read.
fn facts(obj: &OAuthClient, ctx: &Context, read: &Read, status: &OAuthClientStatus) -> credentials::Facts {
    let pending = pending_request(obj, status);
    let answers = |answered: &Option<String>| pending.is_some() && *answered == pending;
    credentials::Facts {
        client: match &read.current {
            None => ClientState::Missing,
            Some(c) if c.active => ClientState::Active,
            Some(_) => ClientState::Inactive,
        },
        want_active: obj.spec.active,
        secret: match &read.found {
            Found::Intact { rotate_request, .. } => SecretState::Intact { answers_request: answers(rotate_request) },
            Found::Damaged { .. } => SecretState::Damaged,
            Found::Missing | Found::Foreign { .. } => SecretState::Missing,
        },
        held: read.held.as_ref().map(|h| answers(&h.rotate_request)),
        // The secret the user brings is rotated at its source.
        requested: pending.is_some() && read.brought.is_none(),
        due: read.brought.is_none() && rotation_due(obj, ctx, &read.found, status),
        new_client: strategy(obj) == RotationStrategy::NewClient,
        previous: match &read.previous {
            None => credentials::Previous::None,
            Some(p) if p.retired => credentials::Previous::None,
            Some(p) if p.retires_at.parse::<Timestamp>().is_ok_and(|at| Timestamp::now() < at) => {
                credentials::Previous::Serving
            }
            Some(_) => credentials::Previous::Expired,
        },
    }
}

/// Carries out the plan: retire the previous client, create or keep the current one (write
/// held credentials, deactivate, update, rotate), then let go of a renamed Secret.
async fn act(
    obj: &OAuthClient,
    ctx: &Context,
    t: &Target,
    mut read: Read,
    facts: &credentials::Facts,
    plan: Plan,
    status: &mut OAuthClientStatus,
) -> Result<String, Error> {
    if credentials::retire_previous(facts, &plan)
        && let Some(p) = read.previous.as_mut()
    {
        retire(obj, ctx, t, p).await?;
        p.retired = true;
        status.previous_client.clone_from(&read.previous);
    }
    // Written with every secret until it retires, so a crash still finds it.
    let serving = read.previous.clone().filter(|p| !p.retired);
    let (current, deliver_held, deactivate_it, rotation, new_client) = match (plan, read.current.take()) {
        (Plan::Keep { deliver_held, deactivate, rotate, new_client }, Some(c)) => {
            (c, deliver_held, deactivate, rotate, new_client)
        }
        (Plan::Create { replaces }, _) => {
            let delivery = Delivery { secrets: &read.secrets, existing: &mut read.existing, previous: serving };
            let given = (&read.wanted, read.brought.as_ref(), &read.keys);
            return create(obj, ctx, t, given, replaces, delivery, status).await;
        }
        _ => return Ok(settled::INACTIVE.into()),
    };
    status.backend_id = Some(current.id.clone());
    status.client_id = Some(current.client_id.clone());
    // Taken out under the lock, written without it (a failed write puts them back).
    let held = if deliver_held { ctx.held.lock().remove(&key_of(obj)) } else { None };
    if let Some(creds) = held {
        let issued_at = creds.client_secret.as_ref().and(creds.issued_at.clone());
        deliver(ctx, &read.secrets, obj, t, creds, &mut read.existing).await?;
        if issued_at.is_some() {
            status.last_rotated_at = issued_at;
        }
    }
    if !obj.spec.active {
        if deactivate_it {
            deactivate(ctx, t, &current.id).await?;
            let note = format!("deactivated backend client {}", current.client_id);
            ctx.event(obj, EventType::Normal, "Deactivated", note).await;
        }
        return Ok(settled::INACTIVE.into());
    }
    let managed_keys = obj.spec.managed_keys.is_some();
    // A managed-key rotation publishes the keys itself.
    if !(managed_keys && rotation.is_some()) {
        update(obj, ctx, t, &read, &current).await?;
    }
    let delivery = Delivery { secrets: &read.secrets, existing: &mut read.existing, previous: serving };
    if let Some(b) = &read.brought {
        let lost = rotation.is_some();
        brought::settle(obj, ctx, t, &current, b, (read.taken_over.is_some(), lost), delivery, status).await?;
    } else if let Some(rotation) = rotation.filter(|_| managed_keys) {
        let given = (&read.wanted, &read.keys);
        managed::rotate(obj, ctx, t, given, &current, rotation, delivery, status).await?;
    } else if let Some(rotation) = rotation {
        rotate(obj, ctx, t, &read.wanted, &current, (rotation, new_client), delivery, status).await?;
    }
    if pending_request(obj, status).is_some() {
        status.last_handled_rotate_request = obj.annotations().get(ROTATE_ANNOTATION).cloned();
    }
    // spec.secretTemplate.name changed: the credentials now live in the new Secret only.
    if let Some(old) = read.previous_secret.filter(|old| Some(old) != status.secret_name.as_ref()) {
        delete_secret(&read.secrets, &old, obj).await?;
    }
    Ok(settled::CLIENT.into())
}

/// Brings the backend client's settings to the spec, and tells of a takeover.
async fn update(obj: &OAuthClient, ctx: &Context, t: &Target, read: &Read, current: &Listed) -> Result<(), Error> {
    if !desired::client_matches(&read.wanted, &current.settings) {
        let updated = t
            .backend
            .update_client(&t.app, &current.id, &read.wanted)
            .await
            .map_err(Error::backend("update client"))?;
        ctx.lists.put(&t.name, &t.app, updated.into()).await;
        ctx.event(obj, EventType::Normal, "Updated", "backend client updated to the spec".into()).await;
    }
    if let Some(from) = &read.taken_over {
        // Its secret is unknown: the missing Secret makes this pass rotate it once.
        let note = format!("took over backend client {} (owner was {from:?})", current.client_id);
        ctx.event(obj, EventType::Normal, "TookOver", note).await;
    }
    Ok(())
}

/// Rotates: a new secret for `current`, or (`new_client`) a new client that takes over the
/// Secret while `current` serves out its overlap; writes the credentials, then tells.
#[allow(clippy::too_many_arguments)]
async fn rotate(
    obj: &OAuthClient,
    ctx: &Context,
    t: &Target,
    wanted: &backend::ClientSettings,
    current: &Listed,
    (rotation, new_client): (Rotation, bool),
    delivery: Delivery<'_>,
    status: &mut OAuthClientStatus,
) -> Result<(), Error> {
    let (client, secret, previous) = if new_client {
        let (client, secret) = replacement(obj, ctx, t, wanted, current).await?;
        let replaced = PreviousClient {
            client_id: current.client_id.clone(),
            backend_id: current.id.clone(),
            retires_at: rfc3339(Timestamp::now() + overlap(obj)),
            retired: false,
        };
        (client, secret, Some(replaced))
    } else if obj.spec.client_auth_method.has_secret() {
        let secret = t.backend.rotate_secret(&t.app, &current.id).await.map_err(Error::backend("rotate secret"))?;
        (current.clone(), Some(secret), delivery.previous)
    } else {
        (current.clone(), None, delivery.previous)
    };
    let issued_at = now();
    let credentials = secret::Credentials {
        client_id: client.client_id.clone(),
        client_secret: secret.clone(),
        backend_id: client.id.clone(),
        rotate_request: pending_request(obj, status).or_else(|| status.last_handled_rotate_request.clone()),
        endpoints: t.endpoints.clone(),
        issued_at: Some(issued_at.clone()),
        previous: previous.clone(),
        next_key: None,
    };
    deliver(ctx, delivery.secrets, obj, t, credentials, delivery.existing).await?;
    if secret.is_some() || new_client {
        status.last_rotated_at = Some(issued_at);
    }
    if new_client {
        status.backend_id = Some(client.id.clone());
        status.client_id = Some(client.client_id.clone());
        status.previous_client = previous;
    }
    announce_rotation(obj, ctx, rotation, new_client.then_some(&client), status).await;
    Ok(())
}

/// The metric and event of a rotation; `new_client`: the client a `NewClient` rotation made.
pub(super) async fn announce_rotation(
    obj: &OAuthClient,
    ctx: &Context,
    rotation: Rotation,
    new_client: Option<&Listed>,
    status: &OAuthClientStatus,
) {
    let (metric, reason, note) = match rotation {
        Rotation::Regenerate => (
            &crate::metrics::metrics().regenerations,
            "SecretRegenerated",
            "the Secret was missing or edited; rotated the secret and wrote it again",
        ),
        Rotation::Requested => (
            &crate::metrics::metrics().rotations,
            "Rotated",
            "rotated the client secret as the rotate annotation asked",
        ),
        Rotation::Scheduled => (
            &crate::metrics::metrics().rotations,
            "RotatedOnSchedule",
            "rotated the client secret: it was older than spec.rotation.every",
        ),
    };
    metric.inc();
    let note = match (&status.previous_client, new_client) {
        (Some(p), Some(client)) => format!(
            "{note}: new client {}; the previous one, {}, works until {}",
            client.client_id, p.client_id, p.retires_at
        ),
        // A managed-key rotation replaces the signing key, and the old one serves its overlap.
        _ if obj.spec.managed_keys.is_some() => match &status.previous_key {
            Some(p) => format!(
                "{}; the previous key works until {}",
                note.replace("client secret", "signing key"),
                p.retires_at
            ),
            None => note.replace("client secret", "signing key"),
        },
        _ => note.to_string(),
    };
    ctx.event(obj, EventType::Normal, reason, note).await;
}

/// Where a pass writes credentials: the Secrets API, this client's Secret as last read or
/// written, and the previous client to record with them.
pub(super) struct Delivery<'a> {
    pub secrets: &'a Api<Secret>,
    pub existing: &'a mut Option<secret::Base>,
    pub previous: Option<PreviousClient>,
}

/// Creates the backend client (with the secret the user brings, if any) and writes its
/// credentials, which answer the rotate request.
async fn create(
    obj: &OAuthClient,
    ctx: &Context,
    t: &Target,
    (wanted, brought, keys): (&backend::ClientSettings, Option<&brought::Brought>, &secret::Held),
    replaces: bool,
    delivery: Delivery<'_>,
    status: &mut OAuthClientStatus,
) -> Result<String, Error> {
    let rotate_request = obj.annotations().get(ROTATE_ANNOTATION).cloned();
    let (client, creds) = match brought {
        None if obj.spec.managed_keys.is_some() => {
            // The key is in the Secret before the backend publishes it.
            let id = desired::chosen_id(obj);
            let first = Delivery { secrets: delivery.secrets, existing: &mut *delivery.existing, previous: None };
            let key = managed::first_key(obj, ctx, t, (keys, &id), first).await?;
            let mut with_key = wanted.clone();
            with_key.jwks = Some(crate::keys::jwks([&key.public]));
            let (made, _) =
                t.backend.create_client(&t.app, &with_key).await.map_err(Error::backend("create client"))?;
            let creds = backend::Credentials { client_id: made.client_id.clone(), client_secret: Some(key.pem) };
            (made, creds)
        }
        Some(b) => {
            let made =
                t.backend.register_client(&t.app, wanted, &b.secret).await.map_err(Error::backend("create client"))?;
            status.credentials_secret_version = Some(b.version.clone());
            let creds = backend::Credentials { client_id: made.client_id.clone(), client_secret: b.copied(obj) };
            (made, creds)
        }
        None => t.backend.create_client(&t.app, wanted).await.map_err(Error::backend("create client"))?,
    };
    let client = Listed::from(client);
    ctx.lists.put(&t.name, &t.app, client.clone()).await;
    // Recorded before the Secret write: a failure below still lands in the status, so the
    // next pass finds this client instead of creating another.
    status.backend_id = Some(client.id.clone());
    status.client_id = Some(client.client_id.clone());
    let issued_at = now();
    let credentials = secret::Credentials {
        client_id: creds.client_id.clone(),
        client_secret: creds.client_secret.clone(),
        backend_id: client.id.clone(),
        rotate_request: rotate_request.clone(),
        endpoints: t.endpoints.clone(),
        issued_at: Some(issued_at.clone()),
        previous: delivery.previous,
        next_key: None,
    };
    deliver(ctx, delivery.secrets, obj, t, credentials, delivery.existing).await?;
    status.last_rotated_at = Some(issued_at);
    status.last_handled_rotate_request = rotate_request;
    let (reason, note) = if replaces {
        (
            "Recreated",
            format!("the backend client was inactive or gone; created {} with new credentials", client.client_id),
        )
    } else {
        ("Created", format!("created backend client {}", client.client_id))
    };
    ctx.event(obj, EventType::Normal, reason, note).await;
    Ok(settled::CLIENT.into())
}

/// The issue time an intact Secret records.
fn recorded_issue(found: &Found) -> Option<Timestamp> {
    match found {
        Found::Intact { issued_at: Some(text), .. } => text.parse().ok(),
        _ => None,
    }
}

/// When the current secret was issued: the Secret's record (written with the secret, so it
/// survives a crash before the status write), else the status.
fn issued_at(found: &Found, status: &OAuthClientStatus) -> Option<Timestamp> {
    let from_status = || status.last_rotated_at.as_deref()?.parse().ok();
    let issued: Timestamp = recorded_issue(found).or_else(from_status)?;
    // A namespace user can edit the record: a time to come does not put rotations off.
    Some(issued.min(Timestamp::now()))
}

/// `spec.rotation.every`, parsed (the CRD checked its form).
fn rotation_every(obj: &OAuthClient) -> Option<Duration> {
    let every = obj.spec.rotation.as_ref()?.every.as_deref()?;
    crate::duration::parse_duration(every).ok()
}

/// When the secret is due for its scheduled rotation, if it has a schedule. A secret of unknown
/// age counts as issued when the operator started.
fn rotation_due_at(obj: &OAuthClient, ctx: &Context, issued: Option<Timestamp>) -> Option<Timestamp> {
    let every = rotation_every(obj)?;
    let uid = obj.metadata.uid.as_deref().unwrap_or_default();
    Some(schedule::due_at(issued.unwrap_or(ctx.started), every, ctx.started, uid))
}

fn rotation_due(obj: &OAuthClient, ctx: &Context, found: &Found, status: &OAuthClientStatus) -> bool {
    rotation_due_at(obj, ctx, issued_at(found, status)).is_some_and(|due| Timestamp::now() >= due)
}

/// The template's `tokenUrl` and `issuer` keys need the backend's issuer URL.
fn check_endpoint_keys(obj: &OAuthClient, t: &Target) -> Result<(), Error> {
    let keys = desired::secret_keys(obj);
    if t.endpoints.is_none() && (keys.token_url.is_some() || keys.issuer.is_some()) {
        return Err(Error::InvalidSpec(InvalidSpec(format!(
            "spec.secretTemplate.keys: tokenUrl and issuer need the issuer URL of backend {:?}, which its configuration does not give",
            t.name
        ))));
    }
    Ok(())
}

fn secret_conflict(name: &str, holder: &str) -> Error {
    Error::Conflict {
        reason: reason::SECRET_CONFLICT,
        message: format!(
            "Secret {name} exists and this OAuthClient does not control it (its controller: {holder}); \
             the operator never overwrites it: choose another spec.secretTemplate.name or remove that Secret"
        ),
    }
}

/// Writes the credentials Secret (`existing`: this client's Secret as the pass read it, then as
/// written); when that fails, keeps the credentials for the next pass.
pub(super) async fn deliver(
    ctx: &Context,
    secrets: &Api<Secret>,
    obj: &OAuthClient,
    t: &Target,
    creds: secret::Credentials,
    existing: &mut Option<secret::Base>,
) -> Result<(), Error> {
    let name = desired::secret_name(obj);
    let namespace = obj.namespace().unwrap_or_default();
    let made = |versions| ctx.writes.wrote::<Secret>(&namespace, &name, versions);
    let _writing = ctx.writes.writing::<Secret>(&namespace, &name);
    match secret::write(secrets, obj, &creds, &t.key, existing.as_ref(), made).await {
        Ok(written) => {
            ctx.secret_names.created(&namespace, &name);
            *existing = Some(written);
            Ok(())
        }
        Err(e) => {
            ctx.held.lock().insert(key_of(obj), creds);
            match e {
                // Created by someone else since this pass looked.
                kube::Error::Api(s) if s.code == 409 && existing.is_none() => {
                    ctx.readers.waits_on_secret(obj, Some(&name));
                    Err(secret_conflict(&name, "created by someone else meanwhile"))
                }
                e => Err(Error::kube("write the Secret")(e)),
            }
        }
    }
}
