//! What the operator remembers of its own writes (so that their watch events bring no pass),
//! and which OAuthClients wait on which Secrets (so that a Secret's event brings just those).

use std::{
    collections::{BTreeSet, HashMap},
    sync::Mutex,
    time::Duration,
};

use kube::{Resource, ResourceExt};
use tokio::sync::Notify;

use super::key_of;

/// How long an event of an object waits for the operator's write of it under way to land.
const LANDING: Duration = Duration::from_secs(5);

/// The operator's own last writes, per object (`Kind/namespace/name`).
#[derive(Default)]
pub(super) struct OwnWrites {
    /// Writes under way: the watch event of one can come before its response, and is told
    /// apart only once the response gave its `resourceVersion`.
    in_flight: Mutex<HashMap<String, usize>>,
    landed: Notify,
    /// The `resourceVersion`s the last write made: credentials Secrets, and OAuthClients it
    /// added the finalizer to.
    written: Mutex<HashMap<String, Vec<String>>>,
    /// A hash of the status the last status write set (a pass whose cached copy does not show
    /// that write yet computes the same status, and does not write it again), and the
    /// `resourceVersion` that write made.
    statuses: Mutex<HashMap<String, (u64, Option<u64>)>>,
}

impl OwnWrites {
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
        self.statuses.lock().unwrap_or_else(|e| e.into_inner()).get(&key).is_some_and(|(h, _)| *h == hash)
    }

    /// Records the hash of the status just written for `obj`, and the version it made.
    pub(super) fn record_status<K: Resource<DynamicType = ()>>(&self, obj: &K, hash: u64, version: Option<&str>) {
        let key = format!("{}/{}", K::kind(&()), key_of(obj));
        let version = version.and_then(|v| v.parse().ok());
        self.statuses.lock().unwrap_or_else(|e| e.into_inner()).insert(key, (hash, version));
    }

    /// Whether `obj` is older than this process's last status write to it: a pass that began
    /// from it would write back a status from before that write, dropping what it recorded
    /// (the backend client's id, say). `resourceVersion`s are compared as the numbers the API
    /// server gives (etcd revisions); one that is not a number is never called stale.
    pub(super) fn status_is_stale<K: Resource<DynamicType = ()>>(&self, obj: &K) -> bool {
        let key = format!("{}/{}", K::kind(&()), key_of(obj));
        let Some(seen) = obj.meta().resource_version.as_deref().and_then(|v| v.parse::<u64>().ok()) else {
            return false;
        };
        let statuses = self.statuses.lock().unwrap_or_else(|e| e.into_inner());
        statuses.get(&key).and_then(|(_, written)| *written).is_some_and(|written| seen < written)
    }

    /// Marks a write of an object of kind `K` as under way until the guard is dropped (after
    /// [`OwnWrites::wrote`] recorded what it made).
    pub(super) fn writing<K: Resource<DynamicType = ()>>(&self, namespace: &str, name: &str) -> Writing<'_> {
        let key = format!("{}/{namespace}/{name}", K::kind(&()));
        *self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).entry(key.clone()).or_default() += 1;
        Writing { writes: self, key }
    }

    /// Whether an object a watch shows is as the operator last wrote it, decided once a write
    /// of it under way has landed (or after [`LANDING`]).
    pub(super) async fn is_own_write(&self, seen: Seen) -> bool {
        let deadline = tokio::time::Instant::now() + LANDING;
        loop {
            let landed = self.landed.notified();
            tokio::pin!(landed);
            landed.as_mut().enable();
            if !self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).contains_key(&seen.key) {
                break;
            }
            if tokio::time::timeout_at(deadline, landed).await.is_err() {
                break;
            }
        }
        let written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        written.get(&seen.key).is_some_and(|versions| seen.version.as_ref().is_some_and(|v| versions.contains(v)))
    }
}

/// An object as a watch event shows it: which one, and its `resourceVersion`.
pub(super) struct Seen {
    key: String,
    version: Option<String>,
}

impl Seen {
    pub(super) fn of<K: Resource<DynamicType = ()>>(obj: &K) -> Self {
        Seen { key: format!("{}/{}", K::kind(&()), key_of(obj)), version: obj.meta().resource_version.clone() }
    }
}

/// A write under way (see [`OwnWrites::writing`]).
pub(super) struct Writing<'a> {
    writes: &'a OwnWrites,
    key: String,
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        let mut in_flight = self.writes.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = in_flight.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                in_flight.remove(&self.key);
            }
        }
        drop(in_flight);
        self.writes.landed.notify_waiters();
    }
}

/// Which OAuthClients (by name) wait on each Secret (`namespace/name`), and the other way round.
#[derive(Default)]
pub(super) struct Readers(Mutex<ReaderMaps>);

#[derive(Default)]
struct ReaderMaps {
    by_secret: HashMap<String, BTreeSet<String>>,
    by_client: HashMap<String, String>,
}

impl Readers {
    /// Records the one Secret of its namespace (other than its own) that `client` waits on, or
    /// with `None` that it waits on none.
    pub(super) fn waits_on_secret(&self, client: &crate::api::OAuthClient, secret: Option<&str>) {
        let ns = client.namespace().unwrap_or_default();
        let key = secret.map(|name| format!("{ns}/{name}"));
        let mut readers = self.0.lock().unwrap_or_else(|e| e.into_inner());
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
    pub(super) fn of<K: Resource>(&self, secret: &K) -> Vec<String> {
        let readers = self.0.lock().unwrap_or_else(|e| e.into_inner());
        readers.by_secret.get(&key_of(secret)).map(|names| names.iter().cloned().collect()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    use super::{OwnWrites, Seen};

    fn at(version: &str) -> ConfigMap {
        let metadata = ObjectMeta {
            name: Some("c".into()),
            namespace: Some("n".into()),
            resource_version: Some(version.into()),
            ..Default::default()
        };
        ConfigMap { metadata, ..Default::default() }
    }

    #[tokio::test]
    async fn an_event_that_comes_before_its_write_returns_is_still_known_as_own() {
        let writes = OwnWrites::default();
        let writing = writes.writing::<ConfigMap>("n", "c");
        // The watch shows version 7 before the write's response has said it made it.
        let seen = writes.is_own_write(Seen::of(&at("7")));
        let record = async {
            tokio::task::yield_now().await;
            writes.wrote::<ConfigMap>("n", "c", vec!["7".into()]);
            drop(writing);
        };
        let (own, ()) = tokio::join!(seen, record);
        assert!(own, "decided once the write landed");
        assert!(!writes.is_own_write(Seen::of(&at("8"))).await, "another version is someone else's");
    }

    #[test]
    fn a_copy_older_than_the_last_status_write_is_stale() {
        let writes = OwnWrites::default();
        assert!(!writes.status_is_stale(&at("5")), "nothing written yet");
        writes.record_status(&at("5"), 1, Some("12"));
        assert!(writes.status_is_stale(&at("11")), "the cache has not seen the write");
        assert!(!writes.status_is_stale(&at("12")) && !writes.status_is_stale(&at("30")));
        assert!(!writes.status_is_stale(&at("not-a-number")), "an opaque version is never called stale");
        writes.wrote::<ConfigMap>("n", "c", Vec::new());
        assert!(!writes.status_is_stale(&at("11")), "forgotten with the object");
    }
}
