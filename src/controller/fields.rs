//! What a field manager owns of a Secret, from its `managedFields`: data keys, labels and
//! annotations. The operator writes its Secrets with a create and later updates (one request
//! each), so the API server does not remove what it stops writing, as it would for a
//! server-side apply: the operator removes what it alone manages itself.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::{api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry};
use serde_json::Value;

/// Keys of a Secret's three maps.
#[derive(Debug, Default)]
struct Keys {
    data: BTreeSet<String>,
    labels: BTreeSet<String>,
    annotations: BTreeSet<String>,
}

impl Keys {
    /// Adds the keys a `fieldsV1` set names, e.g. `{"f:data": {"f:client_id": {}}}`.
    fn add(&mut self, fields: &Value) {
        let names = |path: &[&str]| {
            let map = path.iter().try_fold(fields, |v, step| v.get(step)).and_then(Value::as_object);
            map.into_iter().flatten().filter_map(|(k, _)| k.strip_prefix("f:").map(str::to_string)).collect::<Vec<_>>()
        };
        self.data.extend(names(&["f:data"]));
        self.labels.extend(names(&["f:metadata", "f:labels"]));
        self.annotations.extend(names(&["f:metadata", "f:annotations"]));
    }
}

/// What `manager` owns (in any operation), and what the other managers own.
fn owned<'a>(entries: impl Iterator<Item = &'a ManagedFieldsEntry>, manager: &str) -> (Keys, Keys) {
    let (mut mine, mut others) = (Keys::default(), Keys::default());
    for entry in entries {
        let Some(fields) = &entry.fields_v1 else { continue };
        let keys = if entry.manager.as_deref() == Some(manager) { &mut mine } else { &mut others };
        keys.add(&fields.0);
    }
    (mine, others)
}

/// `current` with what `manager` alone manages replaced by `desired`'s: its data keys, labels
/// and annotations that no other manager shares go unless `desired` has them, `desired`'s are
/// set, and the rest of `current` stays (others' keys, its identity, and the `resourceVersion`
/// an update is conditional on). Its `managedFields` are left to the API server.
pub fn replace_own(current: &Secret, desired: Secret, manager: &str) -> Secret {
    let (mine, others) = owned(current.metadata.managed_fields.iter().flatten(), manager);
    let alone =
        |mine: &BTreeSet<String>, others: &BTreeSet<String>, key: &str| mine.contains(key) && !others.contains(key);
    let mut next = current.clone();
    next.metadata.managed_fields = None;
    merge(&mut next.data, desired.data, |k| alone(&mine.data, &others.data, k));
    merge(&mut next.metadata.labels, desired.metadata.labels, |k| alone(&mine.labels, &others.labels, k));
    let annotations = |k: &str| alone(&mine.annotations, &others.annotations, k);
    merge(&mut next.metadata.annotations, desired.metadata.annotations, annotations);
    next
}

fn merge<V>(
    target: &mut Option<BTreeMap<String, V>>,
    desired: Option<BTreeMap<String, V>>,
    removable: impl Fn(&str) -> bool,
) {
    let desired = desired.unwrap_or_default();
    let map = target.get_or_insert_default();
    map.retain(|k, _| desired.contains_key(k) || !removable(k));
    map.extend(desired);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(value: Value) -> Secret {
        serde_json::from_value(value).expect("Secret")
    }

    #[test]
    fn what_the_manager_alone_wrote_is_replaced_and_the_rest_kept() {
        let current = secret(serde_json::json!({
            "metadata": {"name": "web", "uid": "u", "resourceVersion": "7",
                "labels": {"team": "web", "tool": "x"}, "annotations": {"old": "1", "theirs": "2"},
                "managedFields": [
                    {"manager": "op", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1":
                        {"f:data": {".": {}, "f:client_id": {}, "f:client_secret": {}, "f:shared": {}},
                         "f:metadata": {"f:labels": {"f:team": {}}, "f:annotations": {"f:old": {}}}}},
                    {"manager": "op", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1":
                        {"f:data": {"f:token_url": {}}}},
                    {"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1":
                        {"f:data": {"f:shared": {}, "f:extra": {}}, "f:metadata": {"f:labels": {"f:tool": {}},
                         "f:annotations": {"f:theirs": {}}}}}]},
            "data": {"client_id": "YQ==", "client_secret": "Yg==", "shared": "Yw==", "extra": "ZA==",
                     "token_url": "ZQ==", "unknown": "Zg=="}
        }));
        let desired = secret(serde_json::json!({
            "metadata": {"name": "web", "labels": {"team": "web2"}, "annotations": {"new": "3"}},
            "data": {"id": "eA=="}
        }));
        let next = replace_own(&current, desired, "op");
        let data: Vec<&String> = next.data.as_ref().expect("data").keys().collect();
        // client_id, client_secret and token_url were the manager's alone; shared is kubectl's
        // too, extra kubectl's, unknown nobody's: kept.
        assert_eq!(data, ["extra", "id", "shared", "unknown"]);
        let labels = next.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels, &BTreeMap::from([("team".into(), "web2".into()), ("tool".into(), "x".into())]));
        let annotations: Vec<&String> = next.metadata.annotations.as_ref().expect("annotations").keys().collect();
        assert_eq!(annotations, ["new", "theirs"]);
        assert_eq!(next.metadata.resource_version.as_deref(), Some("7"), "the update is conditional on it");
        assert_eq!(next.metadata.uid.as_deref(), Some("u"));
        assert!(next.metadata.managed_fields.is_none(), "left to the API server");
    }
}
