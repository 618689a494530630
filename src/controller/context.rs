//! What all passes share: the clients, the configured backends, and the state kept between
//! passes (backoff per object, credentials not yet written, the operator's own writes, the
//! Secrets clients wait on).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use kube::{
    Resource, ResourceExt,
    runtime::{
        controller::Action,
        events::{Event, EventType, Recorder, Reporter},
        reflector::Store,
    },
};

use super::{Error, MANAGER, lists::ClientLists, secret};
use crate::{
    backend,
    config::{Backends, Configured},
};

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
    /// When this process started: overdue scheduled rotations are spread from then on.
    pub started: k8s_openapi::jiff::Timestamp,
    reporter: Reporter,
    pub(super) lists: ClientLists,
    /// Per object after a failure: consecutive failures and when to try again.
    failures: Mutex<HashMap<String, Backoff>>,
    /// Credentials the backend showed whose Secret write failed, per object: written on the
    /// next pass instead of rotating again.
    pub(super) undelivered: Mutex<HashMap<String, secret::Credentials>>,
    /// The `resourceVersion`s of each object (`Kind/namespace/name`) that the operator's last
    /// write made (a Secret's creation makes two: the create, then the apply of its content):
    /// its credentials Secrets, and OAuthClients it added the finalizer to.
    written: Mutex<HashMap<String, Vec<String>>>,
    /// A hash of the status each object's (`Kind/namespace/name`) last status write set: a
    /// pass whose cached copy does not show that write yet computes the same status, and does
    /// not write it again.
    statuses: Mutex<HashMap<String, u64>>,
    /// The Secrets other than their own that OAuthClients wait on (a registered client's
    /// credentials, a Secret in the way of its template): an event of one requeues just these.
    readers: Mutex<Readers>,
    /// The OAuthApps as the client controller's watch sees them (set when it starts).
    pub(super) apps: std::sync::OnceLock<Store<kube::core::DeserializeGuard<crate::api::OAuthApp>>>,
    /// The OAuthClients as their controller's watch sees them (set when it starts).
    pub(super) clients: std::sync::OnceLock<Store<kube::core::DeserializeGuard<crate::api::OAuthClient>>>,
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
            started: k8s_openapi::jiff::Timestamp::now(),
            reporter: Reporter { controller: MANAGER.into(), instance: std::env::var("POD_NAME").ok() },
            // The longest jittered resync period: a list serves one whole round of passes.
            lists: ClientLists::new(resync.mul_f64(1.0 + RESYNC_JITTER)),
            failures: Mutex::default(),
            undelivered: Mutex::default(),
            written: Mutex::default(),
            statuses: Mutex::default(),
            readers: Mutex::default(),
            apps: std::sync::OnceLock::new(),
            clients: std::sync::OnceLock::new(),
        }
    }

    /// The backend `name` (`default` when not given) as configured, whoever asks.
    pub(super) fn configured(&self, name: Option<&str>) -> Result<(String, Configured), Error> {
        let name = name.unwrap_or("default");
        self.backends
            .get(name)
            .map(|b| (name.to_string(), b.clone()))
            .ok_or_else(|| Error::UnknownBackend(name.to_string()))
    }

    /// Publishes an event about `obj`; a failure to publish is logged, never fatal.
    pub(super) async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        let event = Event { type_, reason: reason.into(), note: Some(note), action: reason.into(), secondary: None };
        if let Err(e) = recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "could not publish an event");
        }
    }

    /// The requeue after a success: the resync period, jittered by up to 10%.
    pub(super) fn settled(&self, key: &str) -> Action {
        self.settled_until(key, None)
    }

    /// As [`Context::settled`], or at `due` (a scheduled rotation) if that comes sooner.
    pub(super) fn settled_until(&self, key: &str, due: Option<k8s_openapi::jiff::Timestamp>) -> Action {
        self.lock_failures().remove(key);
        let resync = jitter(self.resync, RESYNC_JITTER);
        let until_due = due.map(|due| {
            let wait = k8s_openapi::jiff::Timestamp::now().duration_until(due);
            Duration::try_from(wait).unwrap_or(Duration::ZERO)
        });
        // A moment past the due time, so that the pass finds it due.
        Action::requeue(until_due.map_or(resync, |wait| resync.min(wait + Duration::from_millis(100))))
    }

    /// The wait after a failure: exponential per object from 1 s to 5 min, jittered, or
    /// what the backend asked for (`Retry-After`).
    pub(super) fn backoff(&self, key: &str, trigger: String, asked: Option<Duration>) -> Duration {
        let mut failures = self.lock_failures();
        let entry = failures.entry(key.to_string()).or_insert(Backoff {
            failures: 0,
            not_before: Instant::now(),
            trigger: String::new(),
        });
        entry.failures = entry.failures.saturating_add(1);
        let exponential = Duration::from_secs(1).saturating_mul(1u32 << (entry.failures - 1).min(9));
        let wait = match asked {
            Some(asked) => asked.clamp(backend::MIN_WAIT, backend::MAX_WAIT),
            None => jitter(exponential.min(Duration::from_secs(300)), 0.2),
        };
        entry.not_before = Instant::now().checked_add(wait).unwrap_or_else(Instant::now);
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

    /// Records the `resourceVersion`s an object of kind `K` went through in the operator's own
    /// write (or forgets them, with none), so that the watch events of that write trigger no pass.
    pub(super) fn wrote<K: Resource<DynamicType = ()>>(&self, namespace: &str, name: &str, versions: Vec<String>) {
        let key = format!("{}/{namespace}/{name}", K::kind(&()));
        if versions.is_empty() {
            self.statuses.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
        }
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        match versions.is_empty() {
            false => written.insert(key, versions),
            true => written.remove(&key),
        };
    }

    /// Whether `hash` is that of the status this process last wrote for `obj`.
    pub(super) fn wrote_status<K: Resource<DynamicType = ()>>(&self, obj: &K, hash: u64) -> bool {
        let key = format!("{}/{}", K::kind(&()), key_of(obj));
        self.statuses.lock().unwrap_or_else(|e| e.into_inner()).get(&key) == Some(&hash)
    }

    /// Records the hash of the status just written for `obj`.
    pub(super) fn record_status<K: Resource<DynamicType = ()>>(&self, obj: &K, hash: u64) {
        let key = format!("{}/{}", K::kind(&()), key_of(obj));
        self.statuses.lock().unwrap_or_else(|e| e.into_inner()).insert(key, hash);
    }

    /// Whether an object is as the operator last wrote it.
    pub(super) fn is_own_write<K: Resource<DynamicType = ()>>(&self, obj: &K) -> bool {
        let key = format!("{}/{}", K::kind(&()), key_of(obj));
        let written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        let version = obj.meta().resource_version.as_ref();
        written.get(&key).is_some_and(|versions| version.is_some_and(|v| versions.contains(v)))
    }

    /// Records the one Secret of its namespace (other than its own) that `client` waits on, or
    /// with `None` that it waits on none.
    pub(super) fn waits_on_secret(&self, client: &crate::api::OAuthClient, secret: Option<&str>) {
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
    pub(super) fn readers_of<K: Resource>(&self, secret: &K) -> Vec<String> {
        let readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        readers.by_secret.get(&key_of(secret)).map(|names| names.iter().cloned().collect()).unwrap_or_default()
    }

    pub(super) fn lock_undelivered(&self) -> std::sync::MutexGuard<'_, HashMap<String, secret::Credentials>> {
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
pub(super) fn trigger<K: Resource>(obj: &K) -> String {
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

/// The requeue for a pass that arrives while its object is backing off, if it does.
pub(super) fn held_off<K: Resource>(ctx: &Context, obj: &K) -> Option<Action> {
    ctx.hold_off(&key_of(obj), &trigger(obj)).map(Action::requeue)
}

/// `namespace/name`, the key of per-object state.
pub(super) fn key_of<K: Resource>(obj: &K) -> String {
    format!(
        "{}/{}",
        obj.meta().namespace.as_deref().unwrap_or_default(),
        obj.meta().name.as_deref().unwrap_or_default()
    )
}
