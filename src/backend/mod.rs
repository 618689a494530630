//! The management backends behind one trait. The reconcilers know only [`Backend`] and the
//! types here, which speak in our own terms: app, scope, client, credentials, grant.

mod error;
mod ratelimit;
mod secret;
pub mod wacht;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use error::{Error, ErrorCategory};
pub use ratelimit::RateLimiter;
pub use secret::SecretString;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a backend can do; the reconcilers check it before asking for a feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    pub apps: bool,
    pub scopes: bool,
    pub grants: bool,
    pub domain_verification: bool,
    /// The backend issues client secrets (as opposed to storing ones the user registers).
    pub issued_secrets: bool,
}

/// Where an app lives: its deployment (`None`: the one the API key belongs to) and slug.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AppKey {
    pub deployment: Option<String>,
    pub slug: String,
}

/// An app as the backend reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct App {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub description: Option<String>,
    pub fqdn: Option<String>,
    pub scopes: Vec<Scope>,
    pub allow_dynamic_client_registration: bool,
    pub active: bool,
}

/// One scope of an app, with the text users see and what it maps to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub archived: bool,
    pub mapping: Option<ScopeMapping>,
}

/// The permission a scope maps to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScopeMapping {
    Personal,
    Organization(String),
    Workspace(String),
}

/// An app to create.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewApp {
    pub slug: String,
    pub name: String,
    pub description: Option<String>,
    pub fqdn: Option<String>,
    pub scopes: Vec<Scope>,
    pub allow_dynamic_client_registration: bool,
    pub logo: Option<Logo>,
}

/// An image uploaded with a new app.
#[derive(Clone, Debug, PartialEq)]
pub struct Logo {
    pub bytes: Vec<u8>,
    pub content_type: String,
    pub filename: String,
}

/// Changes to an app. Scope definitions are always sent in full: some backends reset the
/// ones a request leaves out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AppUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub scopes: Vec<Scope>,
    pub allow_dynamic_client_registration: Option<bool>,
    pub active: Option<bool>,
}

/// The state of an app's custom domain.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct DomainStatus {
    pub domain: String,
    pub cname_target: String,
    pub verified: bool,
}

/// The settings of a client that the operator manages; the same shape creates and updates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientSettings {
    pub client_auth_method: String,
    pub grant_types: Vec<String>,
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    pub token_endpoint_auth_signing_alg: Option<String>,
    pub jwks_uri: Option<String>,
    pub jwks: Option<serde_json::Value>,
    pub public_key_pem: Option<String>,
    pub client_name: Option<String>,
    pub client_uri: Option<String>,
    pub logo_uri: Option<String>,
    pub tos_uri: Option<String>,
    pub policy_uri: Option<String>,
    #[serde(default)]
    pub contacts: Vec<String>,
    pub software_id: Option<String>,
    pub software_version: Option<String>,
    pub id_token_signing_alg: Option<String>,
    pub access_token_format: Option<String>,
    pub access_token_ttl_seconds: Option<i64>,
    pub skip_consent: Option<bool>,
}

/// A client as the backend reports it (never with its secret).
#[derive(Clone, Debug, PartialEq)]
pub struct Client {
    /// The backend's handle for the client in its API paths.
    pub id: String,
    /// The public OAuth client id.
    pub client_id: String,
    pub settings: ClientSettings,
    pub active: bool,
    /// When the backend created it, if it says.
    pub created_at: Option<k8s_openapi::jiff::Timestamp>,
}

/// Credentials the backend issued: shown once, on create or rotate.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: Option<SecretString>,
}

/// A user's consent to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub id: String,
    pub scopes: Vec<String>,
    pub resource: Option<String>,
    pub status: String,
}

/// A management API that holds OAuth apps and clients.
#[async_trait]
pub trait Backend: Send + Sync {
    fn capabilities(&self) -> Capabilities;

    async fn list_apps(&self, deployment: Option<&str>) -> Result<Vec<App>>;
    async fn create_app(&self, deployment: Option<&str>, app: &NewApp) -> Result<App>;
    async fn update_app(&self, app: &AppKey, update: &AppUpdate) -> Result<App>;
    async fn verify_domain(&self, app: &AppKey) -> Result<DomainStatus>;
    async fn update_scope(&self, app: &AppKey, scope: &str, display_name: &str, description: &str) -> Result<App>;
    async fn set_scope_archived(&self, app: &AppKey, scope: &str, archived: bool) -> Result<App>;
    async fn set_scope_mapping(&self, app: &AppKey, scope: &str, mapping: &ScopeMapping) -> Result<App>;

    async fn list_clients(&self, app: &AppKey) -> Result<Vec<Client>>;
    async fn create_client(&self, app: &AppKey, settings: &ClientSettings) -> Result<(Client, Credentials)>;
    async fn update_client(&self, app: &AppKey, id: &str, settings: &ClientSettings) -> Result<Client>;
    /// Soft delete; a client that is already gone counts as done for the caller to decide.
    async fn deactivate_client(&self, app: &AppKey, id: &str) -> Result<()>;
    async fn rotate_secret(&self, app: &AppKey, id: &str) -> Result<SecretString>;

    async fn list_grants(&self, app: &AppKey, client: &str) -> Result<Vec<Grant>>;
    async fn revoke_grant(&self, app: &AppKey, client: &str, grant: &str) -> Result<()>;
}
