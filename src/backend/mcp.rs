//! The MCP OAuth clients API (`docs/backends/mcp.md`): upstream providers' clients whose
//! credentials the user holds and the operator registers (write-only).
//!
//! - Paths: `/v1/customers/{customer_id}/projects/{project_id}/mcp-oauth-clients[/{id}]`. The
//!   customer and project come from the backend configuration; when it names none the segment
//!   is left empty, which the API reads as the API key's session scope.
//! - JSON uses the documented snake_case names. `client_secret` is sent on create and, alone,
//!   on the PATCH that rotates it in place; it is never in an answer.
//! - Updates send every scalar (an empty string would leave a value as it is) and every
//!   collection with its `replace_*` flag, so that an emptied list is cleared.
//! - `provider` is unique per (customer, project) among clients not deleted; a second create
//!   answers 409, and the caller adopts the existing client.
//! - DELETE is a soft delete; deleted clients leave the list and GET answers 404.
//! - Guessed where the document is silent: list pages are read through `page.page_size` and
//!   `page.page_token` query parameters and `page.next_page_token` in the answer; errors are
//!   gRPC-gateway bodies `{"code", "message", "details"}` with the matching HTTP status.

use async_trait::async_trait;
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    AppKey, Backend, Capabilities, Client, ClientSettings, Credentials, Error, Kind, Mode, RegisteredSettings,
    RegisteredStatus, Result, SecretString,
    http::{self, Http, HttpConfig},
};

/// Clients asked for per list page, and the most pages read (a million clients): a list that
/// goes on longer ends with an error.
const PAGE_SIZE: &str = "100";
const MAX_PAGES: usize = 10_000;

pub struct McpBackend {
    http: Http,
    customer_id: String,
    project_id: String,
}

impl McpBackend {
    /// Empty ids stand for the API key's session customer and project.
    pub fn new(config: HttpConfig, customer_id: Option<String>, project_id: Option<String>) -> Result<Self> {
        Ok(Self {
            http: Http::new(config)?,
            customer_id: customer_id.unwrap_or_default(),
            project_id: project_id.unwrap_or_default(),
        })
    }

    fn url(&self, id: Option<&str>) -> Url {
        let mut segments =
            vec!["v1", "customers", &self.customer_id, "projects", &self.project_id, "mcp-oauth-clients"];
        segments.extend(id);
        self.http.url(&segments)
    }

    fn registered<'a>(&self, settings: &'a ClientSettings) -> Result<&'a RegisteredSettings> {
        super::required(settings.registered(), "an MCP OAuth clients backend", "registered")
    }
}

#[async_trait]
impl Backend for McpBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities { kind: Kind::Registered, list_clients: true, chosen_client_ids: false, records_owner: true }
    }

    async fn list_clients(&self, _: &AppKey) -> Result<Vec<Client>> {
        http::all_pages(MAX_PAGES, |token| async move {
            let mut url = self.url(None);
            url.query_pairs_mut().append_pair("page.page_size", PAGE_SIZE);
            if let Some(token) = &token {
                url.query_pairs_mut().append_pair("page.page_token", token);
            }
            let page: Page = self.http.call("list_mcp_clients", Method::GET, url, None).await?;
            let next = page.page.map(|p| p.next_page_token).filter(|t| !t.is_empty());
            Ok((page.clients.into_iter().map(Client::from).collect(), next))
        })
        .await
    }

    async fn get_client(&self, _: &AppKey, id: &str) -> Result<Option<Client>> {
        let read = self.http.call::<Wire>("get_mcp_client", Method::GET, self.url(Some(id)), None).await;
        Ok(http::found(read)?.map(Client::from))
    }

    async fn create_client(&self, _: &AppKey, _: &ClientSettings) -> Result<(Client, Credentials)> {
        Err(Error::Unsupported("issued secrets (MCP OAuth clients are registered with the user's secret)"))
    }

    async fn register_client(&self, _: &AppKey, settings: &ClientSettings, secret: &SecretString) -> Result<Client> {
        let r = self.registered(settings)?;
        let mut body = fields(r, &settings.redirect_uris);
        body.insert("provider".into(), r.provider.clone().into());
        body.insert("client_secret".into(), secret.expose().into());
        let wire: Wire =
            self.http.call("create_mcp_client", Method::POST, self.url(None), Some(&Value::Object(body))).await?;
        Ok(wire.into())
    }

    async fn update_client(&self, _: &AppKey, id: &str, settings: &ClientSettings) -> Result<Client> {
        let r = self.registered(settings)?;
        let mut body = fields(r, &settings.redirect_uris);
        for flag in ["replace_scopes", "replace_redirect_uris", "replace_metadata", "replace_server_ids"] {
            body.insert(flag.into(), true.into());
        }
        let url = self.url(Some(id));
        let wire: Wire = self.http.call("update_mcp_client", Method::PATCH, url, Some(&Value::Object(body))).await?;
        Ok(wire.into())
    }

    async fn set_client_secret(&self, _: &AppKey, id: &str, secret: &SecretString) -> Result<()> {
        let body = json!({"client_secret": secret.expose()});
        let _: Wire =
            self.http.call("rotate_mcp_client_secret", Method::PATCH, self.url(Some(id)), Some(&body)).await?;
        Ok(())
    }

    async fn deactivate_client(&self, _: &AppKey, id: &str) -> Result<()> {
        let _: Value = self.http.call("delete_mcp_client", Method::DELETE, self.url(Some(id)), None).await?;
        Ok(())
    }

    async fn rotate_secret(&self, _: &AppKey, _: &str) -> Result<SecretString> {
        Err(Error::Unsupported("issued secrets (change the credentials Secret to rotate)"))
    }
}

