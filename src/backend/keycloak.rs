//! Keycloak's admin REST API (`docs/backends/keycloak.md`): OpenID Connect clients of one realm.
//!
//! - The admin API takes a Bearer token of a service-account client (client credentials grant
//!   in the admin realm). Tokens last a minute: one is shared by every pass, renewed before it
//!   expires and once when refused (401); never one per request.
//! - A client has two ids: `clientId` (the OAuth client id, what the operator's passes know it
//!   by) and an internal `id` in every URL. The operator chooses both: the `clientId` (the
//!   resource's UID or the spec's) and the `id` derived from it, so a create that a crash hid is
//!   found again and a second POST answers 409. A client made by hand has an `id` of Keycloak's:
//!   it is looked up by `clientId` when the derived one is not there.
//! - The secret is the operator's (OS CSPRNG), set on create and on rotation by `PUT`.
//! - `PUT` merges: every field the operator manages is sent each time; an attribute sent empty
//!   is removed. Client scopes are sub-resources, changed one by one.
//! - Keycloak's own clients (`account`, `admin-cli`, `realm-management`, `*-realm`, ...) and
//!   the operator's admin client are never listed, changed or deleted.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use reqwest::{Method, Response, Url};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    AppKey, Backend, Capabilities, Client, ClientSettings, Credentials, Error, KeycloakSettings, Kind, Mode,
    OWNER_METADATA, Result, SecretString,
    http::{self, Http, HttpConfig},
    new_secret,
};

/// Clients listed a page; the most pages read (500,000 clients).
const PAGE: usize = 500;
const MAX_PAGES: usize = 1_000;

/// The clients each realm keeps for itself (and `<realm>-realm` in the master realm).
const OWN_CLIENTS: [&str; 6] =
    ["account", "account-console", "admin-cli", "broker", "realm-management", "security-admin-console"];

/// A client scope Keycloak adds by itself to a client with a service account.
const SERVICE_ACCOUNT_SCOPE: &str = "service_account";

/// Where the operator signs in and which realm's clients it manages.
#[derive(Clone, Debug)]
pub struct KeycloakConfig {
    pub realm: String,
    pub admin_realm: String,
    pub admin_client_id: String,
}

pub struct KeycloakBackend {
    http: Http,
    config: KeycloakConfig,
    /// The admin client's secret (`HttpConfig::api_key`): only ever sent to the token endpoint.
    admin_secret: SecretString,
    token: tokio::sync::Mutex<Option<Token>>,
}

struct Token {
    value: SecretString,
    renew_at: Instant,
}

impl KeycloakBackend {
    pub fn new(mut http: HttpConfig, config: KeycloakConfig) -> Result<Self> {
        let admin_secret = std::mem::replace(&mut http.api_key, SecretString::new(""));
        Ok(Self { http: Http::new(http)?, config, admin_secret, token: tokio::sync::Mutex::new(None) })
    }

    /// The realm's public issuer URL under this base URL.
    pub fn issuer(base_url: &Url, realm: &str) -> String {
        let mut url = base_url.clone();
        url.path_segments_mut().expect("an http(s) URL").pop_if_empty().extend(["realms", realm]);
        url.as_str().trim_end_matches('/').to_string()
    }

    fn clients_url(&self, rest: &[&str]) -> Url {
        let mut segments = vec!["admin", "realms", &self.config.realm, "clients"];
        segments.extend(rest);
        self.http.url(&segments)
    }

    /// Whether the operator never touches this client: Keycloak's own, or its own admin client.
    fn reserved(&self, client_id: &str) -> bool {
        OWN_CLIENTS.contains(&client_id)
            || client_id.ends_with("-realm")
            || (self.config.realm == self.config.admin_realm && client_id == self.config.admin_client_id)
    }

    fn refuse_reserved(&self, client_id: &str) -> Result<()> {
        match self.reserved(client_id) {
            true => Err(Error::Invalid {
                status: 403,
                message: format!(
                    "{client_id} is one of Keycloak's own clients (or the operator's admin client): never managed"
                ),
            }),
            false => Ok(()),
        }
    }

