//! The custom resources, `oauth-operator.dev/v1alpha1`. Types only: no client, no I/O.
//!
//! Doc comments on fields are the text of `kubectl explain`, so they are written for users.
//! CEL rules (`x-kubernetes-validations`) reject what can be rejected statically; the
//! operator checks again before any backend call, because an older CRD may be installed.

mod app;
mod client;

use kube::{CustomResourceExt, KubeSchema};
use serde::{Deserialize, Serialize};

pub use app::{
    ClientNamespaces, OAuthApp, OAuthAppSpec, OAuthAppStatus, ScopeCategory, ScopeMapping,
    ScopeSpec,
};
pub use client::{
    AccessTokenFormat, AppRef, ClientAuthMethod, DeletionPolicy, GrantType, IdTokenSigningAlg, Jwk,
    Jwks, OAuthClient, OAuthClientSpec, OAuthClientStatus, SecretKeys, SecretTemplate, SigningAlg,
};

/// API group of both resources.
pub const GROUP: &str = "oauth-operator.dev";
/// Annotation whose every new value asks for one rotation of the client secret.
pub const ROTATE_ANNOTATION: &str = "oauth-operator.dev/rotate";
/// Finalizer that runs the deletion policy before a resource goes away.
pub const FINALIZER: &str = "oauth-operator.dev/cleanup";

/// Both CRDs, in the order they are printed and installed.
pub fn crds()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
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
