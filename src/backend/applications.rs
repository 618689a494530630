//! The OAuth Applications REST API (`docs/backends/applications.md`): one application per OAuthClient.
//!
//! - `POST /api/oauth-applications` registers (the answer carries `clientSecret`, once),
//!   `GET`/`PATCH`/`DELETE /api/oauth-applications/{id}` read, update and soft-disable,
//!   `POST .../{id}/rotate-secret` rotates. `{id}` is the public `clientId`. JSON is camelCase.
//! - No apps, scopes, grants or list: a client is read by its id.
//! - `type` and `ownerOrgId` are set on register only; `ownerOrgId` comes from the resource,
//!   else from the backend configuration.
//! - A disabled application stays readable with `disabled: true` and cannot be enabled again:
//!   `active: true` after `false` registers a new one (as with Wacht clients).
//! - Guessed where the document is silent: error bodies are `{"error": "..."}` with the usual
//!   statuses (400, 401, 404, 429 with `Retry-After` in seconds); a GET of an unknown id is 404.

use async_trait::async_trait;
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    AppKey, ApplicationSettings, Backend, Capabilities, Client, ClientSettings, Credentials, Error, Kind, Mode, Result,
    SecretString,
    http::{self, Http, HttpConfig},
};

pub struct ApplicationsBackend {
    http: Http,
    /// Owner of applications whose resource names none.
    owner_org_id: Option<String>,
}

impl ApplicationsBackend {
    pub fn new(config: HttpConfig, owner_org_id: Option<String>) -> Result<Self> {
        Ok(Self { http: Http::new(config)?, owner_org_id })
    }

    fn url(&self, rest: &[&str]) -> Url {
        let segments: Vec<&str> = ["api", "oauth-applications"].into_iter().chain(rest.iter().copied()).collect();
        self.http.url(&segments)
    }

    fn application<'a>(&self, settings: &'a ClientSettings) -> Result<&'a ApplicationSettings> {
        super::required(settings.application(), "an OAuth Applications backend", "application")
    }
}

#[async_trait]
impl Backend for ApplicationsBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities { kind: Kind::Applications, list_clients: false, chosen_client_ids: false, records_owner: false }
    }

    async fn list_clients(&self, _: &AppKey) -> Result<Vec<Client>> {
        Err(Error::Unsupported("listing applications"))
    }

    async fn get_client(&self, _: &AppKey, id: &str) -> Result<Option<Client>> {
        let read = self.http.call::<Wire>("get_application", Method::GET, self.url(&[id]), None).await;
        Ok(http::found(read)?.map(Client::from))
    }

    async fn create_client(&self, _: &AppKey, settings: &ClientSettings) -> Result<(Client, Credentials)> {
        let app = self.application(settings)?;
        let owner = Some(app.owner_org_id.as_str()).filter(|o| !o.is_empty()).or(self.owner_org_id.as_deref());
        let Some(owner) = owner else {
            return Err(Error::Unsendable {
                message: "ownerOrgId: set spec.application.ownerOrgId or ownerOrgId in the backend configuration"
                    .into(),
            });
        };
        let mut body = json!({
            "ownerOrgId": owner,
            "name": app.name,
            "type": app.kind,
            "redirectUrls": settings.redirect_uris,
        });
        if !app.allowed_scopes.is_empty() {
            body["allowedScopes"] = json!(app.allowed_scopes);
        }
        let issued: Issued = self.http.call("register_application", Method::POST, self.url(&[]), Some(&body)).await?;
        Ok(issued.split())
    }

    async fn update_client(&self, _: &AppKey, id: &str, settings: &ClientSettings) -> Result<Client> {
        let app = self.application(settings)?;
        let body = json!({
            "name": app.name,
            "redirectUrls": settings.redirect_uris,
            "allowedScopes": app.allowed_scopes,
        });
        let wire: Wire = self.http.call("update_application", Method::PATCH, self.url(&[id]), Some(&body)).await?;
        Ok(wire.into())
    }

    async fn deactivate_client(&self, _: &AppKey, id: &str) -> Result<()> {
        let _: Value = self.http.call("disable_application", Method::DELETE, self.url(&[id]), None).await?;
        Ok(())
    }

    async fn rotate_secret(&self, _: &AppKey, id: &str) -> Result<SecretString> {
        let issued: Issued =
            self.http.call("rotate_application_secret", Method::POST, self.url(&[id, "rotate-secret"]), None).await?;
        issued
            .split()
            .1
            .client_secret
            .ok_or(Error::Transient { message: "rotate-secret answered no clientSecret".into() })
    }
}

/// An application as the API shows it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    client_id: String,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    redirect_urls: Vec<String>,
    #[serde(default)]
    owner_org_id: String,
    #[serde(default)]
    allowed_scopes: Vec<String>,
    #[serde(default)]
    disabled: bool,
    created_at: Option<String>,
}

impl From<Wire> for Client {
    fn from(w: Wire) -> Self {
        Client {
            id: w.client_id.clone(),
            client_id: w.client_id,
            settings: Box::new(ClientSettings {
                redirect_uris: w.redirect_urls,
                mode: Mode::Application(Box::new(ApplicationSettings {
                    name: w.name,
                    kind: w.kind,
                    owner_org_id: w.owner_org_id,
                    allowed_scopes: w.allowed_scopes,
                })),
                ..Default::default()
            }),
            active: !w.disabled,
            created_at: w.created_at.and_then(|t| t.parse().ok()),
        }
    }
}

/// The answer of register and rotate-secret: the application and its secret, shown once.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Issued {
    application: Wire,
    client_secret: Option<String>,
}

impl Issued {
    fn split(self) -> (Client, Credentials) {
        let client = Client::from(self.application);
        let credentials = Credentials {
            client_id: client.client_id.clone(),
            client_secret: self.client_secret.map(SecretString::new),
        };
        (client, credentials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_under_api_oauth_applications() {
        let config = HttpConfig {
            base_url: Url::parse("https://id.example.com/").unwrap(),
            api_key: SecretString::new("k"),
            timeout: std::time::Duration::from_secs(1),
            requests_per_second: 0,
            ca_pem: None,
        };
        let backend = ApplicationsBackend::new(config, None).unwrap();
        assert_eq!(
            backend.url(&["app_1", "rotate-secret"]).as_str(),
            "https://id.example.com/api/oauth-applications/app_1/rotate-secret"
        );
    }

    #[test]
    fn an_application_reads_as_a_client() {
        let wire: Wire = serde_json::from_value(json!({
            "clientId": "c1", "name": "Web", "type": "web", "redirectUrls": ["https://a.example.com/cb"],
            "ownerOrgId": "org", "allowedScopes": ["workspace:read"], "isFirstParty": false, "disabled": true,
            "createdAt": "2026-11-24T10:00:00Z", "updatedAt": "2026-11-24T10:00:00Z"
        }))
        .unwrap();
        let client = Client::from(wire);
        assert_eq!(client.id, "c1");
        assert!(!client.active);
        let app = client.settings.application().expect("application settings");
        assert_eq!((app.kind.as_str(), app.allowed_scopes.len()), ("web", 1));
    }
}
