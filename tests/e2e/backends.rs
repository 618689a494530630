//! The two backends without apps, end to end: OAuthClients in `application` mode (the OAuth
//! Applications API, secrets issued by the backend) and in `registered` mode (the MCP OAuth
//! clients API, secrets pushed from a user's Secret).

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, Patch, PatchParams},
};
use libtest_mimic::Trial;
use oauth_operator::{
    api::OAuthClient,
    backend::{AppKey, Backend, ClientSettings, Mode, RegisteredSettings, SecretString},
};
use serde_json::{Value, json};

use crate::support::{Env, env::trial, resources::*};

pub fn trials() -> Vec<Trial> {
    vec![
        trial("backends::application_create_update_rotate_delete", application_create_update_rotate_delete),
        trial("backends::application_orphan_policy_keeps_it", application_orphan_policy_keeps_it),
        trial("backends::application_new_client_rotation_and_deletion", application_new_client_rotation_and_deletion),
        trial("backends::application_rejected_api_key_is_reported", application_rejected_api_key_is_reported),
        trial(
            "backends::registered_waits_for_its_secret_and_pushes_changes",
            registered_waits_for_its_secret_and_pushes_changes,
        ),
        trial("backends::registered_adopts_the_provider_and_orphans", registered_adopts_the_provider_and_orphans),
        trial("backends::registered_rejected_api_key_is_reported", registered_rejected_api_key_is_reported),
    ]
}

fn application_doc(name: &str, spec: Value) -> Value {
    let mut doc = json!({"metadata": {"name": name}, "spec": {"backend": "apps", "redirectUris": [REDIRECT],
        "application": {"type": "web", "allowedScopes": ["workspace:read"]}}});
    crate::support::samples::merge_patch(&mut doc["spec"], &spec);
    doc
}

/// Calls whose method writes, under a path prefix.
async fn writes_under(prefix: &str) -> u64 {
    Env::get().emu.calls_matching(|m| m != "GET", prefix).await
}

/// Waits until `method path` has been called `n` more times: that many passes read the backend.
async fn passes(n: u64, method: &str, path: &str) {
    let emu = &Env::get().emu;
    let start = emu.calls(method, path).await;
    until(&format!("{method} {path} called {n} more times"), async || emu.calls(method, path).await >= start + n).await;
}

async fn application_create_update_rotate_delete(client: Client) {
    let ns = namespace(&client, "e2e-apps").await;
    apply::<OAuthClient>(&client, &ns, application_doc("web", json!({"clientName": "Web shop"}))).await;
    let web = client_ready(&client, &ns, "web").await;
    let (id, secret) = credentials(&client, &ns, "web-oauth-client").await;
    let status = web.status.clone().expect("status");
    assert_eq!(status.backend_id.as_deref(), Some(id.as_str()), "the application's id is its client id");
    assert_eq!(token_status(&id, &secret).await, 200, "the issued secret authenticates");
    let app = applications().get_client(&AppKey::none(), &id).await.expect("get").expect("exists");
    let settings = app.settings.application().cloned().expect("application");
    assert_eq!((settings.name.as_str(), settings.kind.as_str()), ("Web shop", "web"));
    assert_eq!(settings.owner_org_id, "org_e2e", "the backend configuration's owner");
    assert_eq!(settings.allowed_scopes, ["workspace:read"]);

    // Update: the backend follows, the secret stays.
    let uris = ["https://app.example.com/new-callback"];
    let spec = json!({"clientName": "Web shop", "redirectUris": uris, "application": {"allowedScopes": ["workspace:read", "workspace:write"]}});
    apply::<OAuthClient>(&client, &ns, application_doc("web", spec.clone())).await;
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), &ns);
    let generation = web.metadata.generation.expect("generation") + 1;
    wait(&api, "web", "reconciled", |o| {
        o.and_then(|c| c.status.as_ref()).and_then(|s| s.observed_generation) == Some(generation)
    })
    .await;
    let app = applications().get_client(&AppKey::none(), &id).await.expect("get").expect("exists");
    assert_eq!(app.settings.redirect_uris, uris);
    assert_eq!(app.settings.application().cloned().expect("application").allowed_scopes.len(), 2);
    assert_eq!(credentials(&client, &ns, "web-oauth-client").await, (id.clone(), secret.clone()));

    // Steady state: passes read the application and write nothing, here or in Kubernetes.
    let path = format!("/api/oauth-applications/{id}");
    let (writes, before) = (writes_under(&path).await, api.get("web").await.expect("get").resource_version());
    passes(2, "GET", &path).await;
    assert_eq!(writes_under(&path).await, writes, "no backend writes at steady state");
    assert_eq!(api.get("web").await.expect("get").resource_version(), before, "no status writes");

    // Rotation: one rotate-secret call; the new secret works, the old one does not.
    let rotations = || async { Env::get().emu.calls("POST", &format!("{path}/rotate-secret")).await };
    let annotate = json!({"metadata": {"annotations": {"oauth-operator.dev/rotate": "r1"}}});
    api.patch("web", &PatchParams::default(), &Patch::Merge(annotate)).await.expect("annotate");
    wait(&api, "web", "rotated", |o| {
        o.and_then(|c| c.status.as_ref()).and_then(|s| s.last_handled_rotate_request.as_deref()) == Some("r1")
    })
    .await;
    let (_, rotated) = credentials(&client, &ns, "web-oauth-client").await;
    assert_ne!(rotated, secret);
    assert_eq!(rotations().await, 1, "exactly one rotation");
    let emu = &Env::get().emu;
    assert_eq!(emu.token_status(&id, &rotated, true, uris[0]).await, 200, "the new secret works");
    assert_eq!(emu.token_status(&id, &secret, true, uris[0]).await, 401, "the old secret does not");

    // Delete: the application is disabled, the Secret goes.
    api.delete("web", &DeleteParams::default()).await.expect("delete");
    wait(&api, "web", "gone", |o| o.is_none()).await;
    let app = applications().get_client(&AppKey::none(), &id).await.expect("get").expect("kept, disabled");
    assert!(!app.active, "disabled in the backend");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    assert!(secrets.get_opt("web-oauth-client").await.expect("get").is_none(), "the Secret is gone");
}

