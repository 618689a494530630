//! The management backends behind one trait. The reconcilers know only [`Backend`] and the
//! types here, which speak in our own terms: app, scope, client, credentials, grant.

pub mod applications;
mod error;
pub mod http;
pub mod hydra;
pub mod keycloak;
pub mod mcp;
mod ratelimit;
mod secret;
pub mod wacht;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use error::{Error, ErrorCategory, MAX_WAIT, MIN_WAIT};
pub use ratelimit::RateLimiter;
pub use secret::{SecretString, new_secret};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a backend is and can do; the reconcilers check it before asking for a feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Which kind of client it keeps: a spec's mode needs its kind.
    pub kind: Kind,
    /// Clients can be listed (else each is read on its own).
    pub list_clients: bool,
    /// The operator chooses each client's id ([`ClientSettings::chosen_id_mut`]), so a client
    /// whose creation a crash hid is found again by reading that id.
    pub chosen_client_ids: bool,
    /// The backend keeps an owner on each client ([`ClientSettings::owner`]): its record, not
    /// the cluster's, says whose a client is.
    pub records_owner: bool,
}

/// A backend's public OAuth endpoints, for the `tokenUrl` and `issuer` keys of a Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// No trailing slash.
    pub issuer: String,
    pub token_url: String,
}

/// The key of a client's free-form metadata that names the resource (its UID) that owns it,
/// where the backend keeps metadata.
pub const OWNER_METADATA: &str = "oauth-operator.dev/owner";

/// The kinds of backend, by the kind of client ([`Mode`]) each keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Apps with clients, scopes and domains (the Wacht API).
    Wacht,
    /// Applications that are clients (the OAuth Applications API).
    Applications,
    /// Clients whose secret the user registers (the MCP OAuth clients API).
    Registered,
    Hydra,
    Keycloak,
}

/// Where an app lives: its deployment (`None`: the one the API key belongs to) and slug.
/// Backends without apps keep clients in the scope of their configuration and take
/// [`AppKey::none`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AppKey {
    pub deployment: Option<String>,
    pub slug: String,
}

impl AppKey {
    /// The key of a backend without apps.
    pub fn none() -> Self {
        Self { deployment: None, slug: String::new() }
    }
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
#[derive(Clone, Debug, Default, PartialEq, Hash, Serialize, Deserialize)]
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
    /// The kind of client, with what only that kind has.
    #[serde(skip)]
    pub mode: Mode,
}

/// The kinds of client, one per kind of backend (the Wacht API's has the common fields only).
#[derive(Clone, Debug, Default, PartialEq, Hash)]
pub enum Mode {
    #[default]
    Wacht,
    /// What the OAuth Applications API keeps of a client (its only settings there besides
    /// the redirect URIs).
    Application(Box<ApplicationSettings>),
    /// What the MCP OAuth clients API keeps of a registered client (all its settings there
    /// besides the redirect URIs), without the secret.
    Registered(Box<RegisteredSettings>),
    /// What Ory Hydra keeps of a client besides the common fields.
    Hydra(Box<HydraSettings>),
    /// What a Keycloak realm keeps of a client besides the common fields.
    Keycloak(Box<KeycloakSettings>),
}

impl ClientSettings {
    pub fn application(&self) -> Option<&ApplicationSettings> {
        match &self.mode {
            Mode::Application(a) => Some(a),
            _ => None,
        }
    }

    pub fn registered(&self) -> Option<&RegisteredSettings> {
        match &self.mode {
            Mode::Registered(r) => Some(r),
            _ => None,
        }
    }

    pub fn hydra(&self) -> Option<&HydraSettings> {
        match &self.mode {
            Mode::Hydra(h) => Some(h),
            _ => None,
        }
    }

    pub fn keycloak(&self) -> Option<&KeycloakSettings> {
        match &self.mode {
            Mode::Keycloak(k) => Some(k),
            _ => None,
        }
    }

