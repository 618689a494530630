//! The adapters against the emulator, over real loopback sockets: every Wacht operation in both
//! path layouts, the other two APIs (`others`), and each error class.

#[path = "../support/mod.rs"]
mod support;

mod emulator_rules;
mod others;

use std::time::Duration;

use oauth_operator::backend::{
    AppKey, AppUpdate, Backend, ClientSettings, ErrorCategory, Logo, NewApp, Scope, ScopeMapping, wacht::WachtBackend,
};
use serde_json::json;
use support::emulator::Emulator;

const KEY: &str = "test-key";
const REDIRECT: &str = "https://app.example.com/cb";

/// Deployment-scoped paths (`/deployments/dep_a/...`) or key-scoped ones (`/oauth/apps`).
#[derive(Clone, Copy)]
enum Layout {
    Deployment,
    Key,
}

struct Setup {
    emu: Emulator,
    backend: WachtBackend,
}

fn setup(layout: Layout) -> Setup {
    let emu = Emulator::start(&[&format!("{KEY}=dep_a")]);
    let backend = backend(&emu, KEY, layout, Duration::from_secs(5));
    Setup { emu, backend }
}

fn backend(emu: &Emulator, key: &str, layout: Layout, timeout: Duration) -> WachtBackend {
    let deployment = match layout {
        Layout::Deployment => Some("dep_a".into()),
        Layout::Key => None,
    };
    WachtBackend::new(emu.http(key, timeout.as_secs()), deployment).expect("backend")
}

fn key(slug: &str) -> AppKey {
    AppKey { deployment: None, slug: slug.into() }
}

fn scope(name: &str) -> Scope {
    Scope {
        name: name.into(),
        display_name: name.into(),
        description: format!("Allows {name} access"),
        archived: false,
        mapping: None,
    }
}

fn new_app(slug: &str) -> NewApp {
    NewApp {
        slug: slug.into(),
        name: "MCP Auth".into(),
        description: Some("for tests".into()),
        fqdn: Some(format!("{slug}.example.com")),
        scopes: vec![scope("mcp:invoke"), scope("profile")],
        allow_dynamic_client_registration: false,
        logo: Some(Logo {
            bytes: vec![0x89, b'P', b'N', b'G'],
            content_type: "image/png".into(),
            filename: "logo.png".into(),
        }),
    }
}

fn settings(method: &str) -> ClientSettings {
    ClientSettings {
        client_auth_method: method.into(),
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        redirect_uris: vec![REDIRECT.into()],
        ..Default::default()
    }
}

fn category<T: std::fmt::Debug>(result: Result<T, oauth_operator::backend::Error>) -> ErrorCategory {
    result.expect_err("expected an error").category()
}

async fn apps(layout: Layout) {
    let Setup { emu: _emu, backend } = setup(layout);
    let first = backend.create_app(None, &new_app("first")).await.expect("create app");
    assert_eq!(first.slug, "first");
    assert_eq!(first.fqdn.as_deref(), Some("first.example.com"));
    assert_eq!(first.scopes.len(), 2);
    assert_eq!(first.scopes[0].description, "Allows mcp:invoke access");
    backend.create_app(None, &new_app("second")).await.expect("create app");
    let listed = backend.list_apps(None).await.expect("list apps");
    let slugs: Vec<_> = listed.iter().map(|a| a.slug.as_str()).collect();
    assert_eq!(slugs, ["second", "first"], "newest first");
    assert_eq!(category(backend.create_app(None, &new_app("first")).await), ErrorCategory::Conflict);

    let mut scopes = first.scopes.clone();
    scopes[0].display_name = "Invoke".into();
    let update = AppUpdate { name: Some("Renamed".into()), scopes, active: Some(false), ..Default::default() };
    let updated = backend.update_app(&key("first"), &update).await.expect("update app");
    assert_eq!(updated.name, "Renamed");
    assert!(!updated.active);
    assert_eq!(updated.scopes[0].display_name, "Invoke");
    assert_eq!(category(backend.update_app(&key("missing"), &update).await), ErrorCategory::NotFound);
}

