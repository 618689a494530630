//! The MCP OAuth clients API (`docs/backends/mcp.md`) under
//! `/v1/customers/{customer_id}/projects/{project_id}/mcp-oauth-clients`: snake_case JSON, the
//! client secret write-only (stored hashed, never answered), the update semantics of the
//! document (empty scalars and collections leave values alone unless a `replace_*` flag is
//! set), soft delete, and `provider` unique per (customer, project) among clients not deleted.
//!
//! Empty customer or project ids (or `-`) stand for the API key's session scope:
//! `cust_{deployment}` and `proj_{deployment}`. Errors are gRPC-gateway bodies
//! `{"code", "message", "details"}`. Lists page through `page.page_size` (default 50, at most
//! 100) and `page.page_token`, answering `page.next_page_token`.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use axum::{
    Extension, Json, Router,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use ring::rand::SecureRandom;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{
    Caller, Emulator,
    store::{hash, now, secret_matches},
};

type Reply = Result<Response, Response>;
type Params = Path<HashMap<String, String>>;

const BASE: &str = "/v1/customers/{customer_id}/projects/{project_id}/mcp-oauth-clients";

pub fn routes() -> Router<Emulator> {
    Router::new()
        .route(BASE, get(list).post(create))
        .route(&format!("{BASE}/{{id}}"), get(read).patch(update).delete(remove))
}

/// Test-only: whether a secret is the one stored for a client.
pub fn control_routes() -> Router<Emulator> {
    Router::new().route("/_emulator/mcp-oauth-clients/{id}/check-secret", post(check_secret))
}

/// The gRPC-gateway error body, with the gRPC code of the HTTP status.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let code = match status.as_u16() {
        400 | 415 | 422 => 3,
        401 => 16,
        403 => 7,
        404 => 5,
        409 => 6,
        429 => 8,
        503 => 14,
        _ => 13,
    };
    (status, Json(json!({ "code": code, "message": message.into(), "details": [] }))).into_response()
}

fn bad(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, message)
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "mcp oauth client not found")
}

/// Puts `-` in place of an empty customer or project segment, so that routing sees one.
pub fn session_scope<B>(mut req: axum::http::Request<B>) -> axum::http::Request<B> {
    let path = req.uri().path();
    if !path.starts_with("/v1/customers/") {
        return req;
    }
    let mut segments: Vec<&str> = path.split('/').collect();
    for i in [3, 5] {
        if segments.get(i) == Some(&"") {
            segments[i] = "-";
        }
    }
    let mut rebuilt = segments.join("/");
    if let Some(query) = req.uri().query() {
        rebuilt = format!("{rebuilt}?{query}");
    }
    if let Ok(uri) = rebuilt.parse::<Uri>() {
        *req.uri_mut() = uri;
    }
    req
}

pub struct McpClient {
    id: String,
    customer_id: String,
    project_id: String,
    provider: String,
    provider_name: String,
    client_id: String,
    secret_hash: Vec<u8>,
    authorization_url: String,
    token_url: String,
    scopes: Vec<String>,
    redirect_uris: Vec<String>,
    metadata: Map<String, Value>,
    server_ids: Vec<String>,
    status: String,
    created_at: String,
    updated_at: String,
    deleted: bool,
}

impl McpClient {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "customer_id": self.customer_id,
            "project_id": self.project_id,
            "provider": self.provider,
            "provider_name": self.provider_name,
            "client_id": self.client_id,
            "authorization_url": self.authorization_url,
            "token_url": self.token_url,
            "scopes": self.scopes,
            "redirect_uris": self.redirect_uris,
            "metadata": self.metadata,
            "server_ids": self.server_ids,
            "status": self.status,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }

    fn in_scope(&self, scope: &(String, String)) -> bool {
        !self.deleted && self.customer_id == scope.0 && self.project_id == scope.1
    }
}

/// The (customer, project) of a path; `-` is the caller's session scope.
fn scope(p: &HashMap<String, String>, caller: &Caller) -> (String, String) {
    let pick = |key: &str, prefix: &str| match p.get(key).map(String::as_str) {
        None | Some("-") | Some("") => format!("{prefix}_{}", caller.deployment),
        Some(id) => id.to_string(),
    };
    (pick("customer_id", "cust"), pick("project_id", "proj"))
}

