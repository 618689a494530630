//! `OAuthApp`: an OAuth provider app in the backend, found again by deployment and slug.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::KeyRef;

/// An OAuth provider app in the identity platform: its slug, name, domain and scopes.
/// OAuthClients refer to it through `spec.appRef`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "oauth-operator.dev",
    version = "v1alpha1",
    kind = "OAuthApp",
    namespaced,
    cel,
    status = "OAuthAppStatus",
    shortname = "oapp",
    category = "oauth",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Slug","type":"string","jsonPath":".spec.slug"}"#,
    printcolumn = r#"{"name":"Domain","type":"string","jsonPath":".spec.fqdn","priority":1}"#,
    printcolumn = r#"{"name":"Domain Verified","type":"string","jsonPath":".status.conditions[?(@.type==\"DomainVerified\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(
    validation = Rule::new("has(self.fqdn) == has(oldSelf.fqdn) && (!has(self.fqdn) || self.fqdn == oldSelf.fqdn)")
        .message("fqdn cannot be added, changed or removed after creation: the backend registers it once")
        .field_path(".fqdn"),
    validation = Rule::new("has(self.deploymentId) == has(oldSelf.deploymentId) && (!has(self.deploymentId) || self.deploymentId == oldSelf.deploymentId)")
        .message("deploymentId is immutable: an app cannot move between deployments")
        .field_path(".deploymentId"),
    validation = Rule::new("!self.verifyDomain || has(self.fqdn)")
        .message("verifyDomain needs fqdn: there is no domain to verify")
        .field_path(".verifyDomain"),
)]
#[serde(rename_all = "camelCase")]
pub struct OAuthAppSpec {
    /// Name of the backend in the operator's configuration that holds this app.
    /// Defaults to the backend named `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub backend: Option<String>,

    /// Deployment that owns the app in the backend. Overrides the deployment id of the backend
    /// configuration; when neither is set, the backend's API key decides the deployment.
    /// Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub deployment_id: Option<String>,

    /// Identifier of the app in the backend and in its URLs: lowercase letters, digits and
    /// dashes, starting and ending with a letter or digit. Immutable.
    #[schemars(length(min = 1, max = 63), pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("slug is immutable"))]
    pub slug: String,

    /// Human-readable name shown on consent screens (the backend's `name`).
    #[schemars(length(min = 1, max = 256))]
    pub display_name: String,

    /// What the app is for, shown to users and administrators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub description: Option<String>,

    /// Custom domain that serves the app's authorization server, for example
    /// `auth.example.com`. Set once at creation; the backend cannot change it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub fqdn: Option<String>,

    /// Ask the backend to verify `fqdn` until it is verified; the result is the
    /// `DomainVerified` condition, and `status.cnameTarget` names the CNAME record to create.
    #[serde(default)]
    pub verify_domain: bool,

    /// Let clients register themselves on the app's issuer domain (RFC 7591 dynamic client
    /// registration). Clients registered that way are not managed by the operator.
    #[serde(default)]
    pub allow_dynamic_client_registration: bool,

    /// Whether the app is active in the backend. `false` disables it without deleting it.
    #[serde(default = "default_true")]
    pub active: bool,

    /// Logo shown on consent screens, read from a ConfigMap key (`binaryData` or `data`) when
    /// the app is created. The backend takes a logo only at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo: Option<Logo>,

    /// Scopes the app supports, with the text users see and the permission each maps to.
    /// The list is keyed by `name`.
    #[serde(default)]
    #[schemars(length(max = 128))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub scopes: Vec<ScopeSpec>,

    /// Deactivate active clients of this app in the backend that no OAuthClient owns (left by a
    /// crash between a create and the Secret write, or made by hand), once they are older than
    /// the operator's grace period (`--unmanaged-grace`, default 10 minutes). Off by default:
    /// clients from the dashboard or dynamic registration are unmanaged too.
    #[serde(default)]
    pub prune_unmanaged_clients: bool,

    /// Namespaces whose OAuthClients may refer to this app, besides the app's own namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_namespaces: Option<ClientNamespaces>,
}

fn default_true() -> bool {
    true
}

/// An image in a ConfigMap, uploaded as the app's logo.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Logo {
    /// The ConfigMap key holding the image, in the app's namespace.
    pub config_map_key_ref: KeyRef,
    /// Media type of the image.
    #[schemars(length(min = 1, max = 64), pattern(r"^image/[-+.a-z0-9]+$"))]
    pub content_type: String,
}

/// One scope of an app.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(oldSelf.mapping) || (has(self.mapping) && self.mapping == oldSelf.mapping)")
        .message("a scope mapping cannot be changed or removed once set: the backend keeps the first one")
        .field_path(".mapping")
)]
pub struct ScopeSpec {
    /// The scope token clients request, for example `mcp:invoke`. Printable ASCII without
    /// spaces, quotes, backslashes or commas.
    #[schemars(length(min = 1, max = 128), pattern(r"^[\x21\x23-\x2B\x2D-\x5B\x5D-\x7E]+$"))]
    pub name: String,

    /// Short title shown on the consent screen. Defaults to the scope name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub display_name: Option<String>,

    /// Sentence shown on the consent screen. Defaults to "Allows {name} access".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,

    /// Archive the scope: it stays defined but clients can no longer be granted it.
    #[serde(default)]
    pub archived: bool,

    /// The permission a grant of this scope maps to. Set once; the backend refuses changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<ScopeMapping>,
}

/// What a granted scope means in the identity platform.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.category != 'personal' || (!has(self.organizationPermission) && !has(self.workspacePermission))")
        .message("category personal takes no permission"),
    validation = Rule::new("self.category != 'organization' || (has(self.organizationPermission) && !has(self.workspacePermission))")
        .message("category organization takes organizationPermission only"),
    validation = Rule::new("self.category != 'workspace' || (has(self.workspacePermission) && !has(self.organizationPermission))")
        .message("category workspace takes workspacePermission only"),
)]
pub struct ScopeMapping {
    /// Whose resources the scope reaches: the user's own (`personal`), an organization's or
    /// a workspace's.
    pub category: ScopeCategory,
    /// Organization permission granted with the scope; only for category `organization`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub organization_permission: Option<String>,
    /// Workspace permission granted with the scope; only for category `workspace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub workspace_permission: Option<String>,
}

/// Category of a scope mapping.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScopeCategory {
    /// The user's own resources.
    Personal,
    /// An organization's resources.
    Organization,
    /// A workspace's resources.
    Workspace,
}

/// Which other namespaces may hold OAuthClients of this app.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientNamespaces {
    /// Allow OAuthClients in every namespace.
    #[serde(default)]
    pub all: bool,
    /// Allow OAuthClients in these namespaces.
    #[serde(default)]
    #[schemars(length(max = 256), inner(length(min = 1, max = 63)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub names: Vec<String>,
}

/// What the operator last saw of the app.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuthAppStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready` says whether the backend app matches the spec; `DomainVerified` whether the
    /// custom domain is verified.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// The backend's id of the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,

    /// Set before the operator asks the backend to create the app, until it knows the app's
    /// id: an app with this slug found after a crash is this resource's, not one made by hand.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create_requested: bool,

    /// The CNAME target to point `fqdn` at, as the backend reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cname_target: Option<String>,

    /// Active clients of the app in the backend that no OAuthClient owns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmanaged_clients: Option<u32>,
}