/// A NewClient rotation on the OAuth Applications API makes a new application with the same
/// settings; the previous one works until its overlap ends. A deletion during an overlap
/// disables both.
async fn application_new_client_rotation_and_deletion(client: Client) {
    let ns = namespace(&client, "e2e-apps-new-client").await;
    let spec = json!({"clientName": "Swap", "rotation": {"strategy": "NewClient", "overlap": "10s"}});
    apply::<OAuthClient>(&client, &ns, application_doc("swap", spec)).await;
    client_ready(&client, &ns, "swap").await;
    let (first, first_secret) = credentials(&client, &ns, "swap-oauth-client").await;
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), &ns);
    let rotate = async |value: &str| {
        let annotate = json!({"metadata": {"annotations": {"oauth-operator.dev/rotate": value}}});
        api.patch("swap", &PatchParams::default(), &Patch::Merge(annotate)).await.expect("annotate");
        wait(&api, "swap", "rotated", |o| {
            o.and_then(|c| c.status.as_ref()).and_then(|s| s.last_handled_rotate_request.as_deref()) == Some(value)
        })
        .await
        .expect("client")
    };
    let rotated = rotate("r1").await;
    let (second, second_secret) = credentials(&client, &ns, "swap-oauth-client").await;
    assert_ne!(second, first, "a new application");
    let previous = rotated.status.and_then(|s| s.previous_client).expect("previous client");
    assert_eq!((previous.client_id.as_str(), previous.retired), (first.as_str(), false));
    let read = async |id: &str| applications().get_client(&AppKey::none(), id).await.expect("get").expect("exists");
    let (old, new) = (read(&first).await, read(&second).await);
    assert_eq!(new.settings.application(), old.settings.application(), "the same settings");
    assert_eq!(new.settings.redirect_uris, old.settings.redirect_uris);
    assert_eq!(token_status(&first, &first_secret).await, 200, "the previous application works during the overlap");
    assert_eq!(token_status(&second, &second_secret).await, 200, "the new one works");
    wait(&api, "swap", "the previous application retired", |o| {
        o.and_then(|c| c.status.as_ref()?.previous_client.as_ref()).is_some_and(|p| p.retired)
    })
    .await;
    assert!(!read(&first).await.active, "disabled after the overlap");
    assert_eq!(token_status(&first, &first_secret).await, 401, "and refused");
    // Retired and settled: passes read and write nothing, here or in the backend.
    let path = format!("/api/oauth-applications/{second}");
    let both = async || writes_under(&path).await + writes_under(&format!("/api/oauth-applications/{first}")).await;
    let (writes, before) = (both().await, api.get("swap").await.expect("get").resource_version());
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let secret_version = secrets.get("swap-oauth-client").await.expect("get").resource_version();
    passes(2, "GET", &path).await;
    assert_eq!(both().await, writes, "no backend write once retired (a new application would show in the Secret)");
    assert_eq!(api.get("swap").await.expect("get").resource_version(), before, "no status write");
    assert_eq!(
        secrets.get("swap-oauth-client").await.expect("get").resource_version(),
        secret_version,
        "no Secret write"
    );

    // Deleted during the next overlap: the current and the previous application are disabled.
    rotate("r2").await;
    let (third, _) = credentials(&client, &ns, "swap-oauth-client").await;
    assert!(read(&second).await.active, "serving its overlap");
    api.delete("swap", &DeleteParams::default()).await.expect("delete");
    wait(&api, "swap", "gone", |o| o.is_none()).await;
    assert!(!read(&second).await.active, "the previous application is disabled with the resource");
    assert!(!read(&third).await.active, "and so is the current one");
}

