//! Ory Hydra's admin API (`docs/backends/hydra.md`): OAuth 2.0 clients of a real OAuth server.
//!
//! - `POST /admin/clients` creates (the id and the secret are ours: see below), `GET`, `PUT`
//!   (replaces every field: each is sent every time), `PATCH` (a JSON Patch; rotation replaces
//!   `/client_secret` alone) and `DELETE /admin/clients/{id}`. No disabled state: deactivating
//!   deletes.
//! - The operator chooses each client id, so a create that a crash hid is found again by GET
//!   (and a second POST answers 409): never a duplicate. Ids are URL-safe (Hydra can neither read
//!   nor delete one with `/`).
//! - Secrets come from the OS CSPRNG (256 bits), sent on create and rotation: Hydra stores a
//!   hash and shows none back.
//! - The list pages through the `Link` header (250 clients a page by default) until a page
//!   is empty or links no next one (Hydra links a next page even past the end); only the page
//!   token is taken from the header, never its host or path.
//! - No API key for a self-hosted admin port (none is sent); Ory Network takes a Bearer key.

use std::collections::BTreeMap;

use async_trait::async_trait;
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    AppKey, Backend, Capabilities, Client, ClientSettings, Credentials, Error, HydraSettings, Kind, Mode, Result,
    SecretString,
    http::{self, Http, HttpConfig},
    new_secret,
};

/// The most list pages read (250,000 clients at Hydra's default page size): a list that goes
/// on longer ends with an error.
const MAX_PAGES: usize = 1_000;

/// The scopes Hydra gives a client created without any.
pub const DEFAULT_SCOPES: [&str; 3] = ["offline", "offline_access", "openid"];

/// Hydra's token lifespan fields (Go durations).
pub const LIFESPANS: [&str; 7] = [
    "authorization_code_grant_access_token_lifespan",
    "authorization_code_grant_id_token_lifespan",
    "authorization_code_grant_refresh_token_lifespan",
    "client_credentials_grant_access_token_lifespan",
    "refresh_token_grant_access_token_lifespan",
    "refresh_token_grant_id_token_lifespan",
    "refresh_token_grant_refresh_token_lifespan",
];

pub struct HydraBackend {
    http: Http,
}

impl HydraBackend {
    pub fn new(config: HttpConfig) -> Result<Self> {
        Ok(Self { http: Http::new(config)? })
    }

    fn url(&self, id: Option<&str>) -> Url {
        let mut segments = vec!["admin", "clients"];
        segments.extend(id);
        self.http.url(&segments)
    }
}

/// Whether clients with this token endpoint auth method have a secret.
fn has_secret(method: &str) -> bool {
    matches!(method, "client_secret_basic" | "client_secret_post" | "client_secret_jwt")
}