    /// The id the operator chose for the client, where the backend lets it choose.
    pub fn chosen_id_mut(&mut self) -> Option<&mut String> {
        match &mut self.mode {
            Mode::Hydra(h) => Some(&mut h.client_id),
            Mode::Keycloak(k) => Some(&mut k.client_id),
            _ => None,
        }
    }

    /// The owner the backend records for the client: `None` where it keeps none, `Some("")`
    /// where it keeps one and none is set.
    pub fn owner(&self) -> Option<&str> {
        match &self.mode {
            Mode::Registered(r) => Some(r.metadata.get(OWNER_METADATA).and_then(|o| o.as_str()).unwrap_or_default()),
            Mode::Hydra(h) => Some(&h.owner),
            Mode::Keycloak(k) => Some(&k.owner),
            Mode::Wacht | Mode::Application(_) => None,
        }
    }

    /// Records `uid` as the owner (`""`: none), where the backend keeps one.
    pub fn set_owner(&mut self, uid: &str) {
        let metadata = match &mut self.mode {
            Mode::Registered(r) => &mut r.metadata,
            Mode::Hydra(h) => {
                h.owner = uid.to_string();
                &mut h.metadata
            }
            Mode::Keycloak(k) => return k.owner = uid.to_string(),
            Mode::Wacht | Mode::Application(_) => return,
        };
        match uid {
            "" => drop(metadata.remove(OWNER_METADATA)),
            uid => drop(metadata.insert(OWNER_METADATA.into(), uid.into())),
        }
    }
}

/// The settings of a kind of client a backend cannot do without (`spec.<field>`).
pub(crate) fn required<T>(settings: Option<T>, backend: &str, field: &str) -> Result<T> {
    settings.ok_or_else(|| Error::Unsendable { message: format!("{backend} needs spec.{field}") })
}

/// An application of the OAuth Applications API. `kind` and `owner_org_id` are set on
/// create only.
#[derive(Clone, Debug, Default, PartialEq, Hash)]
pub struct ApplicationSettings {
    pub name: String,
    /// `web`, `native`, `public` or `user-agent-based`.
    pub kind: String,
    pub owner_org_id: String,
    pub allowed_scopes: Vec<String>,
}

/// An upstream provider's client, registered with the MCP OAuth clients API. `provider` is
/// set on create only and unique in the backend's scope.
#[derive(Clone, Debug, Default, PartialEq, Hash)]
pub struct RegisteredSettings {
    pub provider: String,
    pub provider_name: String,
    /// The upstream client id (public; the secret travels apart).
    pub client_id: String,
    pub authorization_url: String,
    pub token_url: String,
    pub scopes: Vec<String>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub server_ids: Vec<String>,
    pub status: RegisteredStatus,
}

/// Whether a registered client is in use. `Revoked` is the backend's alone: a revoked
/// client cannot be used again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RegisteredStatus {
    #[default]
    Active,
    Inactive,
    Revoked,
}

/// A client of Ory Hydra. Its id is chosen by the operator; `owner` and the owner key of
/// `metadata` name the resource that manages it.
#[derive(Clone, Debug, Default, PartialEq, Hash)]
pub struct HydraSettings {
    pub client_id: String,
    pub owner: String,
    pub response_types: Vec<String>,
    /// Sorted and without repeats (Hydra keeps one space-separated string).
    pub scopes: Vec<String>,
    pub audience: Vec<String>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// The token lifespans that are set, by Hydra's field name, in milliseconds.
    pub lifespans: std::collections::BTreeMap<String, u64>,
}