async fn application_orphan_policy_keeps_it(client: Client) {
    let ns = namespace(&client, "e2e-apps-orphan").await;
    apply::<OAuthClient>(&client, &ns, application_doc("web", json!({"deletionPolicy": "Orphan"}))).await;
    let web = client_ready(&client, &ns, "web").await;
    let id = web.status.expect("status").backend_id.expect("backend id");
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), &ns);
    api.delete("web", &DeleteParams::default()).await.expect("delete");
    wait(&api, "web", "gone", |o| o.is_none()).await;
    let app = applications().get_client(&AppKey::none(), &id).await.expect("get").expect("kept");
    assert!(app.active, "still enabled in the backend");
}

async fn application_rejected_api_key_is_reported(client: Client) {
    let ns = namespace(&client, "e2e-apps-wrong-key").await;
    apply::<OAuthClient>(&client, &ns, application_doc("web", json!({"backend": "apps-wrong-key"}))).await;
    let message = not_ready::<OAuthClient>(&client, &ns, "web", "BackendCredentialsRejected").await;
    assert!(message.contains("backend credentials"), "{message}");
}

async fn registered_waits_for_its_secret_and_pushes_changes(client: Client) {
    let ns = namespace(&client, "e2e-mcp").await;
    apply::<OAuthClient>(&client, &ns, registered_doc("github", "github-e2e", json!({}))).await;
    let message = not_ready::<OAuthClient>(&client, &ns, "github", "CredentialsSecretNotReady").await;
    assert!(message.contains("github-upstream"), "names the Secret it waits for: {message}");

    upstream_secret(&client, &ns, "github-upstream", "gh-client-1", "gh-secret-one").await;
    let github = client_ready(&client, &ns, "github").await;
    let status = github.status.clone().expect("status");
    let id = status.backend_id.clone().expect("backend id");
    assert_eq!(status.client_id.as_deref(), Some("gh-client-1"));
    assert!(!serde_json::to_string(&status).expect("json").contains("gh-secret-one"), "no secret in the status");
    let emu = &Env::get().emu;
    assert!(emu.mcp_secret_matches(&id, "gh-secret-one").await, "the pushed secret is stored");
    let listed = mcp().list_clients(&AppKey::none()).await.expect("list");
    let ours: Vec<_> =
        listed.iter().filter(|c| c.settings.registered().is_some_and(|r| r.provider == "github-e2e")).collect();
    assert_eq!(ours.len(), 1, "one backend client for the provider");
    let registered = ours[0].settings.registered().cloned().expect("registered");
    assert_eq!((registered.provider_name.as_str(), registered.scopes.len()), ("GitHub", 1));
    assert_eq!(registered.metadata["token_auth_method"], "client_secret_post");

    // An update of the spec: one PATCH, the secret untouched.
    let path = format!("/v1/customers/cust_e2e/projects/-/mcp-oauth-clients/{id}");
    let patches = || async { Env::get().emu.calls("PATCH", &path).await };
    let before = patches().await;
    let spec = json!({"registered": {"providerName": "GitHub Enterprise", "scopes": []}});
    apply::<OAuthClient>(&client, &ns, registered_doc("github", "github-e2e", spec.clone())).await;
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), &ns);
    let generation = github.metadata.generation.expect("generation") + 1;
    wait(&api, "github", "reconciled", |o| {
        o.and_then(|c| c.status.as_ref()).and_then(|s| s.observed_generation) == Some(generation)
    })
    .await;
    let current = mcp().get_client(&AppKey::none(), &id).await.expect("get").expect("exists");
    let registered = current.settings.registered().cloned().expect("registered");
    assert_eq!(registered.provider_name, "GitHub Enterprise");
    assert!(registered.scopes.is_empty(), "an emptied list is cleared (replace_scopes)");
    assert_eq!(patches().await, before + 1, "one PATCH for the update");
    assert!(emu.mcp_secret_matches(&id, "gh-secret-one").await, "the secret is untouched");

    // A change of the user's Secret rotates in place, once.
    let before = patches().await;
    upstream_secret(&client, &ns, "github-upstream", "gh-client-1", "gh-secret-two").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let version = secrets.get("github-upstream").await.expect("get").resource_version();
    wait(&api, "github", "pushed", |o| {
        o.and_then(|c| c.status.as_ref()).and_then(|s| s.credentials_secret_version.clone()) == version
    })
    .await;
    assert!(emu.mcp_secret_matches(&id, "gh-secret-two").await, "the new secret is stored");
    assert!(!emu.mcp_secret_matches(&id, "gh-secret-one").await, "the old one is not");
    assert_eq!(patches().await, before + 1, "one PATCH for the rotation");

    // Steady state: resync passes write nothing.
    let (before, version) = (patches().await, api.get("github").await.expect("get").resource_version());
    passes(3, "GET", "/v1/customers/cust_e2e/projects/-/mcp-oauth-clients").await;
    assert_eq!(patches().await, before, "no backend writes at steady state");
    assert_eq!(api.get("github").await.expect("get").resource_version(), version, "no status writes");

    // Delete: soft-deleted in the backend; the user's Secret stays.
    api.delete("github", &DeleteParams::default()).await.expect("delete");
    wait(&api, "github", "gone", |o| o.is_none()).await;
    assert!(mcp().get_client(&AppKey::none(), &id).await.expect("get").is_none(), "deleted in the backend");
    assert!(secrets.get_opt("github-upstream").await.expect("get").is_some(), "the user's Secret is kept");
}

