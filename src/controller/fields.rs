//! What a field manager owns of a Secret, from its `managedFields`: data keys, labels and
//! annotations. The operator writes its Secrets with a create and later merge patches (one
//! request each), so the API server does not remove what it stops writing, as it would for a
//! server-side apply: the operator removes what it alone manages itself.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;
use serde_json::Value;

/// Keys of a Secret's three maps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keys {
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

/// What of `secret` `manager` alone manages (in any operation): keys no other manager shares.
pub fn managed_alone(secret: &Secret, manager: &str) -> Keys {
    let (mut mine, mut others) = (Keys::default(), Keys::default());
    for entry in secret.metadata.managed_fields.iter().flatten() {
        let Some(fields) = &entry.fields_v1 else { continue };
        let keys = if entry.manager.as_deref() == Some(manager) { &mut mine } else { &mut others };
        keys.add(&fields.0);
    }
    Keys {
        data: &mine.data - &others.data,
        labels: &mine.labels - &others.labels,
        annotations: &mine.annotations - &others.annotations,
    }
}

/// A merge patch that makes `desired`'s data, labels and annotations the Secret's and removes
/// the keys of `alone` (what the writer alone manages) that `desired` leaves out; what others
/// wrote stays. `metadata.uid` and `metadata.resourceVersion` make it conditional on the
/// version read: the API server refuses it if the Secret changed or was replaced since.
pub fn merge_patch(desired: &Secret, alone: &Keys, (uid, version): (&str, &str)) -> Value {
    fn map<V: serde::Serialize>(desired: Option<&BTreeMap<String, V>>, removed: &BTreeSet<String>) -> Value {
        let mut out = serde_json::Map::new();
        for key in removed {
            out.insert(key.clone(), Value::Null);
        }
        for (key, value) in desired.into_iter().flatten() {
            out.insert(key.clone(), serde_json::to_value(value).unwrap_or(Value::Null));
        }
        Value::Object(out)
    }
    let meta = &desired.metadata;
    serde_json::json!({
        "metadata": {
            "uid": uid,
            "resourceVersion": version,
            "labels": map(meta.labels.as_ref(), &alone.labels),
            "annotations": map(meta.annotations.as_ref(), &alone.annotations),
        },
        "data": map(desired.data.as_ref(), &alone.data),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(value: Value) -> Secret {
        serde_json::from_value(value).expect("Secret")
    }

    #[test]
    fn what_the_writer_alone_wrote_and_no_longer_writes_is_removed() {
        let current = secret(serde_json::json!({
            "metadata": {"name": "web", "managedFields": [
                {"manager": "op", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1":
                    {"f:data": {".": {}, "f:client_id": {}, "f:client_secret": {}, "f:shared": {}},
                     "f:metadata": {"f:labels": {"f:team": {}}, "f:annotations": {"f:old": {}}}}},
                {"manager": "op", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1":
                    {"f:data": {"f:token_url": {}}}},
                {"manager": "kubectl", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1":
                    {"f:data": {"f:shared": {}, "f:extra": {}}, "f:metadata": {"f:labels": {"f:tool": {}},
                     "f:annotations": {"f:theirs": {}}}}}]}
        }));
        let alone = managed_alone(&current, "op");
        let desired = secret(serde_json::json!({
            "metadata": {"name": "web", "labels": {"team": "web2"}, "annotations": {"new": "3"}},
            "data": {"client_id": "eA=="}
        }));
        let patch = merge_patch(&desired, &alone, ("u", "7"));
        // client_secret and token_url were the writer's alone; shared is kubectl's too.
        assert_eq!(
            patch,
            serde_json::json!({
                "metadata": {"uid": "u", "resourceVersion": "7", "labels": {"team": "web2"},
                    "annotations": {"new": "3", "old": null}},
                "data": {"client_id": "eA==", "client_secret": null, "token_url": null}
            })
        );
    }
}
