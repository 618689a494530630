//! The emulator's own answers to raw HTTP, checked against `docs/backends/wacht.md`: auth, the
//! error body, status codes of rejected bodies, and the client validation rules.

use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::support::emulator::Emulator;

const KEY: &str = "raw-key";

struct Raw {
    emu: Emulator,
    http: reqwest::Client,
}

impl Raw {
    async fn start() -> Raw {
        let raw = Raw { emu: Emulator::start(&[KEY]), http: reqwest::Client::new() };
        let form =
            reqwest::multipart::Form::new().text("slug", "raw").text("name", "Raw").text("supported_scopes", "a,b");
        let status = raw
            .http
            .post(raw.url("/oauth/apps"))
            .bearer_auth(KEY)
            .multipart(form)
            .send()
            .await
            .expect("create")
            .status();
        assert_eq!(status, StatusCode::OK);
        raw
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.emu.url)
    }

    async fn json(&self, method: reqwest::Method, path: &str, body: Value) -> (StatusCode, Value) {
        let response =
            self.http.request(method, self.url(path)).bearer_auth(KEY).json(&body).send().await.expect("request");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

fn assert_error_body(body: &Value, status: StatusCode) {
    assert_eq!(body["errors"][0]["code"], status.as_u16(), "error body: {body}");
    assert!(body["errors"][0]["message"].as_str().is_some_and(|m| !m.is_empty()), "error body: {body}");
}

#[tokio::test]
async fn requests_without_a_valid_bearer_get_401_with_the_error_body() {
    let raw = Raw::start().await;
    for auth in [None, Some("Bearer wrong"), Some(KEY)] {
        let mut request = raw.http.get(raw.url("/deployments/dep_1/oauth/apps"));
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        let response = request.send().await.expect("request");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "Authorization: {auth:?}");
        assert_error_body(&response.json().await.expect("JSON"), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn rejected_bodies_get_the_documented_status() {
    let raw = Raw::start().await;
    let text =
        raw.http.post(raw.url("/oauth/apps/raw/clients")).bearer_auth(KEY).body("{}").send().await.expect("request");
    assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "JSON without its content type");
    let json_app = raw
        .http
        .post(raw.url("/oauth/apps"))
        .bearer_auth(KEY)
        .json(&json!({"slug": "x", "name": "X"}))
        .send()
        .await
        .expect("request");
    assert_eq!(json_app.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "apps are created with multipart");
    let (status, body) =
        raw.json(reqwest::Method::POST, "/oauth/apps/raw/clients", json!({"client_auth_method": "none"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "grant_types missing");
    assert_error_body(&body, status);
    let (status, _) = raw
        .json(reqwest::Method::POST, "/oauth/apps/raw/clients", json!({"grant_types": ["authorization_code"]}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "client_auth_method missing");
    let duplicate = reqwest::multipart::Form::new().text("slug", "raw").text("name", "Again");
    let response =
        raw.http.post(raw.url("/oauth/apps")).bearer_auth(KEY).multipart(duplicate).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn client_rules_answer_400() {
    let raw = Raw::start().await;
    let base = json!({"client_auth_method": "client_secret_basic", "grant_types": ["authorization_code"], "redirect_uris": ["https://a.example.com/cb"]});
    let cases = [
        ("unknown method", json!({"client_auth_method": "tls_client_auth"})),
        ("unknown grant", json!({"grant_types": ["authorization_code", "client_credentials"]})),
        ("no authorization_code", json!({"grant_types": ["refresh_token"]})),
        ("no redirect URI", json!({"redirect_uris": []})),
        ("fragment", json!({"redirect_uris": ["https://a.example.com/cb#x"]})),
        ("not http", json!({"redirect_uris": ["ftp://a.example.com/cb"]})),
        ("key material without private_key_jwt", json!({"jwks_uri": "https://k.example.com/jwks"})),
        ("private_key_jwt without key", json!({"client_auth_method": "private_key_jwt"})),
        (
            "private_key_jwt with two keys",
            json!({"client_auth_method": "private_key_jwt", "jwks_uri": "https://k.example.com/jwks", "public_key_pem": "-----BEGIN PUBLIC KEY-----"}),
        ),
        (
            "jwks_uri not https",
            json!({"client_auth_method": "private_key_jwt", "jwks_uri": "http://k.example.com/jwks"}),
        ),
        (
            "symmetric jwk",
            json!({"client_auth_method": "private_key_jwt", "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}),
        ),
        ("id token alg", json!({"id_token_signing_alg": "HS256"})),
        ("token format", json!({"access_token_format": "paseto"})),
        ("ttl too short", json!({"access_token_ttl_seconds": 59})),
        ("ttl too long", json!({"access_token_ttl_seconds": 86401})),
    ];
    for (case, change) in cases {
        let mut body = base.clone();
        for (k, v) in change.as_object().expect("object") {
            body[k] = v.clone();
        }
        let (status, reply) = raw.json(reqwest::Method::POST, "/oauth/apps/raw/clients", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {reply}");
        assert_error_body(&reply, status);
    }
    let (status, created) = raw.json(reqwest::Method::POST, "/oauth/apps/raw/clients", base).await;
    assert_eq!(status, StatusCode::OK, "the base case is valid");
    assert!(created["client_secret"].is_string(), "create shows the secret once");
    let (_, listed) = raw.json(reqwest::Method::GET, "/oauth/apps/raw/clients", Value::Null).await;
    assert!(listed["clients"][0].get("client_secret").is_none(), "lists never show a secret");
}

#[tokio::test]
async fn patch_without_definitions_resets_them() {
    let raw = Raw::start().await;
    let mapping = json!({"category": "workspace", "workspace_permission": "ws:a"});
    let (status, _) = raw.json(reqwest::Method::POST, "/oauth/apps/raw/scopes/a/mapping", mapping).await;
    assert_eq!(status, StatusCode::OK);
    let (status, app) = raw.json(reqwest::Method::PATCH, "/oauth/apps/raw", json!({"name": "Renamed"})).await;
    assert_eq!(status, StatusCode::OK);
    let first = &app["scope_definitions"][0];
    assert_eq!(first["category"], "", "the mapping is lost: {app}");
    assert_eq!(first["description"], "Allows a access");
}