    /// A current admin token: the shared one, or a new one when it is due for renewal or is
    /// `refused` (a token the caller saw refused; renewed once however many callers saw it).
    async fn token(&self, refused: Option<&SecretString>) -> Result<SecretString> {
        let mut slot = self.token.lock().await;
        if let Some(t) = slot.as_ref()
            && Instant::now() < t.renew_at
            && refused != Some(&t.value)
        {
            return Ok(t.value.clone());
        }
        let url = self.http.url(&["realms", &self.config.admin_realm, "protocol", "openid-connect", "token"]);
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.config.admin_client_id.as_str()),
            ("client_secret", self.admin_secret.expose()),
        ];
        let request = self.http.client.post(url).form(&form);
        let response = self.http.send("keycloak_admin_token", request).await?;
        #[derive(Deserialize)]
        struct Issued {
            access_token: String,
            expires_in: Option<u64>,
        }
        let issued: Issued = http::parse(response).await?;
        // Renewed when three quarters of its life are gone (45 s of Keycloak's default 60).
        let life = Duration::from_secs(issued.expires_in.unwrap_or(60).clamp(4, 24 * 3600));
        let token = Token { value: SecretString::new(issued.access_token), renew_at: Instant::now() + life * 3 / 4 };
        let value = token.value.clone();
        *slot = Some(token);
        Ok(value)
    }

    /// One admin request with the shared token, sent again once with a new token on 401.
    async fn send(&self, op: &'static str, method: Method, url: Url, body: Option<&Value>) -> Result<Response> {
        let mut refused = None;
        loop {
            let token = self.token(refused.as_ref()).await?;
            let mut request = self.http.client.request(method.clone(), url.clone()).bearer_auth(token.expose());
            if let Some(body) = body {
                request = request.json(body);
            }
            match self.http.send(op, request).await {
                Err(Error::Unauthorized { status: 401, .. }) if refused.is_none() => refused = Some(token),
                sent => return sent.map_err(|e| e.redacted(&http::secrets_in(body))),
            }
        }
    }

    async fn call<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        op: &'static str,
        method: Method,
        url: Url,
    ) -> Result<T> {
        http::parse(self.send(op, method, url, None).await?).await
    }

    /// The client with this `clientId`, whatever its internal id.
    async fn lookup(&self, client_id: &str) -> Result<Option<Wire>> {
        let mut url = self.clients_url(&[]);
        url.query_pairs_mut().append_pair("clientId", client_id);
        let found: Vec<Wire> = self.call("find_keycloak_client", Method::GET, url).await?;
        Ok(found.into_iter().find(|c| c.client_id == client_id))
    }

    /// Runs `request` on the client's internal id: the derived one, else (a client made by
    /// hand) the one its `clientId` finds.
    async fn on_client<T, F, Fut>(&self, client_id: &str, request: F) -> Result<T>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        self.refuse_reserved(client_id)?;
        match request(internal_id(client_id)).await {
            Err(Error::NotFound { message }) => match self.lookup(client_id).await? {
                Some(found) if found.id != internal_id(client_id) => request(found.id).await,
                _ => Err(Error::NotFound { message }),
            },
            done => done,
        }
    }

    /// The realm's client scopes by name.
    async fn realm_scopes(&self) -> Result<BTreeMap<String, String>> {
        let url = self.http.url(&["admin", "realms", &self.config.realm, "client-scopes"]);
        let scopes: Vec<Named> = self.call("list_keycloak_client_scopes", Method::GET, url).await?;
        Ok(scopes.into_iter().map(|s| (s.name, s.id)).collect())
    }

    /// Checks that every scope the settings name exists in the realm (Keycloak ignores the
    /// unknown ones, which would never settle).
    async fn check_scopes(&self, k: &KeycloakSettings) -> Result<()> {
        let named: Vec<&String> = k.default_scopes.iter().chain(&k.optional_scopes).flatten().collect();
        if named.is_empty() {
            return Ok(());
        }
        self.known(named.into_iter(), &self.realm_scopes().await?)
    }

    fn known<'a>(&self, mut named: impl Iterator<Item = &'a String>, realm: &BTreeMap<String, String>) -> Result<()> {
        match named.find(|n| !realm.contains_key(*n)) {
            Some(missing) => Err(Error::Invalid {
                status: 400,
                message: format!("client scope {missing:?} does not exist in realm {:?}", self.config.realm),
            }),
            None => Ok(()),
        }
    }

    /// Brings the client's default and optional scopes to the settings', one sub-resource at
    /// a time; `current` is updated as they change.
    async fn set_scopes(&self, id: &str, wanted: &KeycloakSettings, current: &mut KeycloakSettings) -> Result<()> {
        let kinds = [
            ("default-client-scopes", &wanted.default_scopes, &mut current.default_scopes),
            ("optional-client-scopes", &wanted.optional_scopes, &mut current.optional_scopes),
        ];
        let mut realm = None;
        for (path, wanted, current) in kinds {
            let Some(wanted) = wanted.as_ref().filter(|w| Some(*w) != current.as_ref()) else { continue };
            if realm.is_none() {
                realm = Some(self.realm_scopes().await?);
            }
            let ids = realm.as_ref().expect("read above");
            self.known(wanted.iter(), ids)?;
            let had = current.clone().unwrap_or_default();
            let added = wanted.iter().filter(|s| !had.contains(s)).map(|s| (Method::PUT, s));
            let removed = had.iter().filter(|s| !wanted.contains(s)).map(|s| (Method::DELETE, s));
            for (method, scope) in added.chain(removed) {
                // A scope deleted from the realm since: nothing to remove.
                let Some(scope_id) = ids.get(scope) else { continue };
                let url = self.clients_url(&[id, path, scope_id]);
                self.send("set_keycloak_client_scope", method, url, None).await?;
            }
            *current = Some(wanted.clone());
        }
        Ok(())
    }
}

