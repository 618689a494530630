//! The custom resources, `oauth-operator.dev/v1alpha1`. Types only: no client, no I/O.
//!
//! Doc comments on fields are the text of `kubectl explain`, so they are written for users.
//! CEL rules (`x-kubernetes-validations`) reject what can be rejected statically; the
//! operator checks again before any backend call, because an older CRD may be installed.

mod app;
mod client;

use std::sync::OnceLock;

use kube::{CustomResourceExt, KubeSchema};
use serde::{Deserialize, Serialize};

pub use app::{ClientNamespaces, OAuthApp, OAuthAppSpec, OAuthAppStatus, ScopeCategory, ScopeMapping, ScopeSpec};
pub use client::{
    AccessTokenFormat, AllowedScope, AppRef, ApplicationSpec, ApplicationType, BackendRef, ClientAuthMethod,
    ClientSecretRef, CredentialsSecretRef, DeletionPolicy, GrantType, HydraGrantType, HydraResponseType, HydraSpec,
    IdTokenSigningAlg, Jwk, Jwks, KeyAlgorithm, KeycloakSpec, ManagedKeys, OAuthClient, OAuthClientSpec,
    OAuthClientStatus, PkceMethod, PreviousClient, PreviousKey, RegisteredSpec, RotationSpec, RotationStrategy,
    SecretKeys, SecretTemplate, SigningAlg, TokenLifespans,
};

/// API group of both resources.
pub const GROUP: &str = "oauth-operator.dev";
/// Annotation whose every new value asks for one rotation of the client secret.
pub const ROTATE_ANNOTATION: &str = "oauth-operator.dev/rotate";
/// Finalizer that runs the deletion policy before a resource goes away.
pub const FINALIZER: &str = "oauth-operator.dev/cleanup";

/// Both CRDs, in the order they are printed and installed.
pub fn crds() -> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> {
    vec![OAuthApp::crd(), OAuthClient::crd()]
}

/// Both CRDs as one multi-document YAML stream, as `oauth-operator crd` prints it.
pub fn crds_yaml() -> String {
    crds()
        .iter()
        .map(|crd| yaml_serde::to_string(crd).expect("a CRD serializes to YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// A reference to a key of a Secret or ConfigMap in the resource's own namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyRef {
    /// Name of the object, in the namespace of the resource that refers to it.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the object's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A spec the operator refuses before any backend call. It names the field, so that the
/// `Ready=False, reason=InvalidSpec` condition tells the user what to fix.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSpec(pub String);

/// Checks a resource against the CEL rules of its CRD, in process: an older CRD without them
/// may be installed. (Enums are checked earlier, when the object is deserialized.)
pub trait Validate {
    fn validate(&self) -> Result<(), InvalidSpec>;
}

/// Checks `obj` against the CEL rules of its CRD, compiled once per kind into `compiled`:
/// generating the schema and compiling its rules costs far more than evaluating them.
fn check_cel<K: CustomResourceExt + Serialize>(
    obj: &K,
    compiled: &'static OnceLock<kube::core::cel::CompiledSchema>,
) -> Result<(), InvalidSpec> {
    let compiled = compiled.get_or_init(|| {
        let crd = K::crd();
        let schema = crd.spec.versions[0].schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref());
        let schema = serde_json::to_value(schema.expect("a derived CRD has a schema")).expect("a schema serializes");
        kube::core::cel::compile_schema(&schema)
    });
    thread_local! {
        static VALIDATOR: kube::core::cel::Validator = kube::core::cel::Validator::new();
    }
    let object = serde_json::to_value(obj).map_err(|e| InvalidSpec(format!("cannot serialize the object: {e}")))?;
    VALIDATOR.with(|v| v.validate_compiled(compiled, &object, None)).map_err(|errors| {
        let text: Vec<String> = errors.as_slice().iter().map(|e| format!("{}: {}", e.field_path, e.message)).collect();
        InvalidSpec(text.join("; "))
    })
}

impl Validate for OAuthClient {
    fn validate(&self) -> Result<(), InvalidSpec> {
        static COMPILED: OnceLock<kube::core::cel::CompiledSchema> = OnceLock::new();
        check_cel(self, &COMPILED)?;
        self.check_copied_values()
    }
}

/// The longest rotate request the operator records (in the Secret's annotations and the
/// status): a longer one is refused before anything is rotated.
pub const ROTATE_REQUEST_MAX: usize = 253;

/// The most that `secretTemplate.annotations` may hold, keys and values together: the API
/// server takes 256 KiB of annotations per object, and the operator adds its own.
pub const TEMPLATE_ANNOTATIONS_MAX: usize = 128 * 1024;

impl OAuthClient {
    /// What the operator copies from this object into others (the rotate request into the
    /// Secret and the status; the template's labels and annotations into the Secret) must fit
    /// there: checked before any backend call, so nothing is rotated that cannot be recorded.
    fn check_copied_values(&self) -> Result<(), InvalidSpec> {
        let annotations = self.metadata.annotations.as_ref();
        if let Some(request) = annotations.and_then(|a| a.get(ROTATE_ANNOTATION))
            && request.len() > ROTATE_REQUEST_MAX
        {
            return Err(InvalidSpec(format!(
                "metadata.annotations[{ROTATE_ANNOTATION}]: at most {ROTATE_REQUEST_MAX} characters, as it is recorded in the Secret and the status (this one has {})",
                request.len()
            )));
        }
        let Some(template) = &self.spec.secret_template else { return Ok(()) };
        for (key, value) in &template.labels {
            let field = format!("spec.secretTemplate.labels[{key}]");
            qualified_name(key).map_err(|why| InvalidSpec(format!("{field}: the key {why}")))?;
            label_value(value).map_err(|why| InvalidSpec(format!("{field}: the value {why}")))?;
        }
        let mut size = 0;
        for (key, value) in &template.annotations {
            qualified_name(key)
                .map_err(|why| InvalidSpec(format!("spec.secretTemplate.annotations[{key}]: the key {why}")))?;
            size += key.len() + value.len();
        }
        if size > TEMPLATE_ANNOTATIONS_MAX {
            return Err(InvalidSpec(format!(
                "spec.secretTemplate.annotations: at most {TEMPLATE_ANNOTATIONS_MAX} bytes of keys and values (these have {size})"
            )));
        }
        Ok(())
    }
}

/// A label or annotation key: an optional DNS subdomain prefix and `/`, then a name of at
/// most 63 characters, as the API server checks them.
fn qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = key.rsplit_once('/').map_or((None, key), |(p, n)| (Some(p), n));
    if let Some(prefix) = prefix {
        let label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if prefix.len() > 253 || !prefix.split('.').all(label) {
            return Err("must have a DNS subdomain as its prefix".into());
        }
    }
    if name.is_empty() || name.len() > 63 {
        return Err("must have a name of 1 to 63 characters".into());
    }
    name_chars(name)
}

/// A label value: empty, or at most 63 characters of the label alphabet.
fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > 63 {
        return Err("must be at most 63 characters".into());
    }
    name_chars(value)
}

