//! The Wacht-style deployment API as `docs/backends/wacht.md` describes the real backend: both path
//! layouts, multipart app creation, numeric client row ids, newest-first lists, soft
//! deactivation, secrets stored hashed and shown only on create and rotate, and the
//! scope-definition reset of a PATCH that omits them.
// Handlers answer errors as ready responses; their size is no concern in a test server.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use axum::{
    Extension, Json, Router,
    body::Bytes,
    extract::{Multipart, Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, patch, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    Caller, Emulator,
    store::{AppRec, ClientRec, ScopeDef, hash, new_secret, now},
};

type Params = Path<HashMap<String, String>>;
type Reply = Result<Response, Response>;

/// The API under one prefix; mounted at `/` and at `/deployments/{deployment_id}`.
pub fn routes() -> Router<Emulator> {
    Router::new()
        .route("/oauth/apps", get(list_apps).post(create_app))
        .route("/oauth/apps/{slug}", patch(update_app))
        .route("/oauth/apps/{slug}/verify-domain", post(verify_domain))
        .route("/oauth/apps/{slug}/scopes/{scope}", patch(update_scope))
        .route("/oauth/apps/{slug}/scopes/{scope}/archive", post(archive_scope))
        .route("/oauth/apps/{slug}/scopes/{scope}/unarchive", post(unarchive_scope))
        .route("/oauth/apps/{slug}/scopes/{scope}/mapping", post(set_mapping))
        .route("/oauth/apps/{slug}/clients", get(list_clients).post(create_client))
        .route("/oauth/apps/{slug}/clients/{id}", patch(update_client).delete(deactivate_client))
        .route("/oauth/apps/{slug}/clients/{id}/rotate-secret", post(rotate_secret))
        .route("/oauth/apps/{slug}/clients/{id}/grants", get(list_grants))
        .route("/oauth/apps/{slug}/clients/{id}/grants/{grant_id}/revoke", post(revoke_grant))
}

/// The documented error body.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = json!({"errors": [{"message": message.into(), "code": status.as_u16()}]});
    (status, Json(body)).into_response()
}

fn bad(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, message)
}

fn not_found(what: &str) -> Response {
    error(StatusCode::NOT_FOUND, format!("{what} not found"))
}

/// The deployment a request acts on: the path's, else the API key's.
fn deployment(params: &HashMap<String, String>, caller: &Caller) -> String {
    params.get("deployment_id").cloned().unwrap_or_else(|| caller.deployment.clone())
}

fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> &'a str {
    params.get(name).map(String::as_str).unwrap_or_default()
}

/// A JSON body, rejected as the backend does (see [`crate::json_request`]).
fn json_body<T: for<'de> Deserialize<'de>>(headers: &HeaderMap, body: &Bytes) -> Result<T, Response> {
    crate::json_request(headers, body).map_err(|(status, message)| error(status, message))
}

async fn list_apps(State(emu): State<Emulator>, Extension(caller): Extension<Caller>, Path(p): Params) -> Reply {
    let store = emu.store.lock();
    let apps: Vec<Value> = store.apps(&deployment(&p, &caller)).iter().rev().map(AppRec::to_json).collect();
    Ok(Json(json!({ "apps": apps })).into_response())
}

