//! The Wacht-style deployment API (`docs/backends/wacht.md`).
//!
//! - Two path layouts: `/deployments/{deployment}/oauth/apps/...` when a deployment is known
//!   (from the resource or the backend configuration), else `/oauth/apps/...`, where the API key
//!   decides the deployment. All paths are built in [`WachtBackend::url`].
//! - Apps are created with `multipart/form-data`; everything else is JSON.
//! - Client paths take the numeric row id (`Client::id`), not the `oc_...` client id.
//! - A PATCH of an app that omits `scope_definitions` resets them, so updates always send them.
//! - Errors come as `{"errors":[{"message","code"}]}`; a `data` wrapper around a response is
//!   accepted though the backend sends the object itself.
//! - Guessed where the documents are silent: `Retry-After` is read as seconds, falling back to
//!   the number in "Retry after N seconds"; text fields cleared by the spec are sent as `""`.

use async_trait::async_trait;
use reqwest::{Method, Url, multipart};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    App, AppKey, AppUpdate, Backend, Capabilities, Client, ClientSettings, Credentials, DomainStatus, Error, Kind,
    NewApp, Result, Scope, ScopeMapping, SecretString,
    http::{Http, HttpConfig, parse},
};

pub struct WachtBackend {
    http: Http,
    /// Deployment for resources that name none; `None` uses the key-scoped layout.
    deployment: Option<String>,
}

impl WachtBackend {
    pub fn new(config: HttpConfig, deployment: Option<String>) -> Result<Self> {
        Ok(Self { http: Http::new(config)?, deployment })
    }

    /// `{base}[/deployments/{deployment}]/oauth/apps/{segments...}`.
    fn url(&self, deployment: Option<&str>, segments: &[&str]) -> Url {
        let mut path: Vec<&str> = Vec::with_capacity(segments.len() + 4);
        if let Some(dep) = deployment.or(self.deployment.as_deref()) {
            path.extend(["deployments", dep]);
        }
        path.extend(["oauth", "apps"]);
        path.extend(segments);
        self.http.url(&path)
    }

    fn app_url(&self, app: &AppKey, rest: &[&str]) -> Url {
        let segments: Vec<&str> = [app.slug.as_str()].into_iter().chain(rest.iter().copied()).collect();
        self.url(app.deployment.as_deref(), &segments)
    }

    async fn call_app(
        &self,
        op: &'static str,
        app: &AppKey,
        method: Method,
        rest: &[&str],
        body: Option<&Value>,
    ) -> Result<App> {
        let wire: WireApp = self.http.call(op, method, self.app_url(app, rest), body).await?;
        Ok(wire.into())
    }
}

