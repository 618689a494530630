//! The credentials Secret: written by server-side apply only when the backend has just shown a
//! secret (create, rotate), and checked on every pass.
//!
//! Annotations record what the operator needs after a crash: the backend id of the client (so
//! it is adopted, not created twice), the rotate request the secret answers (so a rotation is
//! not repeated), and a checksum of the data (so an edited or emptied Secret is noticed).

use std::collections::BTreeMap;

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, Resource, ResourceExt,
    api::{ObjectMeta, Patch, PatchParams},
};
use ring::digest;

use super::{MANAGER, desired};
use crate::{api::OAuthClient, backend::SecretString};

pub const BACKEND_ID: &str = "oauth-operator.dev/backend-id";
pub const ROTATE_REQUEST: &str = "oauth-operator.dev/rotate-request";
const CHECKSUM: &str = "oauth-operator.dev/checksum";
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "oauth-operator");

/// What the operator finds in the Secret.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    Missing,
    /// The data is what the operator wrote.
    Intact {
        backend_id: Option<String>,
        rotate_request: Option<String>,
    },
    /// Emptied or edited: the data no longer matches its checksum.
    Damaged {
        backend_id: Option<String>,
    },
}

/// What to write. Kept in memory until a write succeeds: the backend shows a secret once.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    pub backend_id: String,
    pub rotate_request: Option<String>,
}

/// Reads the Secret of `owner` and tells whether it still holds what the operator wrote.
pub async fn inspect(api: &Api<Secret>, owner: &OAuthClient) -> Result<Found, kube::Error> {
    let Some(secret) = api.get_opt(&desired::secret_name(owner)).await? else {
        return Ok(Found::Missing);
    };
    let annotations = secret.annotations();
    let backend_id = annotations.get(BACKEND_ID).cloned();
    let keys = desired::secret_keys(owner);
    let data = secret.data.clone().unwrap_or_default();
    let value = |key: &str| data.get(key).map(|v| String::from_utf8_lossy(&v.0).into_owned());
    let client_id = value(&keys.client_id).unwrap_or_default();
    let client_secret = value(&keys.client_secret);
    let intact = annotations.get(CHECKSUM).is_some_and(|sum| *sum == checksum(&client_id, client_secret.as_deref()));
    Ok(if intact {
        Found::Intact { backend_id, rotate_request: annotations.get(ROTATE_REQUEST).cloned() }
    } else {
        Found::Damaged { backend_id }
    })
}

/// Writes the credentials Secret of `owner`, owned by it, by server-side apply. Returns the
/// written `resourceVersion`.
pub async fn write(api: &Api<Secret>, owner: &OAuthClient, creds: &Credentials) -> Result<Option<String>, kube::Error> {
    let name = desired::secret_name(owner);
    let secret = build(owner, creds);
    let written = api.patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&secret)).await?;
    Ok(written.metadata.resource_version)
}

/// The Secret for `owner`; pure. (k8s-openapi serializes `apiVersion` and `kind`, which
/// server-side apply needs.)
pub fn build(owner: &OAuthClient, creds: &Credentials) -> Secret {
    let keys = desired::secret_keys(owner);
    let template = owner.spec.secret_template.clone().unwrap_or_default();
    let mut data = BTreeMap::from([(keys.client_id.clone(), ByteString(creds.client_id.as_bytes().to_vec()))]);
    if let Some(secret) = &creds.client_secret {
        data.insert(keys.client_secret.clone(), ByteString(secret.expose().as_bytes().to_vec()));
    }
    let mut labels = template.labels;
    labels.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
    let mut annotations = template.annotations;
    annotations.insert(BACKEND_ID.into(), creds.backend_id.clone());
    annotations
        .insert(CHECKSUM.into(), checksum(&creds.client_id, creds.client_secret.as_ref().map(SecretString::expose)));
    if let Some(request) = &creds.rotate_request {
        annotations.insert(ROTATE_REQUEST.into(), request.clone());
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(desired::secret_name(owner)),
            namespace: owner.namespace(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: owner.controller_owner_ref(&()).map(|r| vec![r]),
            ..Default::default()
        },
        data: Some(data),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

/// A digest of the data, so that an edit is noticed; it reveals nothing of a 256-bit secret.
fn checksum(client_id: &str, client_secret: Option<&str>) -> String {
    let mut input = client_id.as_bytes().to_vec();
    input.push(0);
    input.extend_from_slice(client_secret.unwrap_or_default().as_bytes());
    let sum = digest::digest(&digest::SHA256, &input);
    sum.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> OAuthClient {
        let mut c: OAuthClient = serde_json::from_value(serde_json::json!({
            "apiVersion": "oauth-operator.dev/v1alpha1", "kind": "OAuthClient",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1"},
            "spec": {"appRef": {"name": "app"}, "grantTypes": ["authorization_code"],
                     "redirectUris": ["https://a.example.com/cb"],
                     "secretTemplate": {"labels": {"team": "web"}, "keys": {"clientId": "id", "clientSecret": "secret"}}}
        }))
        .expect("client");
        c.metadata.uid = Some("u-1".into());
        c
    }

    #[test]
    fn secret_carries_keys_labels_owner_and_bookkeeping() {
        let secret_value = SecretString::new("oc_secret_x");
        let creds = Credentials {
            client_id: "oc_1".into(),
            client_secret: Some(secret_value),
            backend_id: "42".into(),
            rotate_request: Some("r1".into()),
        };
        let secret = build(&owner(), &creds);
        assert_eq!(secret.metadata.name.as_deref(), Some("web-oauth-client"));
        let data = secret.data.as_ref().expect("data");
        assert_eq!(data["id"].0, b"oc_1");
        assert_eq!(data["secret"].0, b"oc_secret_x");
        let labels = secret.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels["team"], "web");
        assert_eq!(labels[MANAGED_BY.0], MANAGED_BY.1);
        let annotations = secret.metadata.annotations.as_ref().expect("annotations");
        assert_eq!(annotations[BACKEND_ID], "42");
        assert_eq!(annotations[ROTATE_REQUEST], "r1");
        assert!(!annotations[CHECKSUM].contains("oc_secret_x"));
        let owner_ref = &secret.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!((owner_ref.kind.as_str(), owner_ref.controller), ("OAuthClient", Some(true)));
        let json = serde_json::to_value(&secret).expect("json");
        assert_eq!((json["apiVersion"].as_str(), json["kind"].as_str()), (Some("v1"), Some("Secret")));
    }

    #[test]
    fn checksum_changes_with_the_data() {
        assert_eq!(checksum("a", Some("b")), checksum("a", Some("b")));
        assert_ne!(checksum("a", Some("b")), checksum("a", Some("c")));
        assert_ne!(checksum("a", Some("b")), checksum("a", None));
    }
}