async fn create_app(
    State(emu): State<Emulator>,
    Extension(caller): Extension<Caller>,
    Path(p): Params,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Reply {
    let mut form = multipart.map_err(|_| error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "expected multipart/form-data"))?;
    let mut fields: HashMap<String, String> = HashMap::new();
    let mut logo = false;
    while let Some(field) = form.next_field().await.map_err(|e| bad(format!("malformed multipart body: {e}")))? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "logo" {
            let image = field.content_type().is_some_and(|t| t.starts_with("image/"));
            if !image {
                return Err(bad("logo must have an image content type"));
            }
            field.bytes().await.map_err(|e| bad(format!("logo: {e}")))?;
            logo = true;
        } else {
            let text = field.text().await.map_err(|e| bad(format!("{name}: {e}")))?;
            fields.insert(name, text);
        }
    }
    let slug = fields.remove("slug").unwrap_or_default();
    let name = fields.remove("name").unwrap_or_default();
    if slug.is_empty() || name.is_empty() {
        return Err(bad("slug and name are required"));
    }
    if !valid_slug(&slug) {
        return Err(bad("slug must be lowercase letters, digits and dashes"));
    }
    let supported: Vec<String> = fields
        .remove("supported_scopes")
        .map(|s| s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
        .unwrap_or_default();
    let definitions: Vec<ScopeDef> = match fields.remove("scope_definitions") {
        Some(text) => serde_json::from_str(&text).map_err(|e| bad(format!("scope_definitions: {e}")))?,
        None => Vec::new(),
    };
    let allow_dcr = match fields.remove("allow_dynamic_client_registration").as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(bad("allow_dynamic_client_registration must be true or false"));
        }
    };
    let scopes = ScopeDef::merge(&supported, definitions).map_err(bad)?;

    let dep = deployment(&p, &caller);
    let mut store = emu.store.lock();
    if store.apps(&dep).iter().any(|a| a.slug == slug) {
        return Err(error(StatusCode::CONFLICT, format!("OAuth app {slug} already exists")));
    }
    let id = store.next_id().to_string();
    let app = AppRec {
        id,
        slug,
        name,
        description: fields.remove("description"),
        logo_url: logo.then(|| "https://cdn.emulator.invalid/logo".to_string()),
        fqdn: fields.remove("fqdn"),
        scopes,
        allow_dynamic_client_registration: allow_dcr,
        is_active: true,
        created_at: now(),
        updated_at: now(),
        clients: Vec::new(),
    };
    let body = app.to_json();
    store.apps_mut(&dep).push(app);
    Ok(Json(body).into_response())
}

#[derive(Deserialize)]
struct AppPatch {
    name: Option<String>,
    description: Option<String>,
    supported_scopes: Option<Vec<String>>,
    scope_definitions: Option<Vec<ScopeDef>>,
    allow_dynamic_client_registration: Option<bool>,
    is_active: Option<bool>,
}

async fn update_app(
    State(emu): State<Emulator>,
    Extension(caller): Extension<Caller>,
    Path(p): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let patch: AppPatch = json_body(&headers, &body)?;
    with_app(&emu, &caller, &p, |app| {
        let names = patch.supported_scopes.unwrap_or_else(|| app.scopes.iter().map(|s| s.scope.clone()).collect());
        // The real backend rebuilds the definitions from the request: omitted ones reset.
        app.scopes = ScopeDef::merge(&names, patch.scope_definitions.unwrap_or_default()).map_err(bad)?;
        if let Some(name) = patch.name {
            app.name = name;
        }
        if let Some(description) = patch.description {
            app.description = Some(description);
        }
        if let Some(allow) = patch.allow_dynamic_client_registration {
            app.allow_dynamic_client_registration = allow;
        }
        if let Some(active) = patch.is_active {
            app.is_active = active;
        }
        app.updated_at = now();
        Ok(Json(app.to_json()).into_response())
    })
}

async fn verify_domain(State(emu): State<Emulator>, Extension(caller): Extension<Caller>, Path(p): Params) -> Reply {
    let store = emu.store.lock();
    let app = store.app(&deployment(&p, &caller), param(&p, "slug")).ok_or_else(|| not_found("OAuth app"))?;
    let domain = app.fqdn.clone().ok_or_else(|| bad("the app has no custom domain"))?;
    let verified = store.verified_domains.contains(&domain);
    let body =
        json!({"domain": domain, "cname_target": format!("{}.cname.emulator.invalid", app.slug), "verified": verified});
    Ok(Json(body).into_response())
}

#[derive(Deserialize)]
struct ScopePatch {
    display_name: Option<String>,
    description: Option<String>,
}

async fn update_scope(
    State(emu): State<Emulator>,
    Extension(caller): Extension<Caller>,
    Path(p): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let patch: ScopePatch = json_body(&headers, &body)?;
    edit_scope(&emu, &caller, &p, |scope| {
        if let Some(name) = patch.display_name {
            scope.display_name = name;
        }
        if let Some(description) = patch.description {
            scope.description = description;
        }
        Ok(())
    })
}

