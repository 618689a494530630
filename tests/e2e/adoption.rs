//! What no resource owns is the platform's (docs/multi-tenancy.md, adoption): a backend object
//! made outside the operator and named by a namespace user is refused until the operator's
//! configuration lets that namespace adopt on its backend (here: the namespace label
//! `oauth-operator.dev/adopt=allowed`, which only the platform can set). Refused, the object
//! keeps its settings and its own credentials, and no Secret of the namespace holds them; once
//! the platform labels the namespace, the resync after takes it over. On each backend that can
//! hold such an object: the Wacht-style API (an app, by slug), the OAuth Applications API (an
//! application, by `adoptId`), the MCP API (a registered client, by provider; in
//! `tenancy::claimed_app_or_provider_is_refused`) and Ory Hydra (a client, by `hydra.clientId`).

use k8s_openapi::api::{core::v1::Namespace, events::v1::Event};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams},
};
use libtest_mimic::Trial;
use oauth_operator::{
    api::{OAuthApp, OAuthClient},
    backend::{AppKey, ApplicationSettings, Backend, ClientSettings, Mode, NewApp},
};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Env, env::trial, resources::*, samples::sample_with};

pub fn trials() -> Vec<Trial> {
    vec![
        trial("adoption::a_hand_made_wacht_app", a_hand_made_wacht_app),
        trial("adoption::a_hand_made_application", a_hand_made_application),
        trial("adoption::a_hand_made_hydra_client", a_hand_made_hydra_client),
    ]
}

/// The platform lets `ns` adopt on the e2e backends (the operator's `adopt` rule).
pub async fn allow_adoption(admin: &Client, ns: &str) {
    let label = json!({"metadata": {"labels": {"oauth-operator.dev/adopt": "allowed"}}});
    Api::<Namespace>::all(admin.clone())
        .patch(ns, &PatchParams::default(), &Patch::Merge(&label))
        .await
        .expect("label");
}

/// Whether a Warning event about `name` in `ns` has this reason and mentions `what`.
async fn warned(admin: &Client, ns: &str, name: &str, reason: &str, what: &str) -> bool {
    let events = Api::<Event>::namespaced(admin.clone(), ns).list(&ListParams::default()).await.expect("events");
    events.items.iter().any(|e| {
        e.reason.as_deref() == Some(reason)
            && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
            && e.note.as_deref().is_some_and(|n| n.contains(what))
    })
}

async fn is_stalled<K: kube::Resource<DynamicType = ()>>(client: &Client, ns: &str, name: &str) -> bool {
    let obj = dynamic::<K>(client, ns).get(name).await.expect("get");
    let conditions = obj.data["status"]["conditions"].as_array().cloned().unwrap_or_default();
    conditions.iter().any(|c| c["type"] == "Stalled" && c["status"] == "True")
}

/// No Secret of `ns` holds `value` in any key.
async fn no_secret_holds(client: &Client, ns: &str, value: &str) -> bool {
    let secrets = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), ns);
    let listed = secrets.list(&ListParams::default()).await.expect("list Secrets");
    !listed.items.iter().flat_map(|s| s.data.iter().flatten()).any(|(_, v)| v.0 == value.as_bytes())
}

