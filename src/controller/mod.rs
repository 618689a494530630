//! The two reconcilers and what they share: the context, the error type and its retry policy,
//! status writes. `desired` computes, without any I/O, what the backend should hold.

mod app;
mod client;
pub mod conditions;
mod credentials;
pub mod desired;
mod lists;
mod registered;
pub mod secret;
mod tenancy;

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{
    Api, Resource, ResourceExt,
    api::{ApiResource, DynamicObject, Patch, PatchParams},
    core::error_boundary::InvalidObject,
    runtime::{
        Controller,
        controller::Action,
        events::{Event, EventType, Recorder, Reporter},
        reflector::Store,
        watcher,
    },
};
use serde::Serialize;

pub use app::run as run_apps;
pub use client::run as run_clients;
use lists::ClientLists;

use crate::{
    api::{InvalidSpec, OAuthAppStatus, OAuthClientStatus},
    backend::{self, ErrorCategory},
    config::{Backends, Configured},
};

/// The field manager of every write.
pub const MANAGER: &str = "oauth-operator";

/// The share by which a resync period is lengthened at random, so passes spread out.
const RESYNC_JITTER: f64 = 0.1;

/// Shared by all reconciles.
pub struct Context {
    pub client: kube::Client,
    pub backends: Backends,
    /// The one namespace the operator watches (`--namespace`), if it watches one: it then
    /// lists nothing cluster-wide.
    pub namespace: Option<String>,
    /// How often a settled resource is compared with the backend again.
    pub resync: Duration,
    /// How old an unmanaged backend client must be before an app that asks for it prunes it.
    pub unmanaged_grace: Duration,
    reporter: Reporter,
    lists: ClientLists,
    /// Per object after a failure: consecutive failures and when to try again.
    failures: Mutex<HashMap<String, Backoff>>,
    /// Credentials the backend showed whose Secret write failed, per object: written on the
    /// next pass instead of rotating again.
    undelivered: Mutex<HashMap<String, secret::Credentials>>,
    /// The `resourceVersion` of each object (`Kind/namespace/name`) as the operator last wrote
    /// it: its credentials Secrets, and OAuthClients it added the finalizer to.
    written: Mutex<HashMap<String, String>>,
    /// The Secrets other than their own that OAuthClients wait on (a registered client's
    /// credentials, a Secret in the way of its template): an event of one requeues just these.
    readers: Mutex<Readers>,
    /// The OAuthApps as the client controller's watch sees them (set when it starts).
    apps: std::sync::OnceLock<Store<kube::core::DeserializeGuard<crate::api::OAuthApp>>>,
    /// The OAuthClients as their controller's watch sees them (set when it starts).
    clients: std::sync::OnceLock<Store<kube::core::DeserializeGuard<crate::api::OAuthClient>>>,
}

/// Which OAuthClients (by name) wait on each Secret (`namespace/name`), and the other way round.
#[derive(Default)]
struct Readers {
    by_secret: HashMap<String, std::collections::BTreeSet<String>>,
    by_client: HashMap<String, String>,
}

impl Context {
    pub fn new(
        client: kube::Client,
        backends: Backends,
        namespace: Option<String>,
        resync: Duration,
        unmanaged_grace: Duration,
    ) -> Self {
        Self {
            client,
            backends,
            namespace,
            resync,
            unmanaged_grace,
            reporter: Reporter { controller: MANAGER.into(), instance: std::env::var("POD_NAME").ok() },
            // The longest jittered resync period: a list serves one whole round of passes.
            lists: ClientLists::new(resync.mul_f64(1.0 + RESYNC_JITTER)),
            failures: Mutex::default(),
            undelivered: Mutex::default(),
            written: Mutex::default(),
            readers: Mutex::default(),
            apps: std::sync::OnceLock::new(),
            clients: std::sync::OnceLock::new(),
        }
    }

    /// The backend `name` (`default` when not given) as configured, whoever asks.
    fn configured(&self, name: Option<&str>) -> Result<(String, Configured), Error> {
        let name = name.unwrap_or("default");
        self.backends
            .get(name)
            .map(|b| (name.to_string(), b.clone()))
            .ok_or_else(|| Error::UnknownBackend(name.to_string()))
    }