#[async_trait]
impl Backend for WachtBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities { kind: Kind::Wacht, list_clients: true, chosen_client_ids: false, records_owner: false }
    }

    async fn list_apps(&self, deployment: Option<&str>) -> Result<Vec<App>> {
        let list: AppList = self.http.call("list_apps", Method::GET, self.url(deployment, &[]), None).await?;
        Ok(list.apps.into_iter().map(App::from).collect())
    }

    async fn create_app(&self, deployment: Option<&str>, app: &NewApp) -> Result<App> {
        let mut form = multipart::Form::new()
            .text("slug", app.slug.clone())
            .text("name", app.name.clone())
            .text("allow_dynamic_client_registration", app.allow_dynamic_client_registration.to_string());
        if let Some(description) = &app.description {
            form = form.text("description", description.clone());
        }
        if let Some(fqdn) = &app.fqdn {
            form = form.text("fqdn", fqdn.clone());
        }
        if !app.scopes.is_empty() {
            let names: Vec<&str> = app.scopes.iter().map(|s| s.name.as_str()).collect();
            form = form
                .text("supported_scopes", names.join(","))
                .text("scope_definitions", scope_definitions(&app.scopes).to_string());
        }
        if let Some(logo) = &app.logo {
            let part = multipart::Part::bytes(logo.bytes.clone())
                .file_name(logo.filename.clone())
                .mime_str(&logo.content_type)
                .map_err(|_| Error::Unsendable { message: format!("logo content type {:?}", logo.content_type) })?;
            form = form.part("logo", part);
        }
        let request = self.http.client.post(self.url(deployment, &[])).multipart(form);
        let wire: WireApp = parse(self.http.send("create_app", request).await?).await?;
        Ok(wire.into())
    }

    async fn update_app(&self, app: &AppKey, update: &AppUpdate) -> Result<App> {
        let mut body = json!({
            "supported_scopes": update.scopes.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            "scope_definitions": scope_definitions(&update.scopes),
        });
        let fields = [
            ("name", update.name.clone().map(Value::from)),
            ("description", update.description.clone().map(Value::from)),
            ("allow_dynamic_client_registration", update.allow_dynamic_client_registration.map(Value::from)),
            ("is_active", update.active.map(Value::from)),
        ];
        for (key, value) in fields {
            if let Some(value) = value {
                body[key] = value;
            }
        }
        self.call_app("update_app", app, Method::PATCH, &[], Some(&body)).await
    }

    async fn verify_domain(&self, app: &AppKey) -> Result<DomainStatus> {
        self.http.call("verify_domain", Method::POST, self.app_url(app, &["verify-domain"]), None).await
    }

    async fn update_scope(&self, app: &AppKey, scope: &str, display_name: &str, description: &str) -> Result<App> {
        let body = json!({"display_name": display_name, "description": description});
        self.call_app("update_scope", app, Method::PATCH, &["scopes", scope], Some(&body)).await
    }

    async fn set_scope_archived(&self, app: &AppKey, scope: &str, archived: bool) -> Result<App> {
        let (op, action) = if archived { ("archive_scope", "archive") } else { ("unarchive_scope", "unarchive") };
        self.call_app(op, app, Method::POST, &["scopes", scope, action], None).await
    }

    async fn set_scope_mapping(&self, app: &AppKey, scope: &str, mapping: &ScopeMapping) -> Result<App> {
        let body = match mapping {
            ScopeMapping::Personal => json!({"category": "personal"}),
            ScopeMapping::Organization(p) => {
                json!({"category": "organization", "organization_permission": p})
            }
            ScopeMapping::Workspace(p) => {
                json!({"category": "workspace", "workspace_permission": p})
            }
        };
        self.call_app("set_scope_mapping", app, Method::POST, &["scopes", scope, "mapping"], Some(&body)).await
    }

    async fn list_clients(&self, app: &AppKey) -> Result<Vec<Client>> {
        let list: ClientList =
            self.http.call("list_clients", Method::GET, self.app_url(app, &["clients"]), None).await?;
        Ok(list.clients)
    }

    async fn create_client(&self, app: &AppKey, settings: &ClientSettings) -> Result<(Client, Credentials)> {
        let body = create_body(settings);
        let wire: WireClient =
            self.http.call("create_client", Method::POST, self.app_url(app, &["clients"]), Some(&body)).await?;
        let (client, secret) = wire.split();
        let credentials = Credentials { client_id: client.client_id.clone(), client_secret: secret };
        Ok((client, credentials))
    }

    async fn update_client(&self, app: &AppKey, id: &str, settings: &ClientSettings) -> Result<Client> {
        let body = update_body(settings);
        let wire: WireClient =
            self.http.call("update_client", Method::PATCH, self.app_url(app, &["clients", id]), Some(&body)).await?;
        Ok(wire.split().0)
    }

    async fn deactivate_client(&self, app: &AppKey, id: &str) -> Result<()> {
        let request = self.http.client.delete(self.app_url(app, &["clients", id]));
        self.http.send("deactivate_client", request).await.map(drop)
    }

    async fn rotate_secret(&self, app: &AppKey, id: &str) -> Result<SecretString> {
        let rotated: Rotated = self
            .http
            .call("rotate_secret", Method::POST, self.app_url(app, &["clients", id, "rotate-secret"]), None)
            .await?;
        Ok(SecretString::new(rotated.client_secret))
    }
}

/// Text fields that an update clears by sending `""`.
const CLEARABLE: &[&str] = &[
    "token_endpoint_auth_signing_alg",
    "jwks_uri",
    "public_key_pem",
    "client_name",
    "client_uri",
    "logo_uri",
    "tos_uri",
    "policy_uri",
    "software_id",
    "software_version",
];

/// A create request: the settings without the unset fields.
fn create_body(settings: &ClientSettings) -> Value {
    let mut body = serde_json::to_value(settings).expect("settings serialize");
    if let Value::Object(fields) = &mut body {
        fields.retain(|_, v| !v.is_null());
    }
    body
}

/// An update request: arrays replace, unset text fields are cleared, other unset fields stay.
fn update_body(settings: &ClientSettings) -> Value {
    let mut body = serde_json::to_value(settings).expect("settings serialize");
    if let Value::Object(fields) = &mut body {
        for key in CLEARABLE {
            if fields.get(*key).is_some_and(Value::is_null) {
                fields.insert(key.to_string(), Value::from(""));
            }
        }
        fields.retain(|_, v| !v.is_null());
    }
    body
}

fn scope_definitions(scopes: &[Scope]) -> Value {
    scopes
        .iter()
        .map(|s| {
            let (category, org, ws) = match &s.mapping {
                None => ("", None, None),
                Some(ScopeMapping::Personal) => ("personal", None, None),
                Some(ScopeMapping::Organization(p)) => ("organization", Some(p.as_str()), None),
                Some(ScopeMapping::Workspace(p)) => ("workspace", None, Some(p.as_str())),
            };
            json!({
                "scope": s.name,
                "display_name": s.display_name,
                "description": s.description,
                "archived": s.archived,
                "category": category,
                "organization_permission": org,
                "workspace_permission": ws,
            })
        })
        .collect()
}