async fn archive_scope(State(emu): State<Emulator>, Extension(caller): Extension<Caller>, Path(p): Params) -> Reply {
    edit_scope(&emu, &caller, &p, |scope| {
        scope.archived = true;
        Ok(())
    })
}

async fn unarchive_scope(State(emu): State<Emulator>, Extension(caller): Extension<Caller>, Path(p): Params) -> Reply {
    edit_scope(&emu, &caller, &p, |scope| {
        scope.archived = false;
        Ok(())
    })
}

#[derive(Deserialize)]
struct MappingRequest {
    category: String,
    organization_permission: Option<String>,
    workspace_permission: Option<String>,
}

async fn set_mapping(
    State(emu): State<Emulator>,
    Extension(caller): Extension<Caller>,
    Path(p): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let m: MappingRequest = json_body(&headers, &body)?;
    let (org, ws) =
        (m.organization_permission.filter(|s| !s.is_empty()), m.workspace_permission.filter(|s| !s.is_empty()));
    match (m.category.as_str(), &org, &ws) {
        ("personal", None, None) | ("organization", Some(_), None) | ("workspace", None, Some(_)) => {}
        ("personal" | "organization" | "workspace", _, _) => {
            return Err(bad(format!("category {} does not take those permissions", m.category)));
        }
        _ => return Err(bad("category must be personal, organization or workspace")),
    }
    edit_scope(&emu, &caller, &p, |scope| {
        if !scope.category.is_empty()
            && (scope.category != m.category
                || scope.organization_permission != org
                || scope.workspace_permission != ws)
        {
            return Err(bad("the scope mapping is already set and cannot change"));
        }
        scope.category = m.category;
        scope.organization_permission = org;
        scope.workspace_permission = ws;
        Ok(())
    })
}

/// Runs `f` on the app the path names, under the store lock; 404 when there is none.
fn with_app<T>(
    emu: &Emulator,
    caller: &Caller,
    p: &HashMap<String, String>,
    f: impl FnOnce(&mut AppRec) -> Result<T, Response>,
) -> Result<T, Response> {
    let mut store = emu.store.lock();
    let app = store.app_mut(&deployment(p, caller), param(p, "slug")).ok_or_else(|| not_found("OAuth app"))?;
    f(app)
}

/// Runs `f` on the active client the path names; 404 for an inactive one, as the backend does.
fn with_active_client<T>(
    emu: &Emulator,
    caller: &Caller,
    p: &HashMap<String, String>,
    f: impl FnOnce(&mut ClientRec) -> Result<T, Response>,
) -> Result<T, Response> {
    with_app(emu, caller, p, |app| {
        let client = client_mut(app, param(p, "id"))?;
        if !client.is_active {
            return Err(not_found("OAuth client"));
        }
        f(client)
    })
}

fn edit_scope(
    emu: &Emulator,
    caller: &Caller,
    p: &HashMap<String, String>,
    edit: impl FnOnce(&mut ScopeDef) -> Result<(), Response>,
) -> Reply {
    with_app(emu, caller, p, |app| {
        let scope = app.scopes.iter_mut().find(|s| s.scope == param(p, "scope")).ok_or_else(|| not_found("scope"))?;
        edit(scope)?;
        app.updated_at = now();
        Ok(Json(app.to_json()).into_response())
    })
}

async fn list_clients(State(emu): State<Emulator>, Extension(caller): Extension<Caller>, Path(p): Params) -> Reply {
    let store = emu.store.lock();
    let app = store.app(&deployment(&p, &caller), param(&p, "slug")).ok_or_else(|| not_found("OAuth app"))?;
    let clients: Vec<Value> = app.clients.iter().rev().map(|c| c.to_json(None)).collect();
    Ok(Json(json!({ "clients": clients })).into_response())
}

