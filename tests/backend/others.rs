//! The OAuth Applications and MCP OAuth clients adapters against the emulator, over real
//! loopback sockets: every operation, the write-only secret, the documented update semantics,
//! and each error class.

use oauth_operator::backend::{
    AppKey, ApplicationSettings, Backend, ClientSettings, ErrorCategory, Mode, RegisteredSettings, RegisteredStatus,
    SecretString, applications::ApplicationsBackend, mcp::McpBackend,
};
use serde_json::{Value, json};

use super::{REDIRECT, category};
use crate::support::emulator::Emulator;

const KEY: &str = "other-key";

/// What only an application has, to change.
fn application_mut(settings: &mut ClientSettings) -> &mut ApplicationSettings {
    match &mut settings.mode {
        Mode::Application(a) => a,
        other => panic!("not an application: {other:?}"),
    }
}

fn registered_mut(settings: &mut ClientSettings) -> &mut RegisteredSettings {
    match &mut settings.mode {
        Mode::Registered(r) => r,
        other => panic!("not a registered client: {other:?}"),
    }
}

fn application(name: &str, owner: &str) -> ClientSettings {
    ClientSettings {
        redirect_uris: vec![REDIRECT.into()],
        mode: Mode::Application(Box::new(ApplicationSettings {
            name: name.into(),
            kind: "web".into(),
            owner_org_id: owner.into(),
            allowed_scopes: vec!["workspace:read".into()],
        })),
        ..Default::default()
    }
}

#[tokio::test]
async fn applications_register_read_update_rotate_disable() {
    let emu = Emulator::start(&[KEY]);
    let backend = ApplicationsBackend::new(emu.http(KEY, 5), Some("org_default".into())).expect("backend");
    let none = AppKey::none();
    let (app, creds) = backend.create_client(&none, &application("Shop", "")).await.expect("register");
    let secret = creds.client_secret.expect("a secret on register");
    assert_eq!(app.id, creds.client_id);
    assert_eq!(app.settings.application().expect("settings").owner_org_id, "org_default");
    assert_eq!(emu.token_status(&app.client_id, secret.expose(), false, REDIRECT).await, 200);

    let read = backend.get_client(&none, &app.id).await.expect("get").expect("exists");
    assert_eq!(read.settings, app.settings, "GET shows what register stored");
    assert!(backend.get_client(&none, "app_unknown").await.expect("get").is_none(), "404 reads as absent");

    let mut changed = application("Shop 2", "");
    changed.redirect_uris = vec!["https://shop.example.com/cb".into()];
    application_mut(&mut changed).allowed_scopes.clear();
    let updated = backend.update_client(&none, &app.id, &changed).await.expect("patch");
    let settings = updated.settings.application().expect("settings");
    assert_eq!((settings.name.as_str(), settings.allowed_scopes.len()), ("Shop 2", 0), "an empty list clears");
    assert_eq!(updated.settings.redirect_uris, ["https://shop.example.com/cb"]);

    let rotated = backend.rotate_secret(&none, &app.id).await.expect("rotate");
    let cb = "https://shop.example.com/cb";
    assert_eq!(emu.token_status(&app.client_id, rotated.expose(), true, cb).await, 200, "new secret works");
    assert_eq!(emu.token_status(&app.client_id, secret.expose(), true, cb).await, 401, "old one does not");

    backend.deactivate_client(&none, &app.id).await.expect("disable");
    let disabled = backend.get_client(&none, &app.id).await.expect("get").expect("kept");
    assert!(!disabled.active, "DELETE is a soft disable");
    assert_eq!(emu.token_status(&app.client_id, rotated.expose(), true, cb).await, 401);
    assert_eq!(category(backend.rotate_secret(&none, &app.id).await), ErrorCategory::Invalid);
    assert_eq!(category(backend.update_client(&none, "app_unknown", &changed).await), ErrorCategory::NotFound);
    assert_eq!(category(backend.list_clients(&none).await), ErrorCategory::Unsupported);
}

#[tokio::test]
async fn applications_refuse_bad_input_and_keys() {
    let emu = Emulator::start(&[KEY]);
    let none = AppKey::none();
    let without_owner = ApplicationsBackend::new(emu.http(KEY, 5), None).expect("backend");
    assert_eq!(category(without_owner.create_client(&none, &application("A", "")).await), ErrorCategory::Invalid);
    let mut bad_type = application("A", "org");
    application_mut(&mut bad_type).kind = "server".into();
    assert_eq!(category(without_owner.create_client(&none, &bad_type).await), ErrorCategory::Invalid);
    let wrong = ApplicationsBackend::new(emu.http("wrong", 5), None).expect("backend");
    assert_eq!(category(wrong.get_client(&none, "x").await), ErrorCategory::Unauthorized);
    let raw = reqwest::Client::new().get(format!("{}/api/oauth-applications/x", emu.url)).send().await.expect("get");
    assert_eq!(raw.status(), 401);
    let body: Value = raw.json().await.expect("json");
    assert!(body["error"].is_string(), "the API's own error body: {body}");
}