async fn registered_adopts_the_provider_and_orphans(client: Client) {
    let ns = namespace(&client, "e2e-mcp-adopt").await;
    // The platform lets this namespace adopt what no resource owns (tests/e2e/adoption.rs).
    crate::adoption::allow_adoption(&client, &ns).await;
    // A client for the provider exists already (made by hand, or before a crash).
    let settings = ClientSettings {
        mode: Mode::Registered(Box::new(RegisteredSettings {
            provider: "gitlab-e2e".into(),
            provider_name: "GitLab".into(),
            client_id: "gl-client".into(),
            authorization_url: "https://gitlab.com/oauth/authorize".into(),
            token_url: "https://gitlab.com/oauth/token".into(),
            ..Default::default()
        })),
        ..Default::default()
    };
    let existing = mcp()
        .register_client(&AppKey::none(), &settings, &SecretString::new("gl-old"))
        .await
        .expect("register by hand");
    upstream_secret(&client, &ns, "gitlab-upstream", "gl-client", "gl-secret").await;
    let spec = json!({"deletionPolicy": "Orphan", "registered": {"providerName": "GitLab",
        "authorizationUrl": "https://gitlab.com/oauth/authorize", "tokenUrl": "https://gitlab.com/oauth/token"}});
    apply::<OAuthClient>(&client, &ns, registered_doc("gitlab", "gitlab-e2e", spec)).await;
    let gitlab = client_ready(&client, &ns, "gitlab").await;
    assert_eq!(gitlab.status.expect("status").backend_id.as_deref(), Some(existing.id.as_str()), "adopted");
    assert!(Env::get().emu.mcp_secret_matches(&existing.id, "gl-secret").await, "the user's secret is pushed");
    let listed = mcp().list_clients(&AppKey::none()).await.expect("list");
    let count = listed.iter().filter(|c| c.settings.registered().is_some_and(|r| r.provider == "gitlab-e2e")).count();
    assert_eq!(count, 1, "no duplicate");

    let api: Api<OAuthClient> = Api::namespaced(client.clone(), &ns);
    api.delete("gitlab", &DeleteParams::default()).await.expect("delete");
    wait(&api, "gitlab", "gone", |o| o.is_none()).await;
    let kept = mcp().get_client(&AppKey::none(), &existing.id).await.expect("get");
    assert!(kept.is_some_and(|c| c.active), "Orphan keeps it in the backend");
}

async fn registered_rejected_api_key_is_reported(client: Client) {
    let ns = namespace(&client, "e2e-mcp-wrong-key").await;
    upstream_secret(&client, &ns, "github-upstream", "id", "wrong-key-secret").await;
    apply::<OAuthClient>(
        &client,
        &ns,
        registered_doc("github", "github-wrong-key", json!({"backend": "mcp-wrong-key"})),
    )
    .await;
    let message = not_ready::<OAuthClient>(&client, &ns, "github", "BackendCredentialsRejected").await;
    assert!(message.contains("backend credentials"), "{message}");
}