async fn domain(layout: Layout) {
    let Setup { emu, backend } = setup(layout);
    backend.create_app(None, &new_app("dom")).await.expect("create app");
    let before = backend.verify_domain(&key("dom")).await.expect("verify domain");
    assert_eq!(before.domain, "dom.example.com");
    assert!(!before.verified);
    assert!(!before.cname_target.is_empty());
    emu.verify_domain("dom.example.com").await;
    assert!(backend.verify_domain(&key("dom")).await.expect("verify domain").verified);
    let mut bare = new_app("bare");
    bare.fqdn = None;
    backend.create_app(None, &bare).await.expect("create app");
    assert_eq!(category(backend.verify_domain(&key("bare")).await), ErrorCategory::Invalid);
}

async fn scopes(layout: Layout) {
    let Setup { emu: _emu, backend } = setup(layout);
    let app = key("sc");
    backend.create_app(None, &new_app("sc")).await.expect("create app");
    let updated =
        backend.update_scope(&app, "mcp:invoke", "Invoke tools", "Runs MCP tools").await.expect("update scope");
    assert_eq!(updated.scopes[0].display_name, "Invoke tools");
    let archived = backend.set_scope_archived(&app, "mcp:invoke", true).await.expect("archive");
    assert!(archived.scopes[0].archived);
    let unarchived = backend.set_scope_archived(&app, "mcp:invoke", false).await.expect("unarchive");
    assert!(!unarchived.scopes[0].archived);
    let mapping = ScopeMapping::Workspace("workspace:mcp:invoke".into());
    let mapped = backend.set_scope_mapping(&app, "mcp:invoke", &mapping).await.expect("set mapping");
    assert_eq!(mapped.scopes[0].mapping, Some(mapping.clone()));
    let other = ScopeMapping::Organization("org:admin".into());
    assert_eq!(category(backend.set_scope_mapping(&app, "mcp:invoke", &other).await), ErrorCategory::Invalid);
    assert_eq!(category(backend.set_scope_archived(&app, "nope", true).await), ErrorCategory::NotFound);

    // The adapter always sends the definitions, so an app update keeps mappings and text.
    let update = AppUpdate { scopes: mapped.scopes.clone(), description: Some("x".into()), ..Default::default() };
    let kept = backend.update_app(&app, &update).await.expect("update app");
    assert_eq!(kept.scopes, mapped.scopes);
}

async fn clients(layout: Layout) {
    let Setup { emu, backend } = setup(layout);
    let app = key("cl");
    backend.create_app(None, &new_app("cl")).await.expect("create app");
    let (client, credentials) =
        backend.create_client(&app, &settings("client_secret_basic")).await.expect("create client");
    let secret = credentials.client_secret.clone().expect("a secret is issued");
    assert!(secret.expose().starts_with("oc_secret_"));
    assert!(client.id.parse::<u64>().is_ok(), "row ids are numeric");
    assert!(client.client_id.starts_with("oc_"));
    assert!(!format!("{credentials:?} {client:?}").contains(secret.expose()), "secrets never print");
    assert_eq!(emu.token_status(&client.client_id, secret.expose(), true, REDIRECT).await, 200);
    assert_eq!(emu.token_status(&client.client_id, "oc_secret_wrong", true, REDIRECT).await, 401);

    let (post, post_credentials) =
        backend.create_client(&app, &settings("client_secret_post")).await.expect("create client");
    let post_secret = post_credentials.client_secret.expect("secret");
    assert_eq!(emu.token_status(&post.client_id, post_secret.expose(), false, REDIRECT).await, 200);

    let listed = backend.list_clients(&app).await.expect("list clients");
    let ids: Vec<_> = listed.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, [post.id.as_str(), client.id.as_str()], "newest first");

    let mut changed = settings("client_secret_basic");
    changed.redirect_uris = vec!["https://new.example.com/cb".into()];
    changed.client_name = Some("Web".into());
    let updated = backend.update_client(&app, &client.id, &changed).await.expect("update client");
    assert_eq!(updated.settings.redirect_uris, changed.redirect_uris);
    assert_eq!(updated.settings.client_name.as_deref(), Some("Web"));
    changed.client_name = None;
    let cleared = backend.update_client(&app, &client.id, &changed).await.expect("update client");
    assert_eq!(cleared.settings.client_name, None, "an unset text field is cleared");

    let rotated = backend.rotate_secret(&app, &client.id).await.expect("rotate");
    assert_ne!(rotated, secret);
    let redirect = "https://new.example.com/cb";
    assert_eq!(emu.token_status(&client.client_id, rotated.expose(), true, redirect).await, 200);
    assert_eq!(
        emu.token_status(&client.client_id, secret.expose(), true, redirect).await,
        401,
        "old secret stops working"
    );

    backend.deactivate_client(&app, &client.id).await.expect("deactivate");
    assert_eq!(
        emu.token_status(&client.client_id, rotated.expose(), true, redirect).await,
        401,
        "inactive client fails"
    );
    let after = backend.list_clients(&app).await.expect("list clients");
    assert!(after.iter().any(|c| c.id == client.id && !c.active), "inactive clients stay listed");
    assert_eq!(category(backend.deactivate_client(&app, &client.id).await), ErrorCategory::NotFound);
    assert_eq!(category(backend.update_client(&app, &client.id, &changed).await), ErrorCategory::NotFound);
    assert_eq!(category(backend.rotate_secret(&app, &client.id).await), ErrorCategory::NotFound);

    let (public, public_credentials) = backend.create_client(&app, &settings("none")).await.expect("public client");
    assert!(public_credentials.client_secret.is_none());
    assert_eq!(category(backend.rotate_secret(&app, &public.id).await), ErrorCategory::Invalid);
    assert_eq!(category(backend.rotate_secret(&app, "not-a-number").await), ErrorCategory::Invalid);
}

