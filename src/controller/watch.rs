//! Watch wiring both controllers share: what is cached, what triggers a pass, how the
//! controller is built.

use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::{
    Api, Resource,
    runtime::{
        Controller,
        reflector::{ObjectRef, Store, store::Writer},
        watcher,
    },
};

/// How every watch lists: consistent reads (the default) in pages of 100. A list from the watch
/// cache (`resourceVersion=0`) would come in one piece; a page is held whole while it is taken
/// in, so smaller pages lower the peak of the initial sync for a few more requests.
pub fn config() -> watcher::Config {
    watcher::Config::default().page_size(100)
}

/// Drops what the operator never reads from watched objects: managed fields, labels (the
/// selector is applied by the API server) and every annotation but its own. Managed fields
/// and the last-applied annotation are often larger than the rest, and a label map costs half
/// a kilobyte even with one entry; other tools' annotations change nothing a pass does.
pub(super) fn slim<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    meta.labels = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.retain(|key, _| key.starts_with(OWN_ANNOTATIONS));
    }
}

/// The prefix of the annotations the operator reads (the rotate request, its records).
const OWN_ANNOTATIONS: &str = "oauth-operator.dev/";

/// A controller of `K` fed by `changes`, with what both share: `concurrency` passes at a time,
/// and no backoff of the merged trigger stream. Each watch backs off on its own instead, so one
/// failing watch (a permission missing, say) does not hold up the events of the others, as
/// kube-runtime's backoff of the merged stream would.
pub(super) fn controller<K>(
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

/// The objects of `events` that bring a pass: each event goes to `writer`'s store, and an
/// object passes on when it is new there or `key` of it differs from that of the copy it
/// replaces. This stands in for kube-runtime's predicate filter, which keeps a hash of every
/// object in a map of its own (about 200 bytes each): the store holds the copy to compare.
pub(super) fn changed<K>(
    mut writer: Writer<K>,
    events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
    key: impl Fn(&K) -> Option<u64>,
) -> impl Stream<Item = Result<K, watcher::Error>>
where
    K: Clone + Resource<DynamicType = ()>,
{
    let store = writer.as_reader();
    events.filter_map(move |event| {
        let passes = |obj: &K| {
            let now = key(obj);
            let before = store.get(&ObjectRef::from_obj(obj));
            now.is_none() || before.is_none_or(|b| b.meta().uid != obj.meta().uid || key(&b) != now)
        };
        let out = match event {
            Ok(event) => {
                let pass = match &event {
                    watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) => passes(obj),
                    _ => false,
                };
                writer.apply_watcher_event(&event);
                match event {
                    watcher::Event::Apply(obj) | watcher::Event::InitApply(obj) if pass => Some(Ok(obj)),
                    _ => None,
                }
            }
            Err(e) => Some(Err(e)),
        };
        std::future::ready(out)
    })
}

/// A watch event triggers a pass only when a user changed something a pass acts on: the spec,
/// the operator's annotations (rotation), the finalizers, a deletion. Status writes, ours
/// included, do not.
pub(super) fn user_changes<K: Resource>(obj: &K) -> Option<u64> {
    let meta = obj.meta();
    Some(hash(&(meta.generation, &meta.annotations, &meta.finalizers, meta.deletion_timestamp.is_some())))
}

/// A 64-bit hash with fixed keys: the same value hashes the same in every pass and process.
pub(super) fn hash<T: std::hash::Hash>(value: &T) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(value)
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

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;

    use super::*;

    #[test]
    fn the_cache_keeps_only_the_operators_annotations() {
        let mut obj: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "c", "labels": {"e2e": "bench"}, "managedFields": [{"manager": "kubectl"}],
                "annotations": {"oauth-operator.dev/rotate": "r1", "argocd.argoproj.io/tracking-id": "x",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}"}}
        }))
        .expect("object");
        slim(&mut obj);
        let meta = obj.meta();
        assert_eq!((meta.labels.as_ref(), meta.managed_fields.as_ref()), (None, None));
        let kept: Vec<&String> = meta.annotations.iter().flatten().map(|(k, _)| k).collect();
        assert_eq!(kept, ["oauth-operator.dev/rotate"]);
        let mut other_tool = obj.clone();
        other_tool.meta_mut().annotations.as_mut().expect("annotations").insert("example.com/x".into(), "y".into());
        slim(&mut other_tool);
        assert_eq!(user_changes(&other_tool), user_changes(&obj), "another tool's annotation triggers no pass");
        let mut rotate = obj.clone();
        rotate
            .meta_mut()
            .annotations
            .as_mut()
            .expect("annotations")
            .insert("oauth-operator.dev/rotate".into(), "r2".into());
        slim(&mut rotate);
        assert_ne!(user_changes(&rotate), user_changes(&obj), "a rotate request does");
    }

    #[tokio::test]
    async fn only_new_objects_and_user_changes_bring_a_pass() {
        let map = |uid: &str, generation: i64, version: &str| -> ConfigMap {
            serde_json::from_value(serde_json::json!({"metadata": {"name": "c", "namespace": "n", "uid": uid,
                "generation": generation, "resourceVersion": version}}))
            .expect("object")
        };
        use watcher::Event::{Apply, Init, InitApply, InitDone};
        let events = [
            Init,
            InitApply(map("u1", 1, "1")),
            InitDone,
            Apply(map("u1", 1, "2")), // a status write: same generation
            Apply(map("u1", 2, "3")),
            Init, // a relist: what did not change stays quiet
            InitApply(map("u1", 2, "3")),
            InitDone,
            Apply(map("u2", 2, "4")), // deleted and made again under the same name
        ];
        let (store, writer) = kube::runtime::reflector::store::<ConfigMap>();
        let passed: Vec<String> = changed(writer, futures::stream::iter(events.map(Ok)), user_changes)
            .map(|c| c.expect("object").metadata.resource_version.expect("version"))
            .collect()
            .await;
        assert_eq!(passed, ["1", "3", "4"]);
        assert_eq!(store.state().len(), 1, "every event reached the store");
    }
}