fn registered(provider: &str) -> ClientSettings {
    ClientSettings {
        redirect_uris: vec![REDIRECT.into()],
        mode: Mode::Registered(Box::new(RegisteredSettings {
            provider: provider.into(),
            provider_name: "GitHub".into(),
            client_id: "gh-id".into(),
            authorization_url: "https://github.com/login/oauth/authorize".into(),
            token_url: "https://github.com/login/oauth/access_token".into(),
            scopes: vec!["read:user".into()],
            metadata: json!({"token_auth_method": "client_secret_post"}).as_object().cloned().unwrap_or_default(),
            server_ids: vec!["srv_1".into()],
            status: RegisteredStatus::Active,
        })),
        ..Default::default()
    }
}

#[tokio::test]
async fn mcp_clients_register_list_update_push_delete() {
    let emu = Emulator::start(&[KEY]);
    let backend = McpBackend::new(emu.http(KEY, 5), Some("cust_1".into()), Some("proj_1".into())).expect("backend");
    let none = AppKey::none();
    let created =
        backend.register_client(&none, &registered("github"), &SecretString::new("s-one")).await.expect("create");
    assert_eq!(*created.settings, registered("github"), "the answer shows what was stored");
    assert!(emu.mcp_secret_matches(&created.id, "s-one").await);
    let conflict = backend.register_client(&none, &registered("github"), &SecretString::new("s")).await;
    assert_eq!(category(conflict), ErrorCategory::Conflict, "one client per provider");

    // Updates: collections replace (and clear with the replace flags), the secret stays.
    let mut changed = registered("github");
    let r = registered_mut(&mut changed);
    r.provider_name = "GitHub Enterprise".into();
    r.scopes.clear();
    r.metadata.clear();
    r.status = RegisteredStatus::Inactive;
    let updated = backend.update_client(&none, &created.id, &changed).await.expect("patch");
    let r = updated.settings.registered().expect("registered");
    assert_eq!(r.provider_name, "GitHub Enterprise");
    assert!(r.scopes.is_empty() && r.metadata.is_empty(), "emptied collections are cleared");
    assert_eq!(r.server_ids, ["srv_1"]);
    assert!(!updated.active, "status inactive");
    assert!(emu.mcp_secret_matches(&created.id, "s-one").await, "an update leaves the secret");

    backend.set_client_secret(&none, &created.id, &SecretString::new("s-two")).await.expect("rotate in place");
    assert!(emu.mcp_secret_matches(&created.id, "s-two").await);
    assert!(!emu.mcp_secret_matches(&created.id, "s-one").await);
    let read = backend.get_client(&none, &created.id).await.expect("get").expect("exists");
    assert_eq!(read.client_id, "gh-id");

    // Lists page through every client, newest last.
    for i in 0..120 {
        let provider = format!("p{i}");
        backend.register_client(&none, &registered(&provider), &SecretString::new("s")).await.expect("create");
    }
    assert_eq!(backend.list_clients(&none).await.expect("list").len(), 121, "every page read");
    emu.set_faults(serde_json::json!({"repeat_page_token": true})).await;
    let err = backend.list_clients(&none).await.expect_err("a list that repeats itself ends");
    assert!(err.to_string().contains("repeats a page token"), "{err}");
    emu.set_faults(serde_json::json!({})).await;

    backend.deactivate_client(&none, &created.id).await.expect("delete");
    assert!(backend.get_client(&none, &created.id).await.expect("get").is_none(), "soft-deleted reads as absent");
    assert_eq!(backend.list_clients(&none).await.expect("list").len(), 120);
    assert_eq!(category(backend.deactivate_client(&none, &created.id).await), ErrorCategory::NotFound);
    backend.register_client(&none, &registered("github"), &SecretString::new("s")).await.expect("provider free again");
    assert_eq!(category(backend.rotate_secret(&none, &created.id).await), ErrorCategory::Unsupported);
}

#[tokio::test]
async fn mcp_clients_default_to_the_session_scope_and_check_keys() {
    let emu = Emulator::start(&[&format!("{KEY}=dep_x")]);
    let none = AppKey::none();
    let session = McpBackend::new(emu.http(KEY, 5), None, None).expect("backend");
    let named = McpBackend::new(emu.http(KEY, 5), Some("cust_dep_x".into()), Some("proj_dep_x".into())).expect("b");
    session.register_client(&none, &registered("github"), &SecretString::new("s")).await.expect("create");
    assert_eq!(named.list_clients(&none).await.expect("list").len(), 1, "empty ids are the session's scope");
    let other = McpBackend::new(emu.http(KEY, 5), Some("cust_2".into()), None).expect("backend");
    assert!(other.list_clients(&none).await.expect("list").is_empty(), "scopes are apart");

    let mut missing = registered("gitlab");
    registered_mut(&mut missing).token_url.clear();
    assert_eq!(
        category(session.register_client(&none, &missing, &SecretString::new("s")).await),
        ErrorCategory::Invalid
    );
    let wrong = McpBackend::new(emu.http("wrong", 5), None, None).expect("backend");
    assert_eq!(category(wrong.list_clients(&none).await), ErrorCategory::Unauthorized);
    let raw = reqwest::Client::new()
        .get(format!("{}/v1/customers//projects//mcp-oauth-clients", emu.url))
        .send()
        .await
        .expect("get");
    assert_eq!(raw.status(), 401);
    let body: Value = raw.json().await.expect("json");
    assert_eq!(body["code"], 16, "gRPC UNAUTHENTICATED: {body}");
}