/// A client of a Keycloak realm. Its `clientId` is chosen by the operator (the realm's
/// internal id is derived from it); `owner` is the attribute [`OWNER_METADATA`]. Lists are
/// sorted (Keycloak keeps sets).
#[derive(Clone, Debug, Default, PartialEq, Hash)]
pub struct KeycloakSettings {
    pub client_id: String,
    pub owner: String,
    pub description: String,
    pub web_origins: Vec<String>,
    /// `None`: the realm's defaults, not compared.
    pub default_scopes: Option<Vec<String>>,
    pub optional_scopes: Option<Vec<String>>,
    /// `pkce.code.challenge.method`; empty: none required.
    pub pkce_method: String,
    /// Enabled, with no flow the operator does not manage (implicit, password): always
    /// wanted, so that a change in the console is put back.
    pub enabled: bool,
}

/// A client as the backend reports it (never with its secret).
#[derive(Clone, Debug, PartialEq)]
pub struct Client {
    /// The backend's handle for the client in its API paths.
    pub id: String,
    /// The public OAuth client id.
    pub client_id: String,
    pub settings: Box<ClientSettings>,
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

/// A management API that holds OAuth apps and clients.
#[async_trait]
pub trait Backend: Send + Sync {
    fn capabilities(&self) -> Capabilities;

    /// The namespace that another tool's owner record names, where that tool keeps a
    /// namespace's objects (hydra-maester's `<name>/<namespace>`): that namespace's own.
    fn owner_namespace<'a>(&self, _owner: &'a str) -> Option<&'a str> {
        None
    }

    // Apps and scopes: the Wacht API's alone.
    async fn list_apps(&self, _deployment: Option<&str>) -> Result<Vec<App>> {
        Err(Error::Unsupported("apps"))
    }
    async fn create_app(&self, _deployment: Option<&str>, _app: &NewApp) -> Result<App> {
        Err(Error::Unsupported("apps"))
    }
    async fn update_app(&self, _app: &AppKey, _update: &AppUpdate) -> Result<App> {
        Err(Error::Unsupported("apps"))
    }
    async fn verify_domain(&self, _app: &AppKey) -> Result<DomainStatus> {
        Err(Error::Unsupported("domain verification"))
    }
    async fn update_scope(&self, _app: &AppKey, _scope: &str, _display_name: &str, _description: &str) -> Result<App> {
        Err(Error::Unsupported("scopes"))
    }
    async fn set_scope_archived(&self, _app: &AppKey, _scope: &str, _archived: bool) -> Result<App> {
        Err(Error::Unsupported("scopes"))
    }
    async fn set_scope_mapping(&self, _app: &AppKey, _scope: &str, _mapping: &ScopeMapping) -> Result<App> {
        Err(Error::Unsupported("scopes"))
    }

    async fn list_clients(&self, app: &AppKey) -> Result<Vec<Client>>;
    /// One client; `None` when the backend does not know it.
    async fn get_client(&self, app: &AppKey, id: &str) -> Result<Option<Client>> {
        Ok(self.list_clients(app).await?.into_iter().find(|c| c.id == id))
    }
    async fn create_client(&self, app: &AppKey, settings: &ClientSettings) -> Result<(Client, Credentials)>;
    /// Registers a client with the secret the user holds (a registered MCP client, or a client
    /// whose secret comes from the user's Secret where the backend lets the caller choose it);
    /// the secret is write-only.
    async fn register_client(
        &self,
        _app: &AppKey,
        _settings: &ClientSettings,
        _secret: &SecretString,
    ) -> Result<Client> {
        Err(Error::Unsupported("registered clients"))
    }
    /// Replaces a client's secret in place with the one the user holds.
    async fn set_client_secret(&self, _app: &AppKey, _id: &str, _secret: &SecretString) -> Result<()> {
        Err(Error::Unsupported("registered clients"))
    }
    async fn update_client(&self, app: &AppKey, id: &str, settings: &ClientSettings) -> Result<Client>;
    /// Soft delete; a client that is already gone counts as done for the caller to decide.
    async fn deactivate_client(&self, app: &AppKey, id: &str) -> Result<()>;
    async fn rotate_secret(&self, app: &AppKey, id: &str) -> Result<SecretString>;
}