async fn a_hand_made_wacht_app(admin: Client) {
    let ns = "adopt-wacht";
    let dev = namespace_user(&admin, ns).await;
    // The platform's own app and a client of it, made with the management API.
    let slug = "a1-platform";
    let new = NewApp {
        slug: slug.into(),
        name: "Platform dashboard".into(),
        description: Some("made by hand".into()),
        ..Default::default()
    };
    backend().create_app(None, &new).await.expect("create the app by hand");
    let key = AppKey { deployment: None, slug: slug.into() };
    let settings = ClientSettings {
        client_auth_method: "client_secret_basic".into(),
        grant_types: vec!["authorization_code".into()],
        redirect_uris: vec![REDIRECT.into()],
        ..Default::default()
    };
    let (own, creds) = backend().create_client(&key, &settings).await.expect("its own client");
    let own_secret = creds.client_secret.expect("a secret").expose().to_string();
    SEEN_SECRETS.lock().unwrap_or_else(|e| e.into_inner()).push(own_secret.clone());
    let find = async || backend().list_apps(None).await.expect("apps").into_iter().find(|a| a.slug == slug);
    let before = find().await.expect("the app");

    // A namespace user names it: refused, nothing written.
    let takeover = json!({"displayName": "Taken over", "scopes": [{"name": "admin"}]});
    apply::<OAuthApp>(&dev, ns, app_doc("platform", slug, takeover)).await;
    apply::<OAuthClient>(&dev, ns, client_doc("web", "platform", json!({}))).await;
    let message = not_ready::<OAuthApp>(&dev, ns, "platform", "AdoptionNotAllowed").await;
    assert!(message.contains(slug) && message.contains("may not adopt"), "{message}");
    assert!(is_stalled::<OAuthApp>(&dev, ns, "platform").await, "Stalled: it waits for the platform");
    assert!(warned(&admin, ns, "platform", "AdoptionNotAllowed", slug).await, "an event names the app");
    not_ready::<OAuthClient>(&dev, ns, "web", "AppNotReady").await;
    assert_eq!(find().await, Some(before.clone()), "the app is unchanged");
    assert_eq!(backend().list_clients(&key).await.expect("clients").len(), 1, "no client was added to it");
    assert_eq!(token_status(&own.client_id, &own_secret).await, 200, "its own client still works");
    assert!(no_secret_holds(&dev, ns, &own.client_id).await, "no Secret of the namespace names its client");

    // The platform lets the namespace adopt: the next resync takes the app over.
    allow_adoption(&admin, ns).await;
    app_ready(&dev, ns, "platform").await;
    let adopted = find().await.expect("the app");
    assert_eq!(adopted.id, before.id, "the same app");
    assert_eq!(adopted.name, "Taken over", "now brought to the spec");
    client_ready(&dev, ns, "web").await;
    let (id, secret) = credentials(&dev, ns, "web-oauth-client").await;
    assert_eq!(token_status(&id, &secret).await, 200, "a client of the adopted app works");

    // The app's hand-made client, taken over by adoptId: the same client id, a new secret.
    apply::<OAuthClient>(&dev, ns, client_doc("legacy", "platform", json!({"adoptId": own.id}))).await;
    let legacy = client_ready(&dev, ns, "legacy").await.status.expect("status");
    assert_eq!(legacy.backend_id.as_deref(), Some(own.id.as_str()), "the same backend client");
    let (taken, new_secret) = credentials(&dev, ns, "legacy-oauth-client").await;
    assert_eq!(taken, own.client_id);
    assert_eq!(token_status(&taken, &new_secret).await, 200, "the delivered secret works");
    assert_eq!(token_status(&own.client_id, &own_secret).await, 401, "the hand-made secret is replaced");
    assert_eq!(backend().list_clients(&key).await.expect("clients").len(), 2, "no client made for it");
}