fn name_chars(text: &str) -> Result<(), String> {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    let inner = text.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'));
    if inner && text.starts_with(alnum) && text.ends_with(alnum) {
        Ok(())
    } else {
        Err("must be letters, digits, '-', '_' or '.', starting and ending with a letter or digit".into())
    }
}

impl Validate for OAuthApp {
    fn validate(&self) -> Result<(), InvalidSpec> {
        static COMPILED: OnceLock<kube::core::cel::CompiledSchema> = OnceLock::new();
        check_cel(self, &COMPILED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(spec: serde_json::Value) -> OAuthClient {
        let mut doc = serde_json::json!({
            "apiVersion": "oauth-operator.dev/v1alpha1", "kind": "OAuthClient",
            "metadata": {"name": "web"},
            "spec": {"appRef": {"name": "app"}, "grantTypes": ["authorization_code"],
                     "redirectUris": ["https://app.example.com/cb"]}
        });
        for (k, v) in spec.as_object().expect("object") {
            match v {
                serde_json::Value::Null => drop(doc["spec"].as_object_mut().expect("spec").remove(k)),
                _ => doc["spec"][k] = v.clone(),
            }
        }
        serde_json::from_value(doc).expect("client")
    }

    fn refused(spec: serde_json::Value) -> String {
        client(spec).validate().expect_err("should be refused").0
    }

    #[test]
    fn the_crd_rules_also_run_in_process() {
        assert_eq!(client(serde_json::json!({})).validate(), Ok(()));
        let loopback = serde_json::json!({"redirectUris": ["http://127.0.0.1:8080/cb", "http://[::1]/cb"]});
        assert_eq!(client(loopback).validate(), Ok(()));

        let message =
            refused(serde_json::json!({"redirectUris": ["https://ok.example.com/cb", "http://app.example.com/cb"]}));
        assert!(message.contains("redirectUris") && message.contains("absolute https URI"), "{message}");
        let message = refused(serde_json::json!({"redirectUris": ["https://app.example.com/cb#frag"]}));
        assert!(message.contains("redirectUris"), "{message}");
        let message = refused(serde_json::json!({"clientAuthMethod": "private_key_jwt"}));
        assert!(message.starts_with("spec.clientAuthMethod: "), "{message}");
        let message = refused(serde_json::json!({"grantTypes": ["refresh_token"]}));
        assert!(message.contains("grantTypes must include authorization_code"), "{message}");
        let message = refused(
            serde_json::json!({"clientAuthMethod": "client_secret_jwt", "tokenEndpointAuthSigningAlg": "RS256"}),
        );
        assert!(message.contains("spec.tokenEndpointAuthSigningAlg"), "{message}");
        let message = refused(serde_json::json!({"application": {"type": "web"}}));
        assert!(message.contains("set exactly one of appRef"), "{message}");
        let registered = serde_json::json!({"appRef": null, "grantTypes": null, "redirectUris": null, "backend": "mcp",
            "registered": {"provider": "github", "providerName": "GitHub", "authorizationUrl": "https://github.com/a",
                           "tokenUrl": "https://github.com/t", "credentialsSecret": {"name": "gh"}}});
        assert_eq!(client(registered).validate(), Ok(()), "registered clients need no redirect URIs");
        assert_eq!(client(serde_json::json!({"rotation": {"every": "1m"}})).validate(), Ok(()));
        let message = refused(serde_json::json!({"rotation": {"every": "59s"}}));
        assert!(message.contains("rotation.every must be at least 1m"), "{message}");
        let new_client = serde_json::json!({"rotation": {"every": "1h", "strategy": "NewClient", "overlap": "10s"}});
        assert_eq!(client(new_client).validate(), Ok(()));
        for (rotation, says) in [
            (serde_json::json!({"strategy": "NewClient", "overlap": "9s"}), "rotation.overlap must be at least 10s"),
            (
                serde_json::json!({"overlap": "1m"}),
                "rotation.overlap applies to strategy NewClient and to managed keys only",
            ),
            (
                serde_json::json!({"every": "10m", "strategy": "NewClient", "overlap": "10m"}),
                "rotation.overlap must be shorter than rotation.every",
            ),
        ] {
            let message = refused(serde_json::json!({ "rotation": rotation }));
            assert!(message.contains(says), "{rotation}: {message}");
        }
        let hydra = serde_json::json!({"appRef": null, "grantTypes": null, "redirectUris": null, "backend": "hydra",
            "clientAuthMethod": "none", "hydra": {"grantTypes": ["client_credentials"]}});
        let message = refused(hydra);
        assert!(message.contains("clientAuthMethod none (a public client) cannot use it"), "{message}");
    }

    #[test]
    fn values_copied_into_other_objects_must_fit_there() {
        let mut c = client(serde_json::json!({}));
        let mut annotate = |value: String| {
            c.metadata.annotations = Some([(ROTATE_ANNOTATION.to_string(), value)].into());
            c.validate()
        };
        assert_eq!(annotate("x".repeat(ROTATE_REQUEST_MAX)), Ok(()));
        let message = annotate("x".repeat(ROTATE_REQUEST_MAX + 1)).expect_err("too long").0;
        assert!(message.contains(ROTATE_ANNOTATION) && message.contains("at most 253"), "{message}");
        let template = |labels: serde_json::Value, annotations: serde_json::Value| {
            client(serde_json::json!({"secretTemplate": {"labels": labels, "annotations": annotations}})).validate()
        };
        assert_eq!(
            template(serde_json::json!({"team": "web", "example.com/tier": ""}), serde_json::json!({"a": "b"})),
            Ok(())
        );
        for labels in [
            serde_json::json!({"bad key": "v"}),
            serde_json::json!({"k": "x".repeat(64)}),
            serde_json::json!({"k": "-v"}),
            serde_json::json!({"Example.COM/k": "v"}),
            serde_json::json!({"": "v"}),
        ] {
            let message = template(labels.clone(), serde_json::json!({})).expect_err("refused").0;
            assert!(message.starts_with("spec.secretTemplate.labels["), "{labels}: {message}");
        }
        let big = serde_json::json!({"a": "x".repeat(TEMPLATE_ANNOTATIONS_MAX)});
        let message = template(serde_json::json!({}), big).expect_err("too big").0;
        assert!(message.starts_with("spec.secretTemplate.annotations: at most"), "{message}");
    }

    #[test]
    fn app_rules_run_in_process() {
        let app: OAuthApp = serde_json::from_value(serde_json::json!({
            "apiVersion": "oauth-operator.dev/v1alpha1", "kind": "OAuthApp", "metadata": {"name": "a"},
            "spec": {"slug": "a", "displayName": "A", "verifyDomain": true,
                     "scopes": [{"name": "s", "mapping": {"category": "personal", "workspacePermission": "w"}}]}
        }))
        .expect("app");
        let message = app.validate().expect_err("refused").0;
        assert!(message.contains("verifyDomain needs fqdn"), "{message}");
        assert!(message.contains("category personal takes no permission"), "{message}");
    }
}