#[async_trait]
impl Backend for HydraBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities { kind: Kind::Hydra, list_clients: true, chosen_client_ids: true, records_owner: true }
    }

    /// hydra-maester records `<name>/<namespace>` of its `OAuth2Client`.
    fn owner_namespace<'a>(&self, owner: &'a str) -> Option<&'a str> {
        owner.rsplit_once('/').filter(|(name, ns)| !name.is_empty() && !ns.is_empty()).map(|(_, ns)| ns)
    }

    async fn list_clients(&self, _: &AppKey) -> Result<Vec<Client>> {
        http::all_pages(MAX_PAGES, |token| async move {
            let mut url = self.url(None);
            if let Some(token) = &token {
                url.query_pairs_mut().append_pair("page_token", token);
            }
            let response = self.http.send("list_hydra_clients", self.http.client.get(url)).await.map_err(retryable)?;
            let link = response.headers().get_all(reqwest::header::LINK).iter().filter_map(|v| v.to_str().ok());
            let next = link.filter_map(next_page_token).next();
            let page: Vec<Wire> = http::parse(response).await?;
            // Hydra links a next page even past the end (an empty list links offset 250).
            let next = next.filter(|_| !page.is_empty());
            Ok((page.into_iter().map(Client::from).collect(), next))
        })
        .await
    }

    async fn get_client(&self, _: &AppKey, id: &str) -> Result<Option<Client>> {
        let read =
            self.http.call::<Wire>("get_hydra_client", Method::GET, self.url(Some(id)), None).await.map_err(retryable);
        Ok(http::found(read)?.map(Client::from))
    }

    async fn create_client(&self, _: &AppKey, settings: &ClientSettings) -> Result<(Client, Credentials)> {
        let secret = if has_secret(&settings.client_auth_method) { Some(new_secret()?) } else { None };
        let client = self.create(settings, secret.as_ref()).await?;
        let credentials = Credentials { client_id: client.client_id.clone(), client_secret: secret };
        Ok((client, credentials))
    }

    async fn register_client(&self, _: &AppKey, settings: &ClientSettings, secret: &SecretString) -> Result<Client> {
        self.create(settings, Some(secret)).await
    }

    async fn set_client_secret(&self, _: &AppKey, id: &str, secret: &SecretString) -> Result<()> {
        let patch = json!([{"op": "replace", "path": "/client_secret", "value": secret.expose()}]);
        let _: Value = self
            .http
            .call("set_hydra_secret", Method::PATCH, self.url(Some(id)), Some(&patch))
            .await
            .map_err(retryable)?;
        Ok(())
    }

    async fn update_client(&self, _: &AppKey, id: &str, settings: &ClientSettings) -> Result<Client> {
        let body = body(settings, None)?;
        let wire: Wire = self
            .http
            .call("update_hydra_client", Method::PUT, self.url(Some(id)), Some(&body))
            .await
            .map_err(retryable)?;
        Ok(wire.into())
    }

    async fn deactivate_client(&self, _: &AppKey, id: &str) -> Result<()> {
        let request = self.http.client.delete(self.url(Some(id)));
        self.http.send("delete_hydra_client", request).await.map(drop).map_err(retryable)
    }

    async fn rotate_secret(&self, app: &AppKey, id: &str) -> Result<SecretString> {
        let secret = new_secret()?;
        self.set_client_secret(app, id, &secret).await?;
        Ok(secret)
    }
}

impl HydraBackend {
    /// Creates the client with this secret (none for a method without one).
    async fn create(&self, settings: &ClientSettings, secret: Option<&SecretString>) -> Result<Client> {
        let body = body(settings, secret)?;
        let wire: Wire = self
            .http
            .call("create_hydra_client", Method::POST, self.url(None), Some(&body))
            .await
            .map_err(retryable)?;
        Ok(Client::from(wire))
    }
}

/// Hydra answers 400 "Unable to serialize access due to a concurrent update in another
/// session" when its database aborted the request's transaction for conflicting with another
/// (seen under load): nothing was stored, and the same request succeeds when tried again.
fn retryable(e: Error) -> Error {
    match e {
        Error::Invalid { status: 400, message } if message.contains("concurrent update") => {
            Error::Transient { message }
        }
        e => e,
    }
}

/// The page token of a `Link` header's `rel="next"` target, if it has one.
fn next_page_token(header: &str) -> Option<String> {
    header.split(',').find_map(|link| {
        let (target, params) = link.split_once(';')?;
        let next = params.split(';').any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let url = Url::parse("http://link.invalid/").ok()?.join(target).ok()?;
        let token = url.query_pairs().find(|(k, _)| k == "page_token").map(|(_, v)| v.into_owned());
        token.filter(|_| next)
    })
}

