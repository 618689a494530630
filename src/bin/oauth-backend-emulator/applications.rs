//! The OAuth Applications REST API (`docs/backends/applications.md`) under `/api/oauth-applications`:
//! camelCase JSON, the secret shown on register and rotate only and stored hashed, DELETE as a
//! soft disable (a disabled application stays readable and can be neither changed nor
//! rotated). Errors are `{"error": "..."}`.
#![allow(clippy::result_large_err)]

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Map, Value, json};

use crate::{
    Emulator,
    store::{hash, new_secret, now, secret_matches},
};

type Reply = Result<Response, Response>;

const TYPES: &[&str] = &["web", "native", "public", "user-agent-based"];
const SCOPES: &[&str] = &["workspace:read", "workspace:write"];

pub fn routes() -> Router<Emulator> {
    Router::new()
        .route("/api/oauth-applications", post(register))
        .route("/api/oauth-applications/{id}", get(read).patch(update).delete(disable))
        .route("/api/oauth-applications/{id}/rotate-secret", post(rotate))
}

pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

fn bad(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, message)
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "OAuth application not found")
}

pub struct Application {
    pub client_id: String,
    name: String,
    kind: String,
    redirect_urls: Vec<String>,
    owner_org_id: String,
    allowed_scopes: Vec<String>,
    pub disabled: bool,
    created_at: String,
    updated_at: String,
    secret_hash: Vec<u8>,
}

impl Application {
    fn to_json(&self) -> Value {
        json!({
            "clientId": self.client_id,
            "name": self.name,
            "type": self.kind,
            "redirectUrls": self.redirect_urls,
            "ownerOrgId": self.owner_org_id,
            "allowedScopes": self.allowed_scopes,
            "isFirstParty": false,
            "disabled": self.disabled,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        })
    }

    /// The register and rotate answer: the application and its new secret.
    fn issued(&self, secret: &str) -> Response {
        Json(json!({ "application": self.to_json(), "clientSecret": secret })).into_response()
    }

    pub fn authenticates(&self, secret: &str) -> bool {
        !self.disabled && secret_matches(Some(&self.secret_hash), secret)
    }

    pub fn allows_redirect(&self, uri: &str) -> bool {
        self.redirect_urls.iter().any(|u| u == uri)
    }
}

/// A JSON object body.
fn object(headers: &HeaderMap, body: &Bytes) -> Result<Map<String, Value>, Response> {
    crate::json_request(headers, body).map_err(|(status, message)| error(status, message))
}

fn text(body: &Map<String, Value>, key: &str) -> Result<Option<String>, Response> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(_) => Err(bad(format!("{key} must be a non-empty string"))),
    }
}

fn strings(body: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>, Response> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(String::from).ok_or_else(|| bad(format!("{key} must be a list of strings"))))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(bad(format!("{key} must be a list of strings"))),
    }
}

fn check_urls(urls: &[String]) -> Result<(), Response> {
    match urls.iter().find(|u| !(u.starts_with("https://") || u.starts_with("http://")) || u.contains('#')) {
        Some(u) => Err(bad(format!("redirectUrls: {u} must be an http(s) URL without a fragment"))),
        None => Ok(()),
    }
}

fn check_scopes(scopes: &[String]) -> Result<(), Response> {
    match scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
        Some(s) => Err(bad(format!("allowedScopes: unknown scope {s}"))),
        None => Ok(()),
    }
}

async fn register(State(emu): State<Emulator>, headers: HeaderMap, body: Bytes) -> Reply {
    let body = object(&headers, &body)?;
    let owner = text(&body, "ownerOrgId")?.ok_or_else(|| bad("ownerOrgId is required"))?;
    let name = text(&body, "name")?.ok_or_else(|| bad("name is required"))?;
    let kind = text(&body, "type")?.ok_or_else(|| bad("type is required"))?;
    if !TYPES.contains(&kind.as_str()) {
        return Err(bad(format!("type must be one of {}", TYPES.join(", "))));
    }
    let redirect_urls = strings(&body, "redirectUrls")?.ok_or_else(|| bad("redirectUrls is required"))?;
    check_urls(&redirect_urls)?;
    let allowed_scopes = strings(&body, "allowedScopes")?.unwrap_or_default();
    check_scopes(&allowed_scopes)?;
    let secret = new_secret();
    let app = Application {
        client_id: format!("app_{}", &new_secret()[10..34]),
        name,
        kind,
        redirect_urls,
        owner_org_id: owner,
        allowed_scopes,
        disabled: false,
        created_at: now(),
        updated_at: now(),
        secret_hash: hash(&secret),
    };
    let reply = app.issued(&secret);
    emu.store.lock().applications.insert(app.client_id.clone(), app);
    Ok(reply)
}

async fn read(State(emu): State<Emulator>, Path(id): Path<String>) -> Reply {
    let store = emu.store.lock();
    let app = store.applications.get(&id).ok_or_else(not_found)?;
    Ok(Json(app.to_json()).into_response())
}

async fn update(State(emu): State<Emulator>, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Reply {
    let body = object(&headers, &body)?;
    if let Some(key) = ["type", "ownerOrgId", "clientId"].into_iter().find(|k| body.contains_key(*k)) {
        return Err(bad(format!("{key} cannot be changed")));
    }
    let name = text(&body, "name")?;
    let redirect_urls = strings(&body, "redirectUrls")?;
    let allowed_scopes = strings(&body, "allowedScopes")?;
    check_urls(redirect_urls.as_deref().unwrap_or_default())?;
    check_scopes(allowed_scopes.as_deref().unwrap_or_default())?;
    let mut store = emu.store.lock();
    let app = store.applications.get_mut(&id).ok_or_else(not_found)?;
    if app.disabled {
        return Err(bad("the application is disabled"));
    }
    if let Some(name) = name {
        app.name = name;
    }
    if let Some(urls) = redirect_urls {
        app.redirect_urls = urls;
    }
    if let Some(scopes) = allowed_scopes {
        app.allowed_scopes = scopes;
    }
    app.updated_at = now();
    Ok(Json(app.to_json()).into_response())
}

async fn disable(State(emu): State<Emulator>, Path(id): Path<String>) -> Reply {
    let mut store = emu.store.lock();
    let app = store.applications.get_mut(&id).ok_or_else(not_found)?;
    if !app.disabled {
        app.disabled = true;
        app.updated_at = now();
    }
    Ok(Json(json!({ "success": true })).into_response())
}

async fn rotate(State(emu): State<Emulator>, Path(id): Path<String>) -> Reply {
    let secret = new_secret();
    let mut store = emu.store.lock();
    let app = store.applications.get_mut(&id).ok_or_else(not_found)?;
    if app.disabled {
        return Err(bad("the application is disabled"));
    }
    app.secret_hash = hash(&secret);
    app.updated_at = now();
    Ok(app.issued(&secret))
}