async fn a_hand_made_application(admin: Client) {
    let ns = "adopt-applications";
    let dev = namespace_user(&admin, ns).await;
    // An application registered with the API before the operator came.
    let sample = sample_with("oauthclient-adopt.yaml", "legacy", json!({"metadata": {"namespace": null}}));
    let existing: OAuthClient = serde_json::from_value(sample.clone()).expect("the sample");
    let settings = ClientSettings {
        redirect_uris: vec!["https://legacy.example.com/cb".into()],
        mode: Mode::Application(Box::new(ApplicationSettings {
            name: "Legacy".into(),
            kind: "web".into(),
            owner_org_id: "org_e2e".into(),
            allowed_scopes: Vec::new(),
        })),
        ..Default::default()
    };
    let (made, creds) = applications().create_client(&AppKey::none(), &settings).await.expect("register by hand");
    let old_secret = creds.client_secret.expect("a secret").expose().to_string();
    SEEN_SECRETS.lock().unwrap_or_else(|e| e.into_inner()).push(old_secret.clone());
    let read = async || applications().get_client(&AppKey::none(), &made.id).await.expect("get").expect("exists");
    let before = read().await;
    let app_token = async |secret: &str| {
        Env::get().emu.token_status(&made.client_id, secret, true, "https://legacy.example.com/cb").await
    };
    assert_eq!(app_token(&old_secret).await, 200);

    // The sample names it by adoptId: refused until the platform allows the namespace.
    let mut doc = sample;
    doc["spec"]["adoptId"] = made.id.clone().into();
    let secret_name = existing.spec.secret_template.as_ref().and_then(|t| t.name.clone()).expect("a Secret name");
    apply::<OAuthClient>(&dev, ns, doc).await;
    let message = not_ready::<OAuthClient>(&dev, ns, "legacy", "AdoptionNotAllowed").await;
    assert!(message.contains(&made.client_id) && message.contains("may not adopt"), "{message}");
    assert!(is_stalled::<OAuthClient>(&dev, ns, "legacy").await);
    assert!(warned(&admin, ns, "legacy", "AdoptionNotAllowed", &made.client_id).await, "an event names it");
    assert_eq!(read().await.settings, before.settings, "its settings are unchanged");
    assert!(read().await.active);
    assert_eq!(app_token(&old_secret).await, 200, "its own secret still works");
    assert!(no_secret_holds(&dev, ns, &made.client_id).await, "no Secret of the namespace names it");

    // Allowed: taken over, its secret rotated once (it cannot be read back) and delivered.
    allow_adoption(&admin, ns).await;
    let adopted = client_ready(&dev, ns, "legacy").await.status.expect("status");
    assert_eq!(adopted.backend_id.as_deref(), Some(made.id.as_str()), "the same application");
    let (id, secret) = credentials(&dev, ns, &secret_name).await;
    assert_eq!(id, made.client_id);
    assert_eq!(app_token(&secret).await, 200, "the delivered secret works");
    assert_eq!(app_token(&old_secret).await, 401, "the hand-made secret is replaced");
    let now = read().await.settings.application().cloned().expect("an application");
    assert_eq!(Some(now.name), existing.spec.client_name, "brought to the spec");
    assert_eq!(now.allowed_scopes, ["workspace:read"]);
    assert!(warned_normal(&admin, ns, "legacy", "TookOver").await, "an event tells of the takeover");
}

async fn warned_normal(admin: &Client, ns: &str, name: &str, reason: &str) -> bool {
    warned(admin, ns, name, reason, "").await
}

async fn a_hand_made_hydra_client(admin: Client) {
    let ns = "adopt-hydra";
    let dev = namespace_user(&admin, ns).await;
    let hydra = &Env::get().hydra;
    // The platform's dashboard client, made with Hydra's admin API: no owner.
    let id = "a3-platform-dashboard";
    let old = "platform-dashboard-secret-of-32-chars";
    let body = json!({"client_id": id, "client_secret": old, "grant_types": ["client_credentials"],
        "scope": "platform.admin", "token_endpoint_auth_method": "client_secret_basic"});
    assert_eq!(hydra.admin_call(Method::POST, "/admin/clients", Some(body)).await.0, 201);
    SEEN_SECRETS.lock().unwrap_or_else(|e| e.into_inner()).push(old.into());
    let before = hydra.client(id).await.expect("in Hydra");

    let secret = "dashboard-hydra";
    let spec = json!({"secretTemplate": {"name": secret}, "hydra": {"clientId": id}});
    let doc =
        sample_with("oauthclient-hydra.yaml", "dashboard", json!({"spec": spec, "metadata": {"namespace": null}}));
    apply::<OAuthClient>(&dev, ns, doc).await;
    let message = not_ready::<OAuthClient>(&dev, ns, "dashboard", "AdoptionNotAllowed").await;
    assert!(message.contains(id) && message.contains("may not adopt"), "{message}");
    assert!(is_stalled::<OAuthClient>(&dev, ns, "dashboard").await);
    assert!(warned(&admin, ns, "dashboard", "AdoptionNotAllowed", id).await, "an event names the client");
    assert_eq!(hydra.client(id).await, Some(before), "byte for byte unchanged");
    assert_eq!(hydra.token_status(id, old, true).await, 200, "the platform's secret still works");
    assert!(no_secret_holds(&dev, ns, id).await, "no Secret of the namespace names it");

    allow_adoption(&admin, ns).await;
    let taken = client_ready(&dev, ns, "dashboard").await;
    let (taken_id, new) = credentials(&dev, ns, secret).await;
    assert_eq!(taken_id, id);
    assert_eq!(hydra.token_status(id, &new, true).await, 200, "taken over with a new secret");
    assert_eq!(hydra.token_status(id, old, true).await, 401, "the hand-made secret is replaced");
    let owner: Option<Value> = hydra.client(id).await.map(|c| c["owner"].clone());
    assert_eq!(owner, taken.metadata.uid.map(Value::from), "Hydra records the new owner");
}