/// The full client as PUT and POST take it; `secret` sets a new one.
fn body(settings: &ClientSettings, secret: Option<&SecretString>) -> Result<Value> {
    let h = super::required(settings.hydra(), "an Ory Hydra backend", "hydra")?;
    let mut body = json!({
        "client_id": h.client_id,
        "owner": h.owner,
        "metadata": h.metadata,
        "client_name": settings.client_name.clone().unwrap_or_default(),
        "grant_types": settings.grant_types,
        "response_types": h.response_types,
        "scope": h.scopes.join(" "),
        "audience": h.audience,
        "redirect_uris": settings.redirect_uris,
        "post_logout_redirect_uris": settings.post_logout_redirect_uris,
        "token_endpoint_auth_method": settings.client_auth_method,
        "client_uri": settings.client_uri.clone().unwrap_or_default(),
        "logo_uri": settings.logo_uri.clone().unwrap_or_default(),
        "tos_uri": settings.tos_uri.clone().unwrap_or_default(),
        "policy_uri": settings.policy_uri.clone().unwrap_or_default(),
        "contacts": settings.contacts,
        "skip_consent": settings.skip_consent.unwrap_or(false),
    });
    let optional = [
        ("token_endpoint_auth_signing_alg", settings.token_endpoint_auth_signing_alg.clone().map(Value::from)),
        ("jwks_uri", settings.jwks_uri.clone().map(Value::from)),
        ("jwks", settings.jwks.clone()),
        ("access_token_strategy", settings.access_token_format.clone().map(Value::from)),
        ("client_secret", secret.map(|s| s.expose().into())),
    ];
    for (field, value) in optional {
        if let Some(value) = value {
            body[field] = value;
        }
    }
    for (field, ms) in &h.lifespans {
        body[field.as_str()] = format!("{ms}ms").into();
    }
    Ok(body)
}

/// A client as Hydra shows it (never with its secret). Hydra writes `null` for empty lists
/// and `""` for unset text.
#[derive(Deserialize)]
struct Wire {
    client_id: String,
    client_name: Option<String>,
    owner: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    scope: Option<String>,
    audience: Option<Vec<String>>,
    redirect_uris: Option<Vec<String>>,
    post_logout_redirect_uris: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    token_endpoint_auth_signing_alg: Option<String>,
    jwks_uri: Option<String>,
    jwks: Option<Value>,
    client_uri: Option<String>,
    logo_uri: Option<String>,
    tos_uri: Option<String>,
    policy_uri: Option<String>,
    contacts: Option<Vec<String>>,
    skip_consent: Option<bool>,
    access_token_strategy: Option<String>,
    metadata: Option<Map<String, Value>>,
    created_at: Option<String>,
    #[serde(flatten)]
    rest: BTreeMap<String, Value>,
}

