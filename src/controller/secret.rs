//! The credentials Secret: written only when the backend has just shown a secret (create,
//! rotate), and checked on every pass.
//!
//! The operator writes and deletes only a Secret it controls for this very OAuthClient
//! (controller owner reference with its UID): one that does not exist yet is created (an
//! existing one of the same name is a conflict, never overwritten), later writes are
//! conditional on the version read and deletes on the Secret's UID, so a Secret replaced in
//! between is left alone.
//!
//! Annotations record what the operator needs after a crash: the backend id of the client (so
//! it is adopted, not created twice), signed for this owner with a key only the operator holds
//! (a namespace user can edit the annotations, and must not steer the operator to another
//! client); the rotate request the secret answers (so a rotation is not repeated); a checksum
//! of the data (so an edited or emptied Secret is noticed); and, after a `NewClient` rotation,
//! the previous client and when it retires, signed the same way (so a crash before the status
//! write still retires it, and nothing else).

use std::collections::BTreeMap;

use k8s_openapi::{ByteString, api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta as Meta};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams, Preconditions},
};
use ring::{digest, hmac};

use super::{MANAGER, desired, fields};
use crate::{
    api::{OAuthClient, PreviousClient},
    backend::SecretString,
};

pub const BACKEND_ID: &str = "oauth-operator.dev/backend-id";
/// HMAC of the owner's UID and [`BACKEND_ID`]: without a valid one the backend id is ignored.
pub const BACKEND_ID_SIGNATURE: &str = "oauth-operator.dev/backend-id-signature";
pub const ROTATE_REQUEST: &str = "oauth-operator.dev/rotate-request";
/// When the secret in the Secret was issued (RFC 3339): the age `spec.rotation.every` counts.
pub const ISSUED_AT: &str = "oauth-operator.dev/issued-at";
const CHECKSUM: &str = "oauth-operator.dev/checksum";
pub const PREVIOUS_BACKEND_ID: &str = "oauth-operator.dev/previous-backend-id";
pub const PREVIOUS_BACKEND_ID_SIGNATURE: &str = "oauth-operator.dev/previous-backend-id-signature";
const PREVIOUS_CLIENT_ID: &str = "oauth-operator.dev/previous-client-id";
const PREVIOUS_RETIRES_AT: &str = "oauth-operator.dev/previous-retires-at";
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "oauth-operator");
/// The data key of a managed key a rotation has generated but not yet handed over: written
/// before the backend publishes it, so that a kill never loses it.
pub const NEXT_PRIVATE_KEY: &str = "next_private_key";

/// What the operator finds in the Secret.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    Missing,
    /// The data is what the operator wrote. `backend_id`: the signed record, if valid.
    Intact {
        backend_id: Option<String>,
        rotate_request: Option<String>,
        issued_at: Option<String>,
    },
    /// Emptied or edited: the data no longer matches its checksum.
    Damaged {
        backend_id: Option<String>,
    },
    /// A Secret of that name that this OAuthClient does not control: never written.
    Foreign {
        holder: String,
    },
}

/// The Secret as a pass read it: what it holds, what a later write needs of it when it is this
/// owner's, and the previous client it records (signed).
#[derive(Debug)]
pub struct Inspected {
    pub found: Found,
    pub base: Option<Base>,
    pub previous: Option<PreviousClient>,
    /// Managed keys: the private key the Secret holds, and one a rotation has not handed over.
    pub keys: Held,
}

impl Inspected {
    /// No Secret of that name.
    pub fn missing() -> Self {
        Inspected { found: Found::Missing, base: None, previous: None, keys: Held::default() }
    }
}

/// What a write of this owner's existing Secret needs of the version a pass read or wrote.
#[derive(Clone, Debug)]
pub struct Base {
    uid: String,
    version: String,
    /// What the operator alone manages in it (see [`fields`]).
    alone: fields::Keys,
}

impl Base {
    fn of(secret: &Secret) -> Self {
        Base {
            uid: secret.metadata.uid.clone().unwrap_or_default(),
            version: secret.metadata.resource_version.clone().unwrap_or_default(),
            alone: fields::managed_alone(secret, MANAGER),
        }
    }
}