/// The fields of a create or update request; every one optional here, checked by the handler.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fields {
    customer_id: Option<String>,
    project_id: Option<String>,
    id: Option<String>,
    provider: Option<String>,
    #[serde(default)]
    provider_name: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default)]
    authorization_url: String,
    #[serde(default)]
    token_url: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    metadata: Map<String, Value>,
    #[serde(default)]
    server_ids: Vec<String>,
    #[serde(default)]
    replace_scopes: bool,
    #[serde(default)]
    replace_redirect_uris: bool,
    #[serde(default)]
    replace_metadata: bool,
    #[serde(default)]
    replace_server_ids: bool,
}

fn body(headers: &HeaderMap, bytes: &Bytes) -> Result<Fields, Response> {
    let fields: Fields = crate::json_request(headers, bytes).map_err(|(_, message)| bad(message))?;
    // Path parameters are the scope; the body's copies are accepted and ignored.
    let _ = (&fields.customer_id, &fields.project_id, &fields.id);
    Ok(fields)
}

fn check_url(key: &str, url: &str) -> Result<(), Response> {
    if url.is_empty() || url.starts_with("https://") || url.starts_with("http://") {
        Ok(())
    } else {
        Err(bad(format!("{key} must be an http(s) URL")))
    }
}

fn check_status(status: &str, allowed: &[&str]) -> Result<(), Response> {
    if status.is_empty() || allowed.contains(&status) {
        Ok(())
    } else {
        Err(bad(format!("status must be one of {}", allowed.join(", "))))
    }
}

/// A random version-4 UUID.
fn uuid() -> String {
    let mut b = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut b).expect("system randomness");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

async fn create(
    State(emu): State<Emulator>,
    Extension(caller): Extension<Caller>,
    Path(p): Params,
    headers: HeaderMap,
    bytes: Bytes,
) -> Reply {
    let f = body(&headers, &bytes)?;
    let provider = f.provider.clone().unwrap_or_default();
    let required = [
        ("provider", provider.as_str()),
        ("provider_name", &f.provider_name),
        ("client_id", &f.client_id),
        ("client_secret", &f.client_secret),
        ("authorization_url", &f.authorization_url),
        ("token_url", &f.token_url),
    ];
    if let Some((key, _)) = required.iter().find(|(_, v)| v.is_empty()) {
        return Err(bad(format!("{key} is required")));
    }
    check_url("authorization_url", &f.authorization_url)?;
    check_url("token_url", &f.token_url)?;
    check_status(&f.status, &["active", "inactive"])?;
    let scope = scope(&p, &caller);
    let secret_hash = hash(&f.client_secret);
    let mut store = emu.store.lock();
    if store.mcp_clients.iter().any(|c| c.in_scope(&scope) && c.provider == provider) {
        return Err(error(StatusCode::CONFLICT, format!("an mcp oauth client for provider {provider} already exists")));
    }
    let client = McpClient {
        id: uuid(),
        customer_id: scope.0,
        project_id: scope.1,
        provider,
        provider_name: f.provider_name,
        client_id: f.client_id,
        secret_hash,
        authorization_url: f.authorization_url,
        token_url: f.token_url,
        scopes: f.scopes,
        redirect_uris: f.redirect_uris,
        metadata: f.metadata,
        server_ids: f.server_ids,
        status: if f.status.is_empty() { "active".into() } else { f.status },
        created_at: now(),
        updated_at: now(),
        deleted: false,
    };
    let reply = Json(client.to_json()).into_response();
    store.mcp_clients.push(client);
    Ok(reply)
}