async fn create_client(
    State(emu): State<Emulator>,
    Extension(caller): Extension<Caller>,
    Path(p): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let mut settings: Value = json_body(&headers, &body)?;
    for required in ["client_auth_method", "grant_types"] {
        if settings.get(required).is_none_or(Value::is_null) {
            return Err(error(StatusCode::UNPROCESSABLE_ENTITY, format!("missing field `{required}`")));
        }
    }
    ClientRec::normalize(&mut settings).map_err(bad)?;
    ClientRec::validate(&settings).map_err(bad)?;
    let secret = ClientRec::has_secret(&settings).then(new_secret);
    let mut store = emu.store.lock();
    let id = store.next_id();
    let app = store.app_mut(&deployment(&p, &caller), param(&p, "slug")).ok_or_else(|| not_found("OAuth app"))?;
    let client = ClientRec {
        id,
        oauth_app_id: app.id.clone(),
        client_id: format!("oc_{}", &new_secret()[10..34]),
        settings,
        secret_hash: secret.as_deref().map(hash),
        is_active: true,
        created_at: now(),
        updated_at: now(),
        grants: Vec::new(),
    };
    let body = client.to_json(secret.as_deref());
    app.clients.push(client);
    Ok(Json(body).into_response())
}

/// The client of a path, by its numeric row id; 400 for an id that is not a number.
fn client_mut<'a>(app: &'a mut AppRec, id: &str) -> Result<&'a mut ClientRec, Response> {
    let id: u64 = id.parse().map_err(|_| bad("oauth_client_id must be a numeric id"))?;
    app.clients.iter_mut().find(|c| c.id == id).ok_or_else(|| not_found("OAuth client"))
}

async fn update_client(
    State(emu): State<Emulator>,
    Extension(caller): Extension<Caller>,
    Path(p): Params,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let patch: Value = json_body(&headers, &body)?;
    let Value::Object(patch) = patch else {
        return Err(error(StatusCode::UNPROCESSABLE_ENTITY, "body must be an object"));
    };
    with_active_client(&emu, &caller, &p, |client| {
        let mut settings = client.settings.clone();
        for (key, value) in patch {
            if key == "is_active" || value.is_null() {
                continue; // not updatable / not sent
            }
            settings[key.as_str()] = value;
        }
        ClientRec::normalize(&mut settings).map_err(bad)?;
        ClientRec::validate(&settings).map_err(bad)?;
        client.settings = settings;
        client.updated_at = now();
        Ok(Json(client.to_json(None)).into_response())
    })
}

async fn deactivate_client(
    State(emu): State<Emulator>,
    Extension(caller): Extension<Caller>,
    Path(p): Params,
) -> Reply {
    with_active_client(&emu, &caller, &p, |client| {
        client.is_active = false;
        client.updated_at = now();
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}

async fn rotate_secret(State(emu): State<Emulator>, Extension(caller): Extension<Caller>, Path(p): Params) -> Reply {
    let secret = new_secret();
    with_active_client(&emu, &caller, &p, |client| {
        if !ClientRec::has_secret(&client.settings) {
            return Err(bad("this client authentication method has no secret to rotate"));
        }
        client.secret_hash = Some(hash(&secret));
        client.updated_at = now();
        Ok(Json(json!({ "client_secret": secret })).into_response())
    })
}

async fn list_grants(State(emu): State<Emulator>, Extension(caller): Extension<Caller>, Path(p): Params) -> Reply {
    with_app(&emu, &caller, &p, |app| {
        let slug = app.slug.clone();
        let client = client_mut(app, param(&p, "id"))?;
        let grants: Vec<Value> = client.grants.iter().rev().map(|g| g.to_json(&slug, client.id)).collect();
        Ok(Json(json!({ "grants": grants })).into_response())
    })
}

async fn revoke_grant(State(emu): State<Emulator>, Extension(caller): Extension<Caller>, Path(p): Params) -> Reply {
    with_app(&emu, &caller, &p, |app| {
        let client = client_mut(app, param(&p, "id"))?;
        let grant =
            client.grants.iter_mut().find(|g| g.id == param(&p, "grant_id")).ok_or_else(|| not_found("grant"))?;
        if grant.status != "revoked" {
            grant.status = "revoked".into();
            grant.revoked_at = Some(now());
            grant.updated_at = now();
        }
        Ok(Json(json!({})).into_response())
    })
}

fn valid_slug(slug: &str) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    slug.len() <= 63 && slug.chars().all(ok) && !slug.starts_with('-') && !slug.ends_with('-')
}