/// The settable fields of a create or update, without the secret.
fn fields(r: &RegisteredSettings, redirect_uris: &[String]) -> Map<String, Value> {
    let body = json!({
        "provider_name": r.provider_name,
        "client_id": r.client_id,
        "authorization_url": r.authorization_url,
        "token_url": r.token_url,
        "scopes": r.scopes,
        "redirect_uris": redirect_uris,
        "metadata": r.metadata,
        "server_ids": r.server_ids,
        "status": match r.status {
            RegisteredStatus::Active => "active",
            RegisteredStatus::Inactive => "inactive",
            RegisteredStatus::Revoked => "revoked",
        },
    });
    match body {
        Value::Object(map) => map,
        _ => unreachable!("a JSON object literal"),
    }
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    clients: Vec<Wire>,
    page: Option<PageOut>,
}

#[derive(Deserialize)]
struct PageOut {
    #[serde(default)]
    next_page_token: String,
}

/// A client as the API shows it (never with a secret).
#[derive(Deserialize)]
struct Wire {
    id: String,
    provider: String,
    #[serde(default)]
    provider_name: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    authorization_url: String,
    #[serde(default)]
    token_url: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    metadata: Option<Map<String, Value>>,
    #[serde(default)]
    server_ids: Vec<String>,
    #[serde(default)]
    status: String,
    created_at: Option<String>,
}

impl From<Wire> for Client {
    fn from(w: Wire) -> Self {
        // A status this adapter does not know counts as not in use.
        let status = match w.status.as_str() {
            "active" => RegisteredStatus::Active,
            "revoked" => RegisteredStatus::Revoked,
            _ => RegisteredStatus::Inactive,
        };
        Client {
            id: w.id,
            client_id: w.client_id.clone(),
            active: status == RegisteredStatus::Active,
            created_at: w.created_at.and_then(|t| t.parse().ok()),
            settings: Box::new(ClientSettings {
                redirect_uris: w.redirect_uris,
                mode: Mode::Registered(Box::new(RegisteredSettings {
                    provider: w.provider,
                    provider_name: w.provider_name,
                    client_id: w.client_id,
                    authorization_url: w.authorization_url,
                    token_url: w.token_url,
                    scopes: w.scopes,
                    metadata: w.metadata.unwrap_or_default(),
                    server_ids: w.server_ids,
                    status,
                })),
                ..Default::default()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(customer: Option<&str>) -> McpBackend {
        let config = HttpConfig {
            base_url: Url::parse("https://api.example.com").unwrap(),
            api_key: SecretString::new("k"),
            timeout: std::time::Duration::from_secs(1),
            requests_per_second: 0,
            ca_pem: None,
        };
        McpBackend::new(config, customer.map(String::from), Some("proj_1".into())).unwrap()
    }

    #[test]
    fn paths_leave_unset_ids_empty() {
        assert_eq!(
            backend(Some("cust_1")).url(Some("u1")).as_str(),
            "https://api.example.com/v1/customers/cust_1/projects/proj_1/mcp-oauth-clients/u1"
        );
        assert_eq!(
            backend(None).url(None).as_str(),
            "https://api.example.com/v1/customers//projects/proj_1/mcp-oauth-clients"
        );
    }

    #[test]
    fn updates_replace_every_collection_and_never_carry_a_secret() {
        let r = RegisteredSettings { provider: "github".into(), ..Default::default() };
        let body = fields(&r, &[]);
        assert_eq!((&body["scopes"], &body["status"]), (&json!([]), &json!("active")));
        assert!(!body.contains_key("client_secret") && !body.contains_key("provider"));
    }
}