async fn list(
    State(emu): State<Emulator>,
    Extension(caller): Extension<Caller>,
    Path(p): Params,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    let size = match q.get("page.page_size").map(|s| s.parse::<usize>()) {
        None => 50,
        Some(Ok(n)) => n.clamp(1, 100),
        Some(Err(_)) => return Err(bad("page.page_size must be a number")),
    };
    let start = match q.get("page.page_token").filter(|t| !t.is_empty()) {
        None => 0,
        Some(token) => token.strip_prefix("o").and_then(|n| n.parse().ok()).ok_or_else(|| bad("invalid page token"))?,
    };
    let scope = scope(&p, &caller);
    let store = emu.store.lock();
    let all: Vec<&McpClient> = store.mcp_clients.iter().filter(|c| c.in_scope(&scope)).collect();
    let page: Vec<Value> = all.iter().skip(start).take(size).map(|c| c.to_json()).collect();
    let repeat = emu.faults.lock().unwrap_or_else(|e| e.into_inner()).repeat_page_token;
    let next = if repeat {
        format!("o{size}")
    } else if start + size < all.len() {
        format!("o{}", start + size)
    } else {
        String::new()
    };
    Ok(Json(json!({ "clients": page, "page": { "next_page_token": next } })).into_response())
}

fn find<'a>(clients: &'a mut [McpClient], scope: &(String, String), id: &str) -> Result<&'a mut McpClient, Response> {
    clients.iter_mut().find(|c| c.in_scope(scope) && c.id == id).ok_or_else(not_found)
}

async fn read(State(emu): State<Emulator>, Extension(caller): Extension<Caller>, Path(p): Params) -> Reply {
    let scope = scope(&p, &caller);
    let mut store = emu.store.lock();
    let client = find(&mut store.mcp_clients, &scope, p.get("id").map(String::as_str).unwrap_or_default())?;
    Ok(Json(client.to_json()).into_response())
}

async fn update(
    State(emu): State<Emulator>,
    Extension(caller): Extension<Caller>,
    Path(p): Params,
    headers: HeaderMap,
    bytes: Bytes,
) -> Reply {
    let f = body(&headers, &bytes)?;
    if f.provider.as_deref().is_some_and(|p| !p.is_empty()) {
        return Err(bad("provider cannot be changed"));
    }
    check_url("authorization_url", &f.authorization_url)?;
    check_url("token_url", &f.token_url)?;
    check_status(&f.status, &["active", "inactive", "revoked"])?;
    let secret_hash = (!f.client_secret.is_empty()).then(|| hash(&f.client_secret));
    let scope = scope(&p, &caller);
    let mut store = emu.store.lock();
    let c = find(&mut store.mcp_clients, &scope, p.get("id").map(String::as_str).unwrap_or_default())?;
    for (slot, value) in [
        (&mut c.provider_name, f.provider_name),
        (&mut c.client_id, f.client_id),
        (&mut c.authorization_url, f.authorization_url),
        (&mut c.token_url, f.token_url),
        (&mut c.status, f.status),
    ] {
        if !value.is_empty() {
            *slot = value;
        }
    }
    for (slot, value, replace) in [
        (&mut c.scopes, f.scopes, f.replace_scopes),
        (&mut c.redirect_uris, f.redirect_uris, f.replace_redirect_uris),
        (&mut c.server_ids, f.server_ids, f.replace_server_ids),
    ] {
        if replace || !value.is_empty() {
            *slot = value;
        }
    }
    if f.replace_metadata || !f.metadata.is_empty() {
        c.metadata = f.metadata;
    }
    if let Some(hash) = secret_hash {
        c.secret_hash = hash;
    }
    c.updated_at = now();
    Ok(Json(c.to_json()).into_response())
}

async fn remove(State(emu): State<Emulator>, Extension(caller): Extension<Caller>, Path(p): Params) -> Reply {
    let scope = scope(&p, &caller);
    let mut store = emu.store.lock();
    let client = find(&mut store.mcp_clients, &scope, p.get("id").map(String::as_str).unwrap_or_default())?;
    client.deleted = true;
    client.updated_at = now();
    Ok(Json(json!({})).into_response())
}

#[derive(Deserialize)]
struct Check {
    client_secret: String,
}

async fn check_secret(State(emu): State<Emulator>, Path(id): Path<String>, Json(check): Json<Check>) -> Reply {
    let store = emu.store.lock();
    let client = store.mcp_clients.iter().find(|c| c.id == id).ok_or_else(not_found)?;
    let matches = secret_matches(Some(&client.secret_hash), &check.client_secret);
    Ok(Json(json!({ "matches": matches, "deleted": client.deleted, "status": client.status })).into_response())
}