    /// Publishes an event about `obj`; a failure to publish is logged, never fatal.
    async fn event<K: Resource<DynamicType = ()>>(&self, obj: &K, type_: EventType, reason: &str, note: String) {
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        let event = Event { type_, reason: reason.into(), note: Some(note), action: reason.into(), secondary: None };
        if let Err(e) = recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "could not publish an event");
        }
    }

    /// The requeue after a success: the resync period, jittered by up to 10%.
    fn settled(&self, key: &str) -> Action {
        self.lock_failures().remove(key);
        Action::requeue(jitter(self.resync, RESYNC_JITTER))
    }

    /// The wait after a failure: exponential per object from 1 s to 5 min, jittered, or
    /// what the backend asked for (`Retry-After`).
    fn backoff(&self, key: &str, trigger: String, asked: Option<Duration>) -> Duration {
        let mut failures = self.lock_failures();
        let entry = failures.entry(key.to_string()).or_insert(Backoff {
            failures: 0,
            not_before: Instant::now(),
            trigger: String::new(),
        });
        entry.failures = entry.failures.saturating_add(1);
        let exponential = Duration::from_secs(1).saturating_mul(1u32 << (entry.failures - 1).min(9));
        let wait = asked.unwrap_or_else(|| jitter(exponential.min(Duration::from_secs(300)), 0.2));
        entry.not_before = Instant::now() + wait;
        entry.trigger = trigger;
        wait
    }

    /// How long a pass must still wait: watch events (our own status write, an app's status
    /// fanning out to its clients) must not cut a backoff short. A change by a user (spec,
    /// rotate request, deletion) ends the wait.
    fn hold_off(&self, key: &str, trigger: &str) -> Option<Duration> {
        let failures = self.lock_failures();
        let entry = failures.get(key).filter(|b| b.trigger == trigger)?;
        entry.not_before.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())
    }

    /// Records the `resourceVersion` an object of kind `K` has after the operator's own write
    /// (or forgets it, with `None`), so that the watch event of that write triggers no pass.
    fn wrote<K: Resource<DynamicType = ()>>(&self, namespace: &str, name: &str, version: Option<String>) {
        let key = format!("{}/{namespace}/{name}", K::kind(&()));
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        match version {
            Some(v) => written.insert(key, v),
            None => written.remove(&key),
        };
    }

    /// Whether an object is as the operator last wrote it.
    fn is_own_write<K: Resource<DynamicType = ()>>(&self, obj: &K) -> bool {
        let key = format!("{}/{}", K::kind(&()), key_of(obj));
        let written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        written.get(&key).is_some_and(|v| obj.meta().resource_version.as_ref() == Some(v))
    }

    /// Records the one Secret of its namespace (other than its own) that `client` waits on, or
    /// with `None` that it waits on none.
    fn waits_on_secret(&self, client: &crate::api::OAuthClient, secret: Option<&str>) {
        let ns = client.namespace().unwrap_or_default();
        let key = secret.map(|name| format!("{ns}/{name}"));
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        let client_key = key_of(client);
        if readers.by_client.get(&client_key) == key.as_ref() {
            return;
        }
        if let Some(old) = readers.by_client.remove(&client_key)
            && let Some(names) = readers.by_secret.get_mut(&old)
        {
            names.remove(&client.name_any());
            if names.is_empty() {
                readers.by_secret.remove(&old);
            }
        }
        if let Some(key) = key {
            readers.by_secret.entry(key.clone()).or_default().insert(client.name_any());
            readers.by_client.insert(client_key, key);
        }
    }

    /// The clients that wait on this Secret.
    fn readers_of<K: Resource>(&self, secret: &K) -> Vec<String> {
        let readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        readers.by_secret.get(&key_of(secret)).map(|names| names.iter().cloned().collect()).unwrap_or_default()
    }

    fn lock_undelivered(&self) -> std::sync::MutexGuard<'_, HashMap<String, secret::Credentials>> {
        self.undelivered.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, Backoff>> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Backoff state of one object.
struct Backoff {
    failures: u32,
    not_before: Instant,
    /// What the user had asked for when it failed (see [`trigger`]).
    trigger: String,
}

/// What a user changes to ask for a new attempt: the spec, the rotate request, a deletion.
fn trigger<K: Resource>(obj: &K) -> String {
    let meta = obj.meta();
    let rotate = meta.annotations.as_ref().and_then(|a| a.get(crate::api::ROTATE_ANNOTATION));
    format!("{:?}/{rotate:?}/{}", meta.generation, meta.deletion_timestamp.is_some())
}

/// `d` plus a random share of up to `fraction` of it.
fn jitter(d: Duration, fraction: f64) -> Duration {
    let mut byte = [0u8; 2];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut byte);
    let share = f64::from(u16::from_le_bytes(byte)) / f64::from(u16::MAX);
    d.mul_f64(1.0 + fraction * share)
}

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
                Some(ctx.backoff(key, trigger, Some(*retry_after)))
            }
            Error::Backend { source, .. } if source.category() == ErrorCategory::Invalid => None,
            _ => Some(ctx.backoff(key, trigger, None)),
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
fn error_action<K: Resource>(err: &Error, ctx: &Context, obj: &K) -> Action {
    match err.retry(ctx, &key_of(obj), trigger(obj)) {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    }
}

/// The status fields every resource has.
pub trait Conditioned {
    fn conditions(&mut self) -> &mut Vec<Condition>;
    fn observed_generation(&mut self) -> &mut Option<i64>;
}

impl Conditioned for OAuthAppStatus {
    fn conditions(&mut self) -> &mut Vec<Condition> {
        &mut self.conditions
    }
    fn observed_generation(&mut self) -> &mut Option<i64> {
        &mut self.observed_generation
    }
}