impl From<Wire> for Client {
    fn from(w: Wire) -> Self {
        let text = |v: Option<String>| v.filter(|t| !t.is_empty());
        let mut scopes: Vec<String> = w.scope.unwrap_or_default().split_whitespace().map(String::from).collect();
        scopes.sort();
        scopes.dedup();
        let lifespans = LIFESPANS
            .iter()
            .filter_map(|field| {
                let value = w.rest.get(*field)?.as_str()?;
                let ms = crate::duration::parse_duration(value).ok()?.as_millis();
                Some((field.to_string(), u64::try_from(ms).unwrap_or(u64::MAX)))
            })
            .collect();
        // Hydra shows `{}` for a client without keys.
        let jwks = w.jwks.filter(|j| j.get("keys").is_some());
        Client {
            id: w.client_id.clone(),
            client_id: w.client_id.clone(),
            active: true,
            created_at: w.created_at.and_then(|t| t.parse().ok()),
            settings: Box::new(ClientSettings {
                client_auth_method: w.token_endpoint_auth_method.unwrap_or_default(),
                grant_types: w.grant_types.unwrap_or_default(),
                redirect_uris: w.redirect_uris.unwrap_or_default(),
                post_logout_redirect_uris: w.post_logout_redirect_uris.unwrap_or_default(),
                token_endpoint_auth_signing_alg: text(w.token_endpoint_auth_signing_alg),
                jwks_uri: text(w.jwks_uri),
                jwks,
                client_name: text(w.client_name),
                client_uri: text(w.client_uri),
                logo_uri: text(w.logo_uri),
                tos_uri: text(w.tos_uri),
                policy_uri: text(w.policy_uri),
                contacts: w.contacts.unwrap_or_default(),
                access_token_format: text(w.access_token_strategy),
                skip_consent: w.skip_consent,
                mode: Mode::Hydra(Box::new(HydraSettings {
                    client_id: w.client_id,
                    owner: w.owner.unwrap_or_default(),
                    response_types: w.response_types.unwrap_or_default(),
                    scopes,
                    audience: w.audience.unwrap_or_default(),
                    metadata: w.metadata.unwrap_or_default(),
                    lifespans,
                })),
                ..Default::default()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_serialization_conflict_is_retried_other_refusals_are_not() {
        let conflict = "Unable to serialize access due to a concurrent update in another session";
        let retried = retryable(Error::Invalid { status: 400, message: conflict.into() });
        assert!(matches!(retried, Error::Transient { .. }), "{retried:?}");
        let refused = retryable(Error::Invalid { status: 400, message: "invalid_redirect_uri".into() });
        assert!(matches!(refused, Error::Invalid { status: 400, .. }), "{refused:?}");
    }

    #[test]
    fn the_next_page_token_comes_from_the_link_header_only() {
        let header = r#"</admin/clients?page_size=250&page_token=eyJvZmZzZXQiOiIyNTAifQ>; rel="next", </admin/clients?page_size=250&page_token=eyJvZmZzZXQiOiIwIn0>; rel="first""#;
        assert_eq!(next_page_token(header).as_deref(), Some("eyJvZmZzZXQiOiIyNTAifQ"));
        assert_eq!(next_page_token(r#"</admin/clients?page_token=a>; rel="first""#), None, "the last page");
        assert_eq!(
            next_page_token(r#"<https://elsewhere.example/steal?page_token=b>; rel="next""#).as_deref(),
            Some("b"),
            "only the token is used: the request goes to the configured base URL"
        );
        assert_eq!(next_page_token("garbage"), None);
    }

    #[test]
    fn a_hydra_client_reads_with_its_nulls_and_defaults_normalized() {
        let wire: Wire = serde_json::from_value(json!({
            "client_id": "c1", "client_name": "", "redirect_uris": null, "grant_types": ["client_credentials"],
            "response_types": null, "scope": "openid offline_access offline", "audience": [], "owner": "u1",
            "jwks": {}, "token_endpoint_auth_method": "client_secret_post", "metadata": {"a": "b"},
            "client_credentials_grant_access_token_lifespan": "1h30m0s",
            "authorization_code_grant_access_token_lifespan": null, "skip_consent": false,
            "created_at": "2026-11-28T07:05:20Z"
        }))
        .unwrap();
        let client = Client::from(wire);
        let h = client.settings.hydra().expect("hydra settings");
        assert_eq!(h.scopes, DEFAULT_SCOPES);
        assert_eq!(h.lifespans.len(), 1);
        assert_eq!(h.lifespans["client_credentials_grant_access_token_lifespan"], 5_400_000);
        assert_eq!((client.settings.jwks.as_ref(), client.settings.client_name.as_ref()), (None, None));
        assert!(client.settings.redirect_uris.is_empty());
    }

    #[test]
    fn the_body_carries_every_field_and_the_secret_only_when_given() {
        let settings = ClientSettings {
            client_auth_method: "client_secret_basic".into(),
            mode: Mode::Hydra(Box::new(HydraSettings {
                client_id: "c1".into(),
                lifespans: BTreeMap::from([(LIFESPANS[3].to_string(), 60_000)]),
                ..Default::default()
            })),
            ..Default::default()
        };
        let update = body(&settings, None).unwrap();
        assert_eq!(update["metadata"], json!({}), "PUT resets what it leaves out: metadata is always sent");
        assert_eq!(update[LIFESPANS[3]], "60000ms");
        assert!(update.get("client_secret").is_none());
        let created = body(&settings, Some(&SecretString::new("s3cr3t-value"))).unwrap();
        assert_eq!(created["client_secret"], "s3cr3t-value");
        assert!(body(&ClientSettings::default(), None).is_err(), "a spec without hydra cannot be sent");
    }
}