/// The internal id the operator gives the client with this `clientId`: a UUID (version 8)
/// from a SHA-256 digest, so that it is known without a request and fits Keycloak's 36
/// characters whatever the `clientId`'s length.
pub fn internal_id(client_id: &str) -> String {
    let input = [b"oauth-operator.dev/keycloak\0".as_slice(), client_id.as_bytes()].concat();
    let digest = ring::digest::digest(&ring::digest::SHA256, &input);
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest.as_ref()[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

#[async_trait]
impl Backend for KeycloakBackend {
    fn capabilities(&self) -> Capabilities {
        Capabilities { kind: Kind::Keycloak, list_clients: true, chosen_client_ids: true, records_owner: true }
    }

    async fn list_clients(&self, _: &AppKey) -> Result<Vec<Client>> {
        let pages = http::all_pages(MAX_PAGES, |token| async move {
            let first: usize = token.as_deref().and_then(|t| t.parse().ok()).unwrap_or(0);
            let mut url = self.clients_url(&[]);
            url.query_pairs_mut().append_pair("first", &first.to_string()).append_pair("max", &PAGE.to_string());
            let page: Vec<Wire> = self.call("list_keycloak_clients", Method::GET, url).await?;
            // Keycloak gives no count: a short page is the last.
            let next = (page.len() >= PAGE).then(|| (first + page.len()).to_string());
            Ok((page, next))
        });
        let all = pages.await?;
        Ok(all.into_iter().filter(|c| !self.reserved(&c.client_id)).map(Client::from).collect())
    }

    async fn get_client(&self, _: &AppKey, id: &str) -> Result<Option<Client>> {
        if self.reserved(id) {
            return Ok(None);
        }
        Ok(self.lookup(id).await?.map(Client::from))
    }

    async fn create_client(&self, app: &AppKey, settings: &ClientSettings) -> Result<(Client, Credentials)> {
        let secret = if has_secret(&settings.client_auth_method) { Some(new_secret()?) } else { None };
        let client = self.create(app, settings, secret.as_ref()).await?;
        let credentials = Credentials { client_id: client.client_id.clone(), client_secret: secret };
        Ok((client, credentials))
    }

    async fn register_client(&self, app: &AppKey, settings: &ClientSettings, secret: &SecretString) -> Result<Client> {
        self.create(app, settings, Some(secret)).await
    }

    async fn set_client_secret(&self, _: &AppKey, id: &str, secret: &SecretString) -> Result<()> {
        let body = json!({"clientId": id, "secret": secret.expose()});
        self.on_client(id, |internal| {
            let body = &body;
            async move {
                let url = self.clients_url(&[&internal]);
                self.send("set_keycloak_secret", Method::PUT, url, Some(body)).await.map(drop)
            }
        })
        .await
    }

    async fn update_client(&self, _: &AppKey, id: &str, settings: &ClientSettings) -> Result<Client> {
        let wanted = super::required(settings.keycloak(), "a Keycloak backend", "keycloak")?;
        let body = body(settings, None)?;
        let updated = self
            .on_client(id, |internal| {
                let body = &body;
                async move {
                    let url = self.clients_url(&[&internal]);
                    self.send("update_keycloak_client", Method::PUT, url.clone(), Some(body)).await?;
                    let wire: Wire = self.call("get_keycloak_client", Method::GET, url).await?;
                    Ok(wire)
                }
            })
            .await?;
        let internal = updated.id.clone();
        let mut client = Client::from(updated);
        if let Mode::Keycloak(current) = &mut client.settings.mode {
            self.set_scopes(&internal, wanted, current).await?;
        }
        Ok(client)
    }

    /// Keycloak has a disabled state, but a client deleted is what `Delete` and `active: false`
    /// promise elsewhere: deactivating deletes (as on Hydra).
    async fn deactivate_client(&self, _: &AppKey, id: &str) -> Result<()> {
        self.on_client(id, |internal| async move {
            let url = self.clients_url(&[&internal]);
            self.send("delete_keycloak_client", Method::DELETE, url, None).await.map(drop)
        })
        .await
    }

    async fn rotate_secret(&self, app: &AppKey, id: &str) -> Result<SecretString> {
        let secret = new_secret()?;
        self.set_client_secret(app, id, &secret).await?;
        Ok(secret)
    }
}

impl KeycloakBackend {
    /// Creates the client under its chosen ids, with this secret (none for a method without).
    async fn create(&self, _: &AppKey, settings: &ClientSettings, secret: Option<&SecretString>) -> Result<Client> {
        let k = super::required(settings.keycloak(), "a Keycloak backend", "keycloak")?;
        self.refuse_reserved(&k.client_id)?;
        self.check_scopes(k).await?;
        let mut body = body(settings, secret)?;
        body["id"] = internal_id(&k.client_id).into();
        if let Some(scopes) = &k.default_scopes {
            body["defaultClientScopes"] = json!(scopes);
        }
        if let Some(scopes) = &k.optional_scopes {
            body["optionalClientScopes"] = json!(scopes);
        }
        self.send("create_keycloak_client", Method::POST, self.clients_url(&[]), Some(&body)).await?;
        // Keycloak answers 201 without a body: the client is what was sent.
        let wire: Wire = serde_json::from_value(body)
            .map_err(|e| Error::Transient { message: format!("reading back the created client: {e}") })?;
        Ok(Client::from(wire))
    }
}

/// Whether clients with this token endpoint auth method have a secret.
fn has_secret(method: &str) -> bool {
    matches!(method, "client_secret_basic" | "client_secret_post" | "client_secret_jwt")
}

/// Attributes the operator manages, by what they hold.
mod attr {
    pub const POST_LOGOUT: &str = "post.logout.redirect.uris";
    pub const REFRESH: &str = "use.refresh.tokens";
    pub const SIGNING_ALG: &str = "token.endpoint.auth.signing.alg";
    pub const USE_JWKS_URL: &str = "use.jwks.url";
    pub const JWKS_URL: &str = "jwks.url";
    pub const USE_JWKS: &str = "use.jwks.string";
    pub const JWKS: &str = "jwks.string";
    pub const LOGO: &str = "logoUri";
    pub const POLICY: &str = "policyUri";
    pub const TOS: &str = "tosUri";
    pub const PKCE: &str = "pkce.code.challenge.method";
    pub const ID_TOKEN_ALG: &str = "id.token.signed.response.alg";
    pub const ACCESS_TOKEN_LIFESPAN: &str = "access.token.lifespan";
}

/// The client as POST and PUT take it: every managed field, an attribute that is unset sent
/// empty (which removes it); `secret` sets a new one.
fn body(settings: &ClientSettings, secret: Option<&SecretString>) -> Result<Value> {
    let k = super::required(settings.keycloak(), "a Keycloak backend", "keycloak")?;
    let grant = |g: &str| settings.grant_types.iter().any(|t| t == g);
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let method = settings.client_auth_method.as_str();
    let jwks = match &settings.jwks {
        Some(jwks) => serde_json::to_string(jwks).map_err(|e| Error::Unsendable { message: format!("jwks: {e}") })?,
        None => String::new(),
    };
    let flag = |on: bool| if on { "true" } else { "false" }.to_string();
    let mut attributes = Map::from_iter(
        [
            (OWNER_METADATA, k.owner.clone()),
            (attr::POST_LOGOUT, settings.post_logout_redirect_uris.join("##")),
            (attr::REFRESH, flag(grant("refresh_token"))),
            (attr::SIGNING_ALG, text(&settings.token_endpoint_auth_signing_alg)),
            (attr::USE_JWKS_URL, flag(settings.jwks_uri.is_some())),
            (attr::JWKS_URL, text(&settings.jwks_uri)),
            (attr::USE_JWKS, flag(settings.jwks.is_some())),
            (attr::JWKS, jwks),
            (attr::LOGO, text(&settings.logo_uri)),
            (attr::POLICY, text(&settings.policy_uri)),
            (attr::TOS, text(&settings.tos_uri)),
            (attr::PKCE, k.pkce_method.clone()),
        ]
        .map(|(key, value)| (key.to_string(), Value::from(value))),
    );
    // Left to Keycloak when the spec is silent (unset: the realm's value).
    if let Some(alg) = &settings.id_token_signing_alg {
        attributes.insert(attr::ID_TOKEN_ALG.into(), alg.clone().into());
    }
    if let Some(seconds) = settings.access_token_ttl_seconds {
        attributes.insert(attr::ACCESS_TOKEN_LIFESPAN.into(), seconds.to_string().into());
    }
    let authenticator = match method {
        "private_key_jwt" => "client-jwt",
        "client_secret_jwt" => "client-secret-jwt",
        _ => "client-secret",
    };
    let mut body = json!({
        "clientId": k.client_id,
        "protocol": "openid-connect",
        "enabled": true,
        "name": text(&settings.client_name),
        "description": k.description,
        "publicClient": method == "none",
        "clientAuthenticatorType": authenticator,
        "standardFlowEnabled": grant("authorization_code"),
        "serviceAccountsEnabled": grant("client_credentials"),
        "implicitFlowEnabled": false,
        "directAccessGrantsEnabled": false,
        "redirectUris": settings.redirect_uris,
        "webOrigins": k.web_origins,
        "baseUrl": text(&settings.client_uri),
        "attributes": attributes,
    });
    if let Some(skip) = settings.skip_consent {
        body["consentRequired"] = (!skip).into();
    }
    if let Some(secret) = secret {
        body["secret"] = secret.expose().into();
    }
    Ok(body)
}

#[derive(Deserialize)]
struct Named {
    id: String,
    name: String,
}

/// A client as Keycloak shows it. Its `secret` is not read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    id: String,
    client_id: String,
    name: Option<String>,
    description: Option<String>,
    enabled: Option<bool>,
    client_authenticator_type: Option<String>,
    public_client: Option<bool>,
    standard_flow_enabled: Option<bool>,
    service_accounts_enabled: Option<bool>,
    implicit_flow_enabled: Option<bool>,
    direct_access_grants_enabled: Option<bool>,
    consent_required: Option<bool>,
    base_url: Option<String>,
    redirect_uris: Option<Vec<String>>,
    web_origins: Option<Vec<String>>,
    attributes: Option<BTreeMap<String, Value>>,
    default_client_scopes: Option<Vec<String>>,
    optional_client_scopes: Option<Vec<String>>,
}

fn sorted(mut list: Vec<String>) -> Vec<String> {
    list.sort();
    list.dedup();
    list
}

impl From<Wire> for Client {
    fn from(w: Wire) -> Self {
        let attributes = w.attributes.unwrap_or_default();
        let attribute = |key: &str| attributes.get(key).and_then(Value::as_str).filter(|v| !v.is_empty());
        let owned = |key: &str| attribute(key).map(String::from);
        let on = |key: &str| attribute(key) == Some("true");
        let text = |v: Option<String>| v.filter(|t| !t.is_empty());
        let standard = w.standard_flow_enabled.unwrap_or(false);
        let mut grant_types = Vec::new();
        if standard {
            grant_types.push("authorization_code".to_string());
        }
        if w.service_accounts_enabled.unwrap_or(false) {
            grant_types.push("client_credentials".to_string());
        }
        // Keycloak issues refresh tokens unless told not to.
        if standard && attribute(attr::REFRESH) != Some("false") {
            grant_types.push("refresh_token".to_string());
        }
        let method = match (w.public_client.unwrap_or(false), w.client_authenticator_type.as_deref()) {
            (true, _) => "none",
            (false, Some("client-jwt")) => "private_key_jwt",
            (false, Some("client-secret-jwt")) => "client_secret_jwt",
            _ => "client_secret_basic",
        };
        let scopes = |list: Option<Vec<String>>| {
            list.map(|l| sorted(l.into_iter().filter(|s| s != SERVICE_ACCOUNT_SCOPE).collect()))
        };
        let post_logout = attribute(attr::POST_LOGOUT).unwrap_or_default().split("##").filter(|u| !u.is_empty());
        // Flows the operator never enables, and a disabled client: drift, put back.
        let enabled = w.enabled.unwrap_or(true)
            && !w.implicit_flow_enabled.unwrap_or(false)
            && !w.direct_access_grants_enabled.unwrap_or(false);
        Client {
            id: w.client_id.clone(),
            client_id: w.client_id.clone(),
            active: true,
            created_at: None,
            settings: Box::new(ClientSettings {
                client_auth_method: method.to_string(),
                grant_types: sorted(grant_types),
                redirect_uris: sorted(w.redirect_uris.unwrap_or_default()),
                post_logout_redirect_uris: sorted(post_logout.map(String::from).collect()),
                token_endpoint_auth_signing_alg: owned(attr::SIGNING_ALG),
                jwks_uri: on(attr::USE_JWKS_URL).then(|| owned(attr::JWKS_URL)).flatten(),
                jwks: on(attr::USE_JWKS)
                    .then(|| attribute(attr::JWKS).and_then(|j| serde_json::from_str(j).ok()))
                    .flatten(),
                client_name: text(w.name),
                client_uri: text(w.base_url),
                logo_uri: owned(attr::LOGO),
                tos_uri: owned(attr::TOS),
                policy_uri: owned(attr::POLICY),
                id_token_signing_alg: owned(attr::ID_TOKEN_ALG),
                access_token_ttl_seconds: attribute(attr::ACCESS_TOKEN_LIFESPAN).and_then(|s| s.parse().ok()),
                skip_consent: w.consent_required.map(|c| !c),
                mode: Mode::Keycloak(Box::new(KeycloakSettings {
                    client_id: w.client_id,
                    owner: owned(OWNER_METADATA).unwrap_or_default(),
                    description: w.description.unwrap_or_default(),
                    web_origins: sorted(w.web_origins.unwrap_or_default()),
                    default_scopes: scopes(w.default_client_scopes),
                    optional_scopes: scopes(w.optional_client_scopes),
                    pkce_method: owned(attr::PKCE).unwrap_or_default(),
                    enabled,
                })),
                ..Default::default()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ClientSettings {
        ClientSettings {
            client_auth_method: "client_secret_basic".into(),
            grant_types: vec!["authorization_code".into(), "client_credentials".into(), "refresh_token".into()],
            redirect_uris: vec!["https://a.example.com/cb".into()],
            post_logout_redirect_uris: vec!["https://a.example.com/bye".into(), "https://b.example.com/bye".into()],
            client_name: Some("Orders".into()),
            logo_uri: Some("https://a.example.com/logo.png".into()),
            mode: Mode::Keycloak(Box::new(KeycloakSettings {
                client_id: "orders".into(),
                owner: "uid-1".into(),
                description: "the orders service".into(),
                web_origins: vec!["+".into()],
                default_scopes: Some(vec!["profile".into()]),
                optional_scopes: None,
                pkce_method: "S256".into(),
                enabled: true,
            })),
            ..Default::default()
        }
    }

    #[test]
    fn internal_ids_are_uuids_derived_from_the_client_id() {
        let id = internal_id("orders");
        assert_eq!(id.len(), 36);
        assert_eq!(id, internal_id("orders"), "the same every time: a lost create is found again");
        assert_ne!(id, internal_id("orders-r1"));
        assert_eq!(&id[14..15], "8", "version 8");
        assert_eq!(internal_id(&"x".repeat(190)).len(), 36);
    }

    #[test]
    fn what_is_sent_reads_back_as_the_same_settings() {
        let wanted = settings();
        let body = body(&wanted, Some(&SecretString::new("s"))).unwrap();
        assert_eq!(body["attributes"][attr::JWKS], "", "unset attributes are sent empty: PUT removes them");
        assert_eq!(body["attributes"][OWNER_METADATA], "uid-1");
        assert_eq!(body["secret"], "s");
        let mut echoed = body.clone();
        echoed["id"] = internal_id("orders").into();
        // Keycloak echoes defaults and the scopes of the realm; empty attributes are not kept.
        echoed["attributes"].as_object_mut().unwrap().retain(|_, v| v != "");
        echoed["defaultClientScopes"] = json!(["service_account", "profile"]);
        echoed["optionalClientScopes"] = json!(["email"]);
        echoed["consentRequired"] = false.into();
        let read = Client::from(serde_json::from_value::<Wire>(echoed).unwrap());
        let mut expected = wanted.clone();
        expected.skip_consent = Some(true);
        if let Mode::Keycloak(k) = &mut expected.mode {
            k.optional_scopes = Some(vec!["email".into()]);
        }
        assert_eq!(*read.settings, expected);
        assert_eq!(read.id, "orders", "the passes know a client by its clientId");
    }

    #[test]
    fn methods_and_grants_map_both_ways() {
        let read = |v: Value| *Client::from(serde_json::from_value::<Wire>(v).unwrap()).settings;
        let public = read(json!({"id": "i", "clientId": "c", "publicClient": true, "standardFlowEnabled": true}));
        assert_eq!(public.client_auth_method, "none");
        assert_eq!(public.grant_types, ["authorization_code", "refresh_token"], "refresh tokens unless turned off");
        let keys = read(json!({"id": "i", "clientId": "c", "clientAuthenticatorType": "client-jwt",
            "attributes": {"use.jwks.string": "true", "jwks.string": "{\"keys\":[]}", "use.jwks.url": "false", "jwks.url": "https://x"}}));
        assert_eq!(keys.client_auth_method, "private_key_jwt");
        assert_eq!(keys.jwks, Some(json!({"keys": []})));
        assert_eq!(keys.jwks_uri, None, "a JWKS URL that is not in use does not count");
        let disabled = read(json!({"id": "i", "clientId": "c", "enabled": false}));
        assert!(!disabled.keycloak().unwrap().enabled, "a client disabled in the console is drift");
    }

    /// A fake Keycloak: a token endpoint that counts the tokens it issues (`t1`, `t2`, ...)
    /// and an admin API that refuses `t1` (as if it had expired) and takes any later one.
    async fn fake_keycloak() -> (Url, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        };
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = Url::parse(&format!("http://{}/", listener.local_addr().expect("addr"))).expect("url");
        let issued = Arc::new(AtomicUsize::new(0));
        let counter = issued.clone();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.expect("accept");
                let issued = counter.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    loop {
                        let mut chunk = [0u8; 4096];
                        let Ok(n @ 1..) = socket.read(&mut chunk).await else { return };
                        buffer.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buffer).to_string();
                        let Some(end) = text.find("\r\n\r\n") else { continue };
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                            })
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        if buffer.len() < end + 4 + length {
                            continue;
                        }
                        buffer.drain(..end + 4 + length);
                        let (status, body) = if text.starts_with("POST /realms/master/protocol/openid-connect/token") {
                            let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
                            ("200 OK", format!(r#"{{"access_token":"t{n}","expires_in":60}}"#))
                        } else if text.contains("authorization: Bearer t1") || text.contains("Authorization: Bearer t1")
                        {
                            ("401 Unauthorized", r#"{"error":"HTTP 401 Unauthorized"}"#.to_string())
                        } else {
                            ("200 OK", "[]".to_string())
                        };
                        let answer = format!(
                            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if socket.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (url, issued)
    }

    /// Every pass shares one admin token: ten at once fetch one, all refused (as an expired
    /// token would be) renew it once, and later requests reuse it.
    #[tokio::test]
    async fn one_admin_token_is_shared_and_renewed_once_when_refused() {
        let (url, issued) = fake_keycloak().await;
        let config = HttpConfig {
            base_url: url,
            api_key: SecretString::new("admin-secret"),
            timeout: Duration::from_secs(5),
            requests_per_second: 0,
            ca_pem: None,
        };
        let kc = KeycloakConfig { realm: "apps".into(), admin_realm: "master".into(), admin_client_id: "op".into() };
        let backend = KeycloakBackend::new(config, kc).expect("adapter");
        let (app, backend) = (AppKey::none(), &backend);
        let reads = (0..10).map(|i| {
            let app = &app;
            async move { backend.get_client(app, &format!("c{i}")).await }
        });
        for read in futures::future::join_all(reads).await {
            assert!(read.expect("read after one renewal").is_none());
        }
        assert_eq!(issued.load(std::sync::atomic::Ordering::SeqCst), 2, "one token, then one renewal for all ten");
        for i in 0..10 {
            backend.get_client(&AppKey::none(), &format!("d{i}")).await.expect("read");
        }
        assert_eq!(issued.load(std::sync::atomic::Ordering::SeqCst), 2, "never one per request");
    }

    #[test]
    fn keycloaks_own_clients_are_reserved() {
        let config = HttpConfig {
            base_url: "http://127.0.0.1:1".parse().unwrap(),
            api_key: SecretString::new("k"),
            timeout: Duration::from_secs(1),
            requests_per_second: 0,
            ca_pem: None,
        };
        let kc = KeycloakConfig { realm: "master".into(), admin_realm: "master".into(), admin_client_id: "op".into() };
        let backend = KeycloakBackend::new(config, kc).unwrap();
        for own in ["account", "admin-cli", "realm-management", "apps-realm", "op"] {
            assert!(backend.reserved(own), "{own}");
        }
        assert!(!backend.reserved("orders"));
        assert_eq!(backend.admin_secret.expose(), "k");
        assert_eq!(KeycloakBackend::issuer(&"http://kc:8080/".parse().unwrap(), "apps"), "http://kc:8080/realms/apps");
    }
}