impl Conditioned for OAuthClientStatus {
    fn conditions(&mut self) -> &mut Vec<Condition> {
        &mut self.conditions
    }
    fn observed_generation(&mut self) -> &mut Option<i64> {
        &mut self.observed_generation
    }
}

/// Ends a pass: records `observedGeneration` and `Ready` from `result` (the Ready message, or
/// the error), announces a new failure with an event, and writes the status if it changed.
async fn conclude<K, S>(
    ctx: &Context,
    api: &Api<K>,
    obj: &K,
    current: Option<&S>,
    mut status: S,
    result: Result<&str, &Error>,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: Conditioned + Clone + Serialize + PartialEq,
{
    let generation = obj.meta().generation;
    *status.observed_generation() = generation;
    let (ok, why, message) = match result {
        Ok(message) => (true, conditions::reason::RECONCILED, message.to_string()),
        Err(e) => (false, e.reason(), e.message()),
    };
    let previous = current.cloned().map(|mut c| c.conditions().iter().find(|c| c.type_ == conditions::READY).cloned());
    let mut updated = conditions::set(status.conditions(), conditions::READY, ok, why, message.clone(), generation);
    let active = result.err().map(|e| if e.stalled() { conditions::STALLED } else { conditions::RECONCILING });
    for kind in [conditions::RECONCILING, conditions::STALLED] {
        if Some(kind) == active {
            updated = conditions::set(&updated, kind, true, why, message.clone(), generation);
        } else {
            updated.retain(|c| c.type_ != kind);
        }
    }
    *status.conditions() = updated;
    if let Err(e) = result
        && previous.flatten().is_none_or(|c| c.reason != why)
    {
        ctx.event(obj, e.event_type(), why, message).await;
    }
    write_status(api, obj, current, &status).await
}

/// An object the operator cannot even decode (an older CRD let it in): its status says why.
async fn report_undecodable<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    invalid: &InvalidObject,
) -> Result<Action, Error> {
    let meta = &invalid.metadata;
    let api: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        meta.namespace.as_deref().unwrap_or_default(),
        &ApiResource::erase::<K>(&()),
    );
    let ready = conditions::set(
        &[],
        conditions::READY,
        false,
        conditions::reason::INVALID_SPEC,
        invalid.error.clone(),
        meta.generation,
    );
    let patch = serde_json::json!({"status": {"observedGeneration": meta.generation, "conditions": ready}});
    api.patch_status(meta.name.as_deref().unwrap_or_default(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(Error::kube("write status"))?;
    Ok(Action::await_change())
}

/// Writes `status` by server-side apply when it differs from `current`.
async fn write_status<K, S>(api: &Api<K>, obj: &K, current: Option<&S>, status: &S) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(());
    }
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(&obj.name_any(), &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch))
        .await
        .map_err(Error::kube("write status"))?;
    Ok(())
}

/// Drops what the operator never reads from cached objects: managed fields and the
/// last-applied annotation are often larger than the rest.
fn slim<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// A controller of `K` fed by `changes`, with what both share: `concurrency` passes at a time,
/// and no backoff of the merged trigger stream. Each watch backs off on its own instead, so one
/// failing watch (a permission missing, say) does not hold up the events of the others, as
/// kube-runtime's backoff of the merged stream would.
fn controller<K>(
    changes: impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    store: Store<K>,
    concurrency: u16,
) -> Controller<K>
where
    K: Clone + Resource<DynamicType = ()> + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    Controller::for_stream(changes, store)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .trigger_backoff(NoMergedBackoff)
}

struct NoMergedBackoff;

impl Iterator for NoMergedBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(Duration::ZERO)
    }
}

impl kube::runtime::utils::Backoff for NoMergedBackoff {
    fn reset(&mut self) {}
}

/// A watch event triggers a pass only when a user changed something a pass acts on: the spec,
/// the annotations (rotation), the finalizers, a deletion. Status writes, ours included, do not.
fn user_changes<K: Resource>(obj: &K) -> Option<u64> {
    let meta = obj.meta();
    Some(hash(&(meta.generation, &meta.annotations, &meta.finalizers, meta.deletion_timestamp.is_some())))
}

fn hash<T: std::hash::Hash>(value: &T) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(value)
}

/// The requeue for a pass that arrives while its object is backing off, if it does.
fn held_off<K: Resource>(ctx: &Context, obj: &K) -> Option<Action> {
    ctx.hold_off(&key_of(obj), &trigger(obj)).map(Action::requeue)
}

/// An API over one namespace (the one the operator watches, if it watches one), or all.
pub fn scoped<K>(client: &kube::Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// `namespace/name`, the key of per-object state.
fn key_of<K: Resource>(obj: &K) -> String {
    format!(
        "{}/{}",
        obj.meta().namespace.as_deref().unwrap_or_default(),
        obj.meta().name.as_deref().unwrap_or_default()
    )
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