/// The managed private keys a Secret holds (PEM).
#[derive(Debug, Default)]
pub struct Held {
    pub current: Option<SecretString>,
    pub next: Option<SecretString>,
}

/// What to write. Kept in memory until a write succeeds: the backend shows a secret once.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: Option<SecretString>,
    pub backend_id: String,
    pub rotate_request: Option<String>,
    /// The backend's public endpoints, for the template's `tokenUrl` and `issuer` keys.
    pub endpoints: Option<crate::backend::Endpoints>,
    /// When the backend issued the secret (RFC 3339).
    pub issued_at: Option<String>,
    /// Managed keys: a new private key written before it is published (see [`NEXT_PRIVATE_KEY`]).
    pub next_key: Option<SecretString>,
    /// The client a `NewClient` rotation replaced, until it retires.
    pub previous: Option<PreviousClient>,
}

/// Reads the Secret of `owner` and tells whether it is its own and still holds what the
/// operator wrote. `key` verifies the backend id it records.
pub async fn inspect(api: &Api<Secret>, owner: &OAuthClient, key: &hmac::Key) -> Result<Inspected, kube::Error> {
    let Some(secret) = api.get_opt(&desired::secret_name(owner)).await? else { return Ok(Inspected::missing()) };
    let Some(uid) = owner.meta().uid.as_deref().filter(|uid| controls(&secret.metadata, uid)) else {
        let found = Found::Foreign { holder: controller_of(&secret.metadata) };
        return Ok(Inspected { found, base: None, previous: None, keys: Held::default() });
    };
    let annotations = secret.annotations();
    let backend_id = signed(annotations, (BACKEND_ID, BACKEND_ID_SIGNATURE), key, uid);
    let previous = signed(annotations, (PREVIOUS_BACKEND_ID, PREVIOUS_BACKEND_ID_SIGNATURE), key, uid).map(|id| {
        let text = |k: &str| annotations.get(k).cloned().unwrap_or_default();
        PreviousClient {
            client_id: text(PREVIOUS_CLIENT_ID),
            backend_id: id,
            retires_at: text(PREVIOUS_RETIRES_AT),
            retired: false,
        }
    });
    let keys = desired::secret_keys(owner);
    let data = secret.data.clone().unwrap_or_default();
    let value = |key: &str| data.get(key).map(|v| String::from_utf8_lossy(&v.0).into_owned());
    let client_id = value(&keys.client_id).unwrap_or_default();
    let client_secret = value(secret_key_of(owner, &keys));
    let next = value(NEXT_PRIVATE_KEY).filter(|_| owner.spec.managed_keys.is_some());
    let endpoints: Vec<String> = endpoint_keys(&keys).map(|k| value(k).unwrap_or_default()).collect();
    let sum = checksum(&client_id, secret_and_next(client_secret.as_deref(), next.as_deref()).as_deref(), &endpoints);
    let intact = annotations.get(CHECKSUM).is_some_and(|written| *written == sum);
    // Managed keys are the operator's only if the checksum says it wrote them: an edited
    // Secret gets none of its author's keys published.
    let held = match owner.spec.managed_keys.is_some() && intact {
        true => Held { current: client_secret.map(SecretString::new), next: next.map(SecretString::new) },
        false => Held::default(),
    };
    // A managed key a rotation has not handed over (a kill came in between) is finished by
    // the next pass, as for a Secret that was edited.
    let found = if intact && held.next.is_none() {
        let issued_at = annotations.get(ISSUED_AT).cloned();
        Found::Intact { backend_id, rotate_request: annotations.get(ROTATE_REQUEST).cloned(), issued_at }
    } else {
        Found::Damaged { backend_id }
    };
    Ok(Inspected { found, base: Some(Base::of(&secret)), previous, keys: held })
}

