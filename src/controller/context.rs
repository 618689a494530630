//! What all passes share: the clients, the configured backends, and the state kept between
//! passes (backoff per object, credentials not yet written, the operator's own writes, the
//! Secrets clients wait on).

use std::{collections::HashMap, sync::Mutex, time::Duration};

use kube::{
    Resource,
    runtime::{
        controller::Action,
        events::{Event, EventType, Recorder, Reporter},
        reflector::Store,
    },
};

use super::{
    MANAGER,
    backoff::{Backoffs, jitter},
    lists::ClientLists,
    secret,
    writes::{OwnWrites, Readers},
};
use crate::config::Backends;

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
    pub(super) backoffs: Backoffs,
    pub(super) held: Held,
    /// What the operator's own last writes were, so that their watch events bring no pass.
    pub(super) writes: OwnWrites,
    /// The Secrets other than their own that OAuthClients wait on (a registered client's
    /// credentials, a Secret in the way of its template): an event of one requeues just these.
    pub(super) readers: Readers,
    /// The OAuthApps as the client controller's watch sees them (set when it starts).
    pub(super) apps: std::sync::OnceLock<Store<kube::core::DeserializeGuard<crate::api::OAuthApp>>>,
    /// The OAuthClients as their controller's watch sees them (set when it starts).
    pub(super) clients: std::sync::OnceLock<Store<kube::core::DeserializeGuard<crate::api::OAuthClient>>>,
    /// Which Secrets exist, as the client controller's Secret watches see them.
    pub(super) secret_names: super::names::SecretNames,
    /// Which backend clients the credentials Secrets record, shared by the app passes.
    pub(super) census: super::census::Census,
    /// The OAuthClient watch sees every OAuthClient (no label selector shards them).
    pub all_clients_watched: bool,
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
            backoffs: Backoffs::default(),
            held: Held::default(),
            writes: OwnWrites::default(),
            readers: Readers::default(),
            apps: std::sync::OnceLock::new(),
            clients: std::sync::OnceLock::new(),
            secret_names: Default::default(),
            census: super::census::Census::new(resync.mul_f64(1.0 + RESYNC_JITTER)),
            all_clients_watched: true,
        }
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
        self.backoffs.forget(key);
        let resync = jitter(self.resync, RESYNC_JITTER);
        let until_due = due.map(|due| {
            let wait = k8s_openapi::jiff::Timestamp::now().duration_until(due);
            Duration::try_from(wait).unwrap_or(Duration::ZERO)
        });
        // A moment past the due time, so that the pass finds it due.
        Action::requeue(until_due.map_or(resync, |wait| resync.min(wait + Duration::from_millis(100))))
    }
}

/// Credentials the backend showed whose Secret write failed, per object (`namespace/name`):
/// written on the next pass instead of rotating again.
#[derive(Default)]
pub(super) struct Held(Mutex<HashMap<String, secret::Credentials>>);

impl Held {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, secret::Credentials>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
