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
    CredentialsSecretRef, DeletionPolicy, GrantType, IdTokenSigningAlg, Jwk, Jwks, OAuthClient, OAuthClientSpec,
    OAuthClientStatus, RegisteredSpec, SecretKeys, SecretTemplate, SigningAlg,
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
        .map(|crd| serde_yaml::to_string(crd).expect("a CRD serializes to YAML"))
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
        check_cel(self, &COMPILED)
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