#[derive(Deserialize)]
struct AppList {
    apps: Vec<WireApp>,
}

#[derive(Deserialize)]
struct WireApp {
    id: String,
    slug: String,
    name: String,
    description: Option<String>,
    fqdn: Option<String>,
    #[serde(default)]
    scope_definitions: Vec<WireScope>,
    #[serde(default)]
    allow_dynamic_client_registration: bool,
    #[serde(default = "yes")]
    is_active: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct WireScope {
    scope: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    archived: bool,
    #[serde(default)]
    category: String,
    organization_permission: Option<String>,
    workspace_permission: Option<String>,
}

impl From<WireApp> for App {
    fn from(w: WireApp) -> Self {
        App {
            id: w.id,
            slug: w.slug,
            name: w.name,
            description: w.description,
            fqdn: w.fqdn,
            scopes: w.scope_definitions.into_iter().map(Scope::from).collect(),
            allow_dynamic_client_registration: w.allow_dynamic_client_registration,
            active: w.is_active,
        }
    }
}

impl From<WireScope> for Scope {
    fn from(w: WireScope) -> Self {
        let mapping = match w.category.as_str() {
            "personal" => Some(ScopeMapping::Personal),
            "organization" => Some(ScopeMapping::Organization(w.organization_permission.unwrap_or_default())),
            "workspace" => Some(ScopeMapping::Workspace(w.workspace_permission.unwrap_or_default())),
            _ => None,
        };
        Scope { name: w.scope, display_name: w.display_name, description: w.description, archived: w.archived, mapping }
    }
}

#[derive(Deserialize)]
struct ClientList {
    #[serde(deserialize_with = "clients")]
    clients: Vec<Client>,
}

/// The clients of a list, each converted as it is read: a list holds thousands, and a second
/// vector of their wire form would double the peak.
fn clients<'de, D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Vec<Client>, D::Error> {
    struct Clients;
    impl<'de> serde::de::Visitor<'de> for Clients {
        type Value = Vec<Client>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of clients")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Vec<Client>, A::Error> {
            let mut clients = Vec::new();
            while let Some(wire) = seq.next_element::<WireClient>()? {
                clients.push(wire.split().0);
            }
            clients.shrink_to_fit();
            Ok(clients)
        }
    }
    deserializer.deserialize_seq(Clients)
}

#[derive(Deserialize)]
struct WireClient {
    id: String,
    client_id: String,
    #[serde(default = "yes")]
    is_active: bool,
    client_secret: Option<String>,
    created_at: Option<String>,
    #[serde(flatten)]
    settings: ClientSettings,
}

impl WireClient {
    fn split(self) -> (Client, Option<SecretString>) {
        let client = Client {
            id: self.id,
            client_id: self.client_id,
            settings: Box::new(self.settings),
            active: self.is_active,
            created_at: self.created_at.and_then(|t| t.parse().ok()),
        };
        (client, self.client_secret.map(SecretString::new))
    }
}

#[derive(Deserialize)]
struct Rotated {
    client_secret: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(base: &str, deployment: Option<&str>) -> WachtBackend {
        let config = HttpConfig {
            base_url: Url::parse(base).unwrap(),
            api_key: SecretString::new("k"),
            timeout: std::time::Duration::from_secs(1),
            requests_per_second: 0,
            ca_pem: None,
        };
        WachtBackend::new(config, deployment.map(String::from)).unwrap()
    }

    #[test]
    fn paths_follow_both_layouts() {
        let key = AppKey { deployment: None, slug: "mcp-auth".into() };
        let scoped = backend("https://api.example.com", Some("dep_1"));
        assert_eq!(
            scoped.app_url(&key, &["scopes", "mcp:invoke", "archive"]).as_str(),
            "https://api.example.com/deployments/dep_1/oauth/apps/mcp-auth/scopes/mcp:invoke/archive"
        );
        let keyed = backend("https://api.example.com/", None);
        assert_eq!(
            keyed.app_url(&key, &["clients", "42"]).as_str(),
            "https://api.example.com/oauth/apps/mcp-auth/clients/42"
        );
        let own = AppKey { deployment: Some("dep_2".into()), slug: "a b".into() };
        assert_eq!(keyed.app_url(&own, &[]).as_str(), "https://api.example.com/deployments/dep_2/oauth/apps/a%20b");
    }

    #[test]
    fn update_clears_unset_text_and_keeps_arrays() {
        let settings = ClientSettings {
            client_auth_method: "client_secret_basic".into(),
            grant_types: vec!["authorization_code".into()],
            redirect_uris: vec![],
            ..Default::default()
        };
        let body = update_body(&settings);
        assert_eq!(body["jwks_uri"], "");
        assert_eq!(body["redirect_uris"], json!([]));
        assert!(body.get("access_token_ttl_seconds").is_none());
        assert!(body.get("jwks").is_none());
        let create = create_body(&settings);
        assert!(create.get("jwks_uri").is_none());
    }
}
