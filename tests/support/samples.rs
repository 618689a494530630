//! The sample resources of `deploy/samples/`, as JSON to vary in tests.

use std::path::Path;

use serde_json::Value;

/// The sample of `deploy/samples/<file>`.
pub fn sample(file: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/samples").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `sample` with a JSON merge patch (RFC 7386) applied and `metadata.name` set to `name`.
pub fn sample_with(file: &str, name: &str, patch: Value) -> Value {
    let mut doc = sample(file);
    merge_patch(&mut doc, &patch);
    doc["metadata"]["name"] = name.into();
    doc
}

/// Applies a JSON merge patch: objects merge, `null` removes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let object = target.as_object_mut().expect("made an object above");
    for (key, value) in fields {
        if value.is_null() {
            object.remove(key);
        } else {
            merge_patch(object.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}