async fn error_classes(layout: Layout) {
    let Setup { emu, backend } = setup(layout);
    let wrong = self::backend(&emu, "wrong-key", layout, Duration::from_secs(5));
    assert_eq!(category(wrong.list_apps(None).await), ErrorCategory::Unauthorized);

    let app = key("err");
    backend.create_app(None, &new_app("err")).await.expect("create app");
    let mut invalid = settings("client_secret_basic");
    invalid.redirect_uris = vec!["https://app.example.com/cb#fragment".into()];
    let err = backend.create_client(&app, &invalid).await.expect_err("invalid client");
    assert_eq!(err.category(), ErrorCategory::Invalid);
    assert!(err.to_string().contains("fragment"), "the backend's message is kept: {err}");
    assert_eq!(category(backend.list_clients(&key("missing")).await), ErrorCategory::NotFound);

    emu.set_faults(json!({"rate_limit_rate": 1.0, "retry_after_seconds": 7})).await;
    match backend.list_apps(None).await {
        Err(oauth_operator::backend::Error::RateLimited { retry_after }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)))
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    emu.set_faults(json!({"error_rate": 1.0})).await;
    assert_eq!(category(backend.list_apps(None).await), ErrorCategory::Transient);
    emu.set_faults(json!({"drop_rate": 1.0})).await;
    assert_eq!(category(backend.list_apps(None).await), ErrorCategory::Transient);
    emu.set_faults(json!({"latency_ms": 1500})).await;
    let impatient = self::backend(&emu, KEY, layout, Duration::from_millis(300));
    let err = impatient.list_apps(None).await.expect_err("timeout");
    assert_eq!(err.category(), ErrorCategory::Transient);
    assert!(err.to_string().contains("timed out"), "{err}");
    emu.set_faults(json!({})).await;
    assert!(backend.list_apps(None).await.is_ok(), "recovers once faults stop");
}

macro_rules! in_both_layouts {
    ($($scenario:ident),* $(,)?) => {
        mod deployment_scoped {
            $( #[tokio::test] async fn $scenario() { super::$scenario(super::Layout::Deployment).await } )*
        }
        mod key_scoped {
            $( #[tokio::test] async fn $scenario() { super::$scenario(super::Layout::Key).await } )*
        }
    };
}

in_both_layouts!(apps, domain, scopes, clients, error_classes);

/// The key-scoped layout acts on the key's deployment only.
#[tokio::test]
async fn keys_scope_their_deployment() {
    let emu = Emulator::start(&["key-a=dep_a", "key-b=dep_b"]);
    let a = backend(&emu, "key-a", Layout::Key, Duration::from_secs(5));
    let b = backend(&emu, "key-b", Layout::Key, Duration::from_secs(5));
    a.create_app(None, &new_app("only-a")).await.expect("create app");
    assert!(b.list_apps(None).await.expect("list").is_empty());
    let by_path = b.list_apps(Some("dep_a")).await.expect("list by path");
    assert_eq!(by_path.len(), 1, "the deployment-scoped path names the deployment");
    let counters = emu.counters().await;
    assert_eq!(counters["POST /oauth/apps"], 1);
    assert_eq!(counters["GET /oauth/apps"], 2, "both layouts count as one endpoint");
}
