//! `POST /oauth2/token`: proves that a client's credentials work, and that a rotated or
//! deactivated client's old ones do not.

use std::collections::HashMap;

use axum::{
    Form, Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde_json::json;

use crate::{
    Emulator,
    store::{GrantRec, new_secret, now},
};

pub fn routes() -> Router<Emulator> {
    Router::new().route("/oauth2/token", post(token))
}

fn oauth_error(status: StatusCode, code: &str) -> Response {
    let mut response = (status, Json(json!({ "error": code }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, "Basic realm=\"oauth\"".parse().expect("header"));
    }
    response
}

/// `client_id` and `client_secret` from HTTP Basic (`client_secret_basic`) or the form
/// (`client_secret_post`).
fn credentials(headers: &HeaderMap, form: &HashMap<String, String>) -> Option<(String, String, &'static str)> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|raw| String::from_utf8(raw).ok());
    if let Some(pair) = basic {
        let (id, secret) = pair.split_once(':')?;
        return Some((id.to_string(), secret.to_string(), "client_secret_basic"));
    }
    Some((form.get("client_id")?.clone(), form.get("client_secret")?.clone(), "client_secret_post"))
}

async fn token(State(emu): State<Emulator>, headers: HeaderMap, Form(form): Form<HashMap<String, String>>) -> Response {
    let Some((client_id, secret, used)) = credentials(&headers, &form) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    };
    let grant_id = new_secret();
    let mut store = emu.store.lock();
    if let Some(app) = store.applications.get(&client_id) {
        return application_token(app, &secret, &form, &grant_id);
    }
    let Some(client) = store.client_by_client_id(&client_id) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    };
    let method = client.settings["client_auth_method"].as_str().unwrap_or_default();
    if !client.is_active || method != used || !client.secret_matches(&secret) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let grant_type = form.get("grant_type").map(String::as_str).unwrap_or_default();
    let allowed = client.settings["grant_types"].as_array().is_some_and(|g| g.iter().any(|g| g == grant_type));
    if grant_type != "authorization_code" || !allowed {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let redirect = form.get("redirect_uri").map(String::as_str).unwrap_or_default();
    let registered = client.settings["redirect_uris"].as_array().is_some_and(|u| u.iter().any(|u| u == redirect));
    if form.get("code").is_none_or(String::is_empty) || !registered {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let scopes: Vec<String> =
        form.get("scope").map(|s| s.split_whitespace().map(String::from).collect()).unwrap_or_default();
    client.grants.push(GrantRec {
        id: format!("grant_{}", &grant_id[10..30]),
        resource: form.get("resource").cloned(),
        scopes: scopes.clone(),
        status: "active".into(),
        granted_at: now(),
        revoked_at: None,
        created_at: now(),
        updated_at: now(),
    });
    let ttl = client.settings["access_token_ttl_seconds"].as_i64().unwrap_or(3600);
    Json(json!({
        "access_token": format!("at_{}", &grant_id[10..]),
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": scopes.join(" "),
    }))
    .into_response()
}

/// The token answer for an application of the OAuth Applications API (either secret method).
fn application_token(
    app: &crate::applications::Application,
    secret: &str,
    form: &HashMap<String, String>,
    grant_id: &str,
) -> Response {
    if !app.authenticates(secret) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let redirect = form.get("redirect_uri").map(String::as_str).unwrap_or_default();
    if form.get("code").is_none_or(String::is_empty) || !app.allows_redirect(redirect) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    Json(json!({ "access_token": format!("at_{}", &grant_id[10..]), "token_type": "Bearer", "expires_in": 3600 }))
        .into_response()
}