/// The backend id an annotation pair (id, signature) records, if signed for owner `uid`.
pub fn signed(
    annotations: &BTreeMap<String, String>,
    (id, signature): (&str, &str),
    key: &hmac::Key,
    uid: &str,
) -> Option<String> {
    let value = annotations.get(id)?;
    annotations.get(signature).is_some_and(|sig| verify(key, uid, value, sig)).then(|| value.clone())
}

/// Whether `uid` is the controller of the object.
pub fn controls(meta: &Meta, uid: &str) -> bool {
    meta.owner_references.iter().flatten().any(|r| r.controller == Some(true) && r.uid == uid)
}

/// Who controls an object, in words.
fn controller_of(meta: &Meta) -> String {
    match meta.owner_references.iter().flatten().find(|r| r.controller == Some(true)) {
        Some(r) => format!("{} {}", r.kind, r.name),
        None => "no OAuthClient".into(),
    }
}

/// Writes the credentials Secret of `owner`, one request in the usual case. A Secret that
/// does not exist yet (`existing` is `None`) is created with its content, which fails (409) if
/// the name was taken meanwhile: by this owner's own Secret (a pass that found none, then a
/// crash or another replica) it is then written as below; anyone else's is never written. An
/// existing one (`existing`: this owner's, as the pass read it) gets a merge patch on the
/// condition that it is still that version (its `resourceVersion` and UID): the operator's
/// content, and the removal of what it alone manages there and no longer writes ([`fields`]),
/// so what others wrote stays. Tells `made` the `resourceVersion` made, so that its watch
/// event can be told from others' changes. Returns what a next write needs.
pub async fn write(
    api: &Api<Secret>,
    owner: &OAuthClient,
    creds: &Credentials,
    key: &hmac::Key,
    existing: Option<&Base>,
    made: impl Fn(Vec<String>),
) -> Result<Base, kube::Error> {
    let secret = build(owner, creds, key);
    let name = desired::secret_name(owner);
    let patch = |base: &Base| {
        let patch = fields::merge_patch(&secret, &base.alone, (&base.uid, &base.version));
        let params = PatchParams { field_manager: Some(MANAGER.into()), ..Default::default() };
        async move { api.patch(&name, &params, &Patch::Merge(&patch)).await }
    };
    let written = match existing {
        Some(base) => patch(base).await?,
        None => {
            let params = PostParams { field_manager: Some(MANAGER.into()), ..Default::default() };
            match api.create(&params, &secret).await {
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    let uid = owner.meta().uid.as_deref().unwrap_or_default();
                    match api.get_opt(&desired::secret_name(owner)).await? {
                        Some(current) if controls(&current.metadata, uid) => patch(&Base::of(&current)).await?,
                        _ => return Err(kube::Error::Api(status)),
                    }
                }
                created => created?,
            }
        }
    };
    made(written.metadata.resource_version.iter().cloned().collect());
    Ok(Base::of(&written))
}

/// Deletes the Secret `name` if `owner_uid` controls it, on the condition that it is still
/// the Secret this call read. One gone already, or someone else's, is left as it is.
pub async fn delete(api: &Api<Secret>, name: &str, owner_uid: Option<&str>) -> Result<(), kube::Error> {
    let Some(secret) = api.get_metadata_opt(name).await? else { return Ok(()) };
    if !owner_uid.is_some_and(|uid| controls(&secret.metadata, uid)) {
        return Ok(());
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions { uid: secret.metadata.uid.clone(), resource_version: None }),
        ..Default::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        // Gone meanwhile, or replaced (a precondition failure): not ours to delete.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// The Secret for `owner`; pure. (k8s-openapi serializes `apiVersion` and `kind`, which
/// server-side apply needs.)
pub fn build(owner: &OAuthClient, creds: &Credentials, key: &hmac::Key) -> Secret {
    let keys = desired::secret_keys(owner);
    let template = owner.spec.secret_template.clone().unwrap_or_default();
    let mut data = BTreeMap::from([(keys.client_id.clone(), ByteString(creds.client_id.as_bytes().to_vec()))]);
    if let Some(secret) = &creds.client_secret {
        data.insert(secret_key_of(owner, &keys).to_string(), ByteString(secret.expose().as_bytes().to_vec()));
        let algorithm = owner.spec.managed_keys.as_ref().map(|m| m.algorithm.keys());
        if let Some(key) = algorithm.and_then(|a| crate::keys::read(a, secret.expose()).ok()) {
            data.insert(keys.key_id.clone(), ByteString(key.kid.into_bytes()));
        }
    }
    if let Some(next) = &creds.next_key {
        data.insert(NEXT_PRIVATE_KEY.into(), ByteString(next.expose().as_bytes().to_vec()));
    }
    let (token_url, issuer) = creds.endpoints.clone().map(|e| (e.token_url, e.issuer)).unwrap_or_default();
    let endpoints = [keys.token_url.as_ref().map(|_| token_url), keys.issuer.as_ref().map(|_| issuer)];
    for (key, value) in endpoint_keys(&keys).zip(endpoints.iter().flatten()) {
        data.insert(key.clone(), ByteString(value.as_bytes().to_vec()));
    }
    let mut labels = template.labels;
    labels.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
    let mut annotations = template.annotations;
    annotations.insert(BACKEND_ID.into(), creds.backend_id.clone());
    let uid = owner.meta().uid.as_deref().unwrap_or_default();
    annotations.insert(BACKEND_ID_SIGNATURE.into(), sign(key, uid, &creds.backend_id));
    let endpoints: Vec<String> = endpoints.into_iter().flatten().collect();
    let secret = creds.client_secret.as_ref().map(SecretString::expose);
    let sum = checksum(
        &creds.client_id,
        secret_and_next(secret, creds.next_key.as_ref().map(SecretString::expose)).as_deref(),
        &endpoints,
    );
    annotations.insert(CHECKSUM.into(), sum);
    if let Some(request) = &creds.rotate_request {
        annotations.insert(ROTATE_REQUEST.into(), request.clone());
    }
    if let Some(issued_at) = &creds.issued_at {
        annotations.insert(ISSUED_AT.into(), issued_at.clone());
    }
    if let Some(p) = &creds.previous {
        annotations.insert(PREVIOUS_BACKEND_ID.into(), p.backend_id.clone());
        annotations.insert(PREVIOUS_BACKEND_ID_SIGNATURE.into(), sign(key, uid, &p.backend_id));
        annotations.insert(PREVIOUS_CLIENT_ID.into(), p.client_id.clone());
        annotations.insert(PREVIOUS_RETIRES_AT.into(), p.retires_at.clone());
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

/// The signature of "the client of owner `uid` is backend object `backend_id`".
pub fn sign(key: &hmac::Key, uid: &str, backend_id: &str) -> String {
    hmac::sign(key, &record(uid, backend_id)).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `signature` is [`sign`]'s for these values (compared in constant time).
pub fn verify(key: &hmac::Key, uid: &str, backend_id: &str, signature: &str) -> bool {
    let bytes: Option<Vec<u8>> = (0..signature.len())
        .step_by(2)
        .map(|i| signature.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect();
    bytes.is_some_and(|tag| hmac::verify(key, &record(uid, backend_id), &tag).is_ok())
}

fn record(uid: &str, backend_id: &str) -> Vec<u8> {
    [uid.as_bytes(), b"\0", backend_id.as_bytes()].concat()
}

/// The data key of the credential: the private key of a managed-keys client, else the secret.
fn secret_key_of<'a>(owner: &OAuthClient, keys: &'a crate::api::SecretKeys) -> &'a str {
    match owner.spec.managed_keys {
        Some(_) => &keys.private_key,
        None => &keys.client_secret,
    }
}

/// What the checksum covers of the credential: the secret, and a managed key not handed over.
fn secret_and_next(secret: Option<&str>, next: Option<&str>) -> Option<String> {
    match next {
        None => secret.map(String::from),
        Some(next) => Some(format!("{}\0{next}", secret.unwrap_or_default())),
    }
}

/// The template's keys for the token endpoint and the issuer, in that order, when set.
fn endpoint_keys(keys: &crate::api::SecretKeys) -> impl Iterator<Item = &String> {
    keys.token_url.iter().chain(keys.issuer.iter())
}

/// A digest of the data, so that an edit is noticed; it reveals nothing of a 256-bit secret.
fn checksum(client_id: &str, client_secret: Option<&str>, endpoints: &[String]) -> String {
    let mut input = client_id.as_bytes().to_vec();
    input.push(0);
    input.extend_from_slice(client_secret.unwrap_or_default().as_bytes());
    for value in endpoints {
        input.push(0);
        input.extend_from_slice(value.as_bytes());
    }
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
            endpoints: None,
            issued_at: Some("2026-11-28T08:00:00Z".into()),
            previous: Some(PreviousClient {
                client_id: "oc_0".into(),
                backend_id: "41".into(),
                retires_at: "2026-11-28T08:10:00Z".into(),
                retired: false,
            }),
            next_key: None,
        };
        let secret = build(&owner(), &creds, &key());
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
        assert_eq!(annotations[ISSUED_AT], "2026-11-28T08:00:00Z");
        assert_eq!(
            (annotations[PREVIOUS_CLIENT_ID].as_str(), annotations[PREVIOUS_RETIRES_AT].as_str()),
            ("oc_0", "2026-11-28T08:10:00Z")
        );
        let previous = signed(annotations, (PREVIOUS_BACKEND_ID, PREVIOUS_BACKEND_ID_SIGNATURE), &key(), "u-1");
        assert_eq!(previous.as_deref(), Some("41"), "the previous client is signed for its owner too");
        assert!(!annotations[CHECKSUM].contains("oc_secret_x"));
        assert!(verify(&key(), "u-1", "42", &annotations[BACKEND_ID_SIGNATURE]), "the record is signed for its owner");
        let owner_ref = &secret.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!((owner_ref.kind.as_str(), owner_ref.controller), ("OAuthClient", Some(true)));
        let json = serde_json::to_value(&secret).expect("json");
        assert_eq!((json["apiVersion"].as_str(), json["kind"].as_str()), (Some("v1"), Some("Secret")));
    }

    fn key() -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, b"operator key")
    }

    #[test]
    fn a_record_verifies_only_for_its_owner_id_and_key() {
        let signature = sign(&key(), "u-1", "42");
        assert!(verify(&key(), "u-1", "42", &signature));
        assert!(!verify(&key(), "u-2", "42", &signature), "another owner");
        assert!(!verify(&key(), "u-1", "43", &signature), "another backend id");
        assert!(!verify(&hmac::Key::new(hmac::HMAC_SHA256, b"other"), "u-1", "42", &signature), "another key");
        for forged in ["", "zz", &signature[..10], "é"] {
            assert!(!verify(&key(), "u-1", "42", forged), "{forged:?}");
        }
    }

    #[test]
    fn controller_references_decide_ownership() {
        let secret = build(
            &owner(),
            &Credentials {
                client_id: "c".into(),
                client_secret: None,
                backend_id: "1".into(),
                rotate_request: None,
                endpoints: None,
                issued_at: None,
                previous: None,
                next_key: None,
            },
            &key(),
        );
        assert!(controls(&secret.metadata, "u-1"));
        assert!(!controls(&secret.metadata, "u-2"));
        assert!(!controls(&Meta::default(), "u-1"));
        assert_eq!(controller_of(&secret.metadata), "OAuthClient web");
        assert_eq!(controller_of(&Meta::default()), "no OAuthClient");
    }

    #[test]
    fn checksum_changes_with_the_data() {
        assert_eq!(checksum("a", Some("b"), &[]), checksum("a", Some("b"), &[]));
        assert_ne!(checksum("a", Some("b"), &[]), checksum("a", Some("c"), &[]));
        assert_ne!(checksum("a", Some("b"), &[]), checksum("a", None, &[]));
        assert_ne!(checksum("a", Some("b"), &[]), checksum("a", Some("b"), &["https://x/oauth2/token".into()]));
    }
}
