//! Tenant isolation (docs/multi-tenancy.md), proven by acting as namespace users: the
//! ServiceAccounts `team-b/dev` and `team-c/dev`, each bound in its namespace to the built-in
//! `edit` role (which the operator's aggregated role extends), drive every attack with their
//! own tokens. Each attack ends in a condition, and the victim's Secret, backend client and app
//! stay as they were.

use std::collections::BTreeMap;

use k8s_openapi::{
    ByteString,
    api::{
        core::v1::{Namespace, Secret, ServiceAccount},
        events::v1::Event,
    },
};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use libtest_mimic::Trial;
use oauth_operator::{
    api::{OAuthApp, OAuthClient},
    backend::{AppKey, Backend},
};
use serde_json::{Value, json};

use crate::support::{
    Env,
    env::trial,
    operator::{NAMESPACE, Operator, apply_objects, manifest},
    resources::*,
    samples::sample_with,
    servers::Server,
};

const B: &str = "team-b";
const C: &str = "team-c";

pub fn trials() -> Vec<Trial> {
    vec![
        trial("tenancy::foreign_secret_is_never_written_or_deleted", foreign_secret_is_never_written_or_deleted),
        trial("tenancy::forged_backend_id_touches_no_other_client", forged_backend_id_touches_no_other_client),
        trial("tenancy::claimed_app_or_provider_is_refused", claimed_app_or_provider_is_refused),
        trial("tenancy::deletion_deactivates_without_the_app", deletion_deactivates_without_the_app),
        trial("tenancy::backends_are_allowed_per_namespace", backends_are_allowed_per_namespace),
        trial("tenancy::namespaced_operator_stays_in_its_namespace", namespaced_operator_stays_in_its_namespace),
    ]
}

/// A resource document with annotations.
fn annotated(mut doc: Value, annotations: Value) -> Value {
    doc["metadata"]["annotations"] = annotations;
    doc
}

async fn has_stalled(client: &Client, ns: &str, name: &str) -> bool {
    let obj = Api::<OAuthClient>::namespaced(client.clone(), ns).get(name).await.expect("client");
    obj.status.is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Stalled" && c.status == "True"))
}

async fn backend_clients_of(slug: &str) -> Vec<oauth_operator::backend::Client> {
    backend().list_clients(&AppKey { deployment: None, slug: slug.into() }).await.expect("list clients")
}

async fn foreign_secret_is_never_written_or_deleted(admin: Client) {
    let dev = namespace_user(&admin, B).await;
    let secrets: Api<Secret> = Api::namespaced(dev.clone(), B);
    SEEN_SECRETS.lock().unwrap_or_else(|e| e.into_inner()).push("t1-db-password".into());
    let db = Secret {
        metadata: kube::api::ObjectMeta { name: Some("t1-db-credentials".into()), ..Default::default() },
        data: Some(BTreeMap::from([("password".to_string(), ByteString(b"t1-db-password".to_vec()))])),
        ..Default::default()
    };
    let db = secrets.create(&PostParams::default(), &db).await.expect("the team's own Secret");
    apply::<OAuthApp>(&dev, B, app_doc("t1-app", "t1-b", json!({}))).await;
    apply::<OAuthClient>(&dev, B, client_doc("t1-first", "t1-app", json!({}))).await;
    client_ready(&dev, B, "t1-first").await;
    let first = credentials(&dev, B, "t1-first-oauth-client").await;

    // A Secret of the namespace, and the Secret the operator wrote for another OAuthClient.
    let thief = client_doc("t1-thief", "t1-app", json!({"secretTemplate": {"name": "t1-db-credentials"}}));
    apply::<OAuthClient>(&dev, B, thief).await;
    let message = not_ready::<OAuthClient>(&dev, B, "t1-thief", "SecretConflict").await;
    assert!(message.contains("t1-db-credentials") && message.contains("does not control it"), "{message}");
    assert!(has_stalled(&dev, B, "t1-thief").await, "Stalled for kstatus: it waits for a change");
    let second = client_doc("t1-second", "t1-app", json!({"secretTemplate": {"name": "t1-first-oauth-client"}}));
    apply::<OAuthClient>(&dev, B, second).await;
    let message = not_ready::<OAuthClient>(&dev, B, "t1-second", "SecretConflict").await;
    assert!(message.contains("OAuthClient t1-first"), "the message names the holder: {message}");
    let events: Api<Event> = Api::namespaced(admin.clone(), B);
    let listed = events.list(&ListParams::default()).await.expect("events");
    assert!(
        listed.items.iter().any(|e| e.reason.as_deref() == Some("SecretConflict")
            && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("t1-thief")),
        "an event tells of the conflict"
    );
    assert_eq!(backend_clients_of("t1-b").await.len(), 1, "no backend client for either claimant");

    // Deleting them, also one whose app does not exist, deletes neither Secret.
    let dangling = client_doc("t1-dangling", "no-such-app", json!({"secretTemplate": {"name": "t1-db-credentials"}}));
    apply::<OAuthClient>(&dev, B, dangling).await;
    not_ready::<OAuthClient>(&dev, B, "t1-dangling", "AppNotFound").await;
    let clients: Api<OAuthClient> = Api::namespaced(dev.clone(), B);
    for name in ["t1-thief", "t1-second", "t1-dangling"] {
        clients.delete(name, &DeleteParams::default()).await.expect("delete");
        wait(&clients, name, "gone", |o| o.is_none()).await;
    }
    let kept = secrets.get("t1-db-credentials").await.expect("the team's Secret is still there");
    assert_eq!(kept.metadata.uid, db.metadata.uid);
    assert_eq!(kept.metadata.resource_version, db.metadata.resource_version, "never written");
    assert!(kept.metadata.owner_references.is_none(), "no owner reference added");
    assert_eq!(credentials(&dev, B, "t1-first-oauth-client").await, first, "the other client's Secret is unchanged");
    assert_eq!(token_status(&first.0, &first.1).await, 200);
}

async fn forged_backend_id_touches_no_other_client(admin: Client) {
    let (dev_b, dev_c) = (namespace_user(&admin, B).await, namespace_user(&admin, C).await);
    // The victim's app lets team-b in: both clients live under one backend app.
    apply::<OAuthApp>(&dev_c, C, app_doc("t2-app", "t2-shared", json!({"clientNamespaces": {"names": [B]}}))).await;
    apply::<OAuthClient>(&dev_c, C, client_doc("t2-victim", "t2-app", json!({}))).await;
    let victim = client_ready(&dev_c, C, "t2-victim").await.status.expect("status");
    let victim_id = victim.backend_id.expect("backend id");
    let victim_creds = credentials(&dev_c, C, "t2-victim-oauth-client").await;
    let evil = "https://evil.example.com/cb";
    let attacker = |annotations: Value| {
        let spec = json!({"appRef": {"name": "t2-app", "namespace": C}, "redirectUris": [evil]});
        annotated(client_doc("t2-attacker", "t2-app", spec), annotations)
    };
    apply::<OAuthClient>(&dev_b, B, attacker(json!({}))).await;
    let own = client_ready(&dev_b, B, "t2-attacker").await.status.expect("status");
    let own_id = own.backend_id.expect("backend id");

    // The attacker points its Secret's record at the victim's client and asks for a rotation.
    let secrets: Api<Secret> = Api::namespaced(dev_b.clone(), B);
    let forge = json!({"metadata": {"annotations": {"oauth-operator.dev/backend-id": victim_id}}});
    secrets.patch("t2-attacker-oauth-client", &PatchParams::default(), &Patch::Merge(&forge)).await.expect("edit");
    apply::<OAuthClient>(&dev_b, B, attacker(json!({"oauth-operator.dev/rotate": "t2-1"}))).await;
    let clients: Api<OAuthClient> = Api::namespaced(dev_b.clone(), B);
    let rotated = wait(&clients, "t2-attacker", "rotated", |o| {
        o.and_then(|c| c.status.as_ref()).is_some_and(|s| s.last_handled_rotate_request.as_deref() == Some("t2-1"))
    })
    .await
    .expect("client");
    assert_eq!(rotated.status.expect("status").backend_id.as_deref(), Some(own_id.as_str()), "its own client still");
    let (id, secret) = credentials(&dev_b, B, "t2-attacker-oauth-client").await;
    assert_eq!(Some(id.clone()), own.client_id, "the attacker's Secret holds its own client");
    assert_eq!(Env::get().emu.token_status(&id, &secret, true, evil).await, 200, "its own secret was rotated");
    let victim_client = backend_client("t2-shared", &victim_id).await;
    assert_eq!(victim_client.settings.redirect_uris, [REDIRECT], "the victim's redirect URIs are untouched");
    assert_eq!(token_status(&victim_creds.0, &victim_creds.1).await, 200, "the victim's secret still works");

    // Deleting the attacker's OAuthClient deactivates its own client only.
    secrets.patch("t2-attacker-oauth-client", &PatchParams::default(), &Patch::Merge(&forge)).await.expect("edit");
    clients.delete("t2-attacker", &DeleteParams::default()).await.expect("delete");
    wait(&clients, "t2-attacker", "gone", |o| o.is_none()).await;
    assert!(!backend_client("t2-shared", &own_id).await.active, "its own client is deactivated");
    assert!(backend_client("t2-shared", &victim_id).await.active, "the victim's client stays active");
    assert_eq!(token_status(&victim_creds.0, &victim_creds.1).await, 200);
}

async fn claimed_app_or_provider_is_refused(admin: Client) {
    let (dev_b, dev_c) = (namespace_user(&admin, B).await, namespace_user(&admin, C).await);
    apply::<OAuthApp>(&dev_b, B, app_doc("t3-app", "t3-taken", json!({}))).await;
    app_ready(&dev_b, B, "t3-app").await;
    let find = async || backend().list_apps(None).await.expect("apps").into_iter().find(|a| a.slug == "t3-taken");
    let before = find().await.expect("the backend app");
    let takeover =
        json!({"displayName": "Taken over", "scopes": [{"name": "admin"}], "clientNamespaces": {"all": true}});
    apply::<OAuthApp>(&dev_c, C, app_doc("t3-app", "t3-taken", takeover)).await;
    let message = not_ready::<OAuthApp>(&dev_c, C, "t3-app", "AlreadyClaimed").await;
    assert!(message.contains("team-b/t3-app"), "the message names the holder: {message}");
    assert_eq!(find().await, Some(before), "the backend app is untouched");

    // A registered client's provider, the same way.
    upstream_secret(&dev_b, B, "t3-gh-upstream", "gh-b", "t3-secret-b").await;
    apply::<OAuthClient>(&dev_b, B, registered_doc("t3-gh", "t3-github", json!({}))).await;
    let holder = client_ready(&dev_b, B, "t3-gh").await.status.expect("status").backend_id.expect("id");
    upstream_secret(&dev_c, C, "t3-gh-upstream", "gh-c", "t3-secret-c").await;
    apply::<OAuthClient>(&dev_c, C, registered_doc("t3-gh", "t3-github", json!({}))).await;
    let message = not_ready::<OAuthClient>(&dev_c, C, "t3-gh", "AlreadyClaimed").await;
    assert!(message.contains("team-b/t3-gh"), "{message}");
    assert!(Env::get().emu.mcp_secret_matches(&holder, "t3-secret-b").await, "team-c's secret was not pushed");
    let clients: Api<OAuthClient> = Api::namespaced(dev_c.clone(), C);
    clients.delete("t3-gh", &DeleteParams::default()).await.expect("delete");
    wait(&clients, "t3-gh", "gone", |o| o.is_none()).await;
    let kept = mcp().get_client(&AppKey::none(), &holder).await.expect("get");
    assert!(kept.is_some_and(|c| c.active), "deleting the claimant leaves the holder's client active");

    // The holder lets go (Orphan): the client is nobody's, so the platform's. The next
    // claimant is refused until the platform lets its namespace adopt, then adopts it.
    let orphan = registered_doc("t3-gh", "t3-github", json!({"deletionPolicy": "Orphan"}));
    apply::<OAuthClient>(&dev_b, B, orphan).await;
    let holders: Api<OAuthClient> = Api::namespaced(dev_b.clone(), B);
    holders.delete("t3-gh", &DeleteParams::default()).await.expect("delete");
    wait(&holders, "t3-gh", "gone", |o| o.is_none()).await;
    apply::<OAuthClient>(&dev_c, C, registered_doc("t3-gh", "t3-github", json!({}))).await;
    let message = not_ready::<OAuthClient>(&dev_c, C, "t3-gh", "AdoptionNotAllowed").await;
    assert!(message.contains(&holder) && message.contains("may not adopt"), "{message}");
    assert!(has_stalled(&dev_c, C, "t3-gh").await, "Stalled: it waits for the platform");
    assert!(Env::get().emu.mcp_secret_matches(&holder, "t3-secret-b").await, "nothing pushed while refused");
    let released = mcp().get_client(&AppKey::none(), &holder).await.expect("get").expect("kept");
    crate::adoption::allow_adoption(&admin, C).await;
    let adopted = client_ready(&dev_c, C, "t3-gh").await.status.expect("status").backend_id;
    assert_eq!(adopted.as_deref(), Some(holder.as_str()), "adopted once released");
    assert!(Env::get().emu.mcp_secret_matches(&holder, "t3-secret-c").await, "team-c's secret now");
    assert!(released.active, "it stayed active while refused");
    let owner =
        mcp().get_client(&AppKey::none(), &holder).await.expect("get").and_then(|c| c.settings.registered().cloned());
    let new_owner = Api::<OAuthClient>::namespaced(dev_c.clone(), C).get("t3-gh").await.expect("get").metadata.uid;
    assert_eq!(
        owner.and_then(|r| r.metadata.get("oauth-operator.dev/owner").cloned()),
        new_owner.map(Value::from),
        "the backend records the new owner"
    );
}

async fn deletion_deactivates_without_the_app(admin: Client) {
    let (dev_b, dev_c) = (namespace_user(&admin, B).await, namespace_user(&admin, C).await);
    apply::<OAuthApp>(&dev_b, B, app_doc("t4-app", "t4-b", json!({}))).await;
    apply::<OAuthClient>(&dev_b, B, client_doc("t4-web", "t4-app", json!({}))).await;
    let id = client_ready(&dev_b, B, "t4-web").await.status.expect("status").backend_id.expect("id");
    let creds = credentials(&dev_b, B, "t4-web-oauth-client").await;
    // The app goes first, as `kubectl delete -f dir/` may do it.
    let apps: Api<OAuthApp> = Api::namespaced(dev_b.clone(), B);
    apps.delete("t4-app", &DeleteParams::default()).await.expect("delete app");
    wait(&apps, "t4-app", "gone", |o| o.is_none()).await;
    let clients: Api<OAuthClient> = Api::namespaced(dev_b.clone(), B);
    clients.delete("t4-web", &DeleteParams::default()).await.expect("delete client");
    wait(&clients, "t4-web", "gone", |o| o.is_none()).await;
    assert!(!backend_client("t4-b", &id).await.active, "deactivated without its app");
    assert_eq!(token_status(&creds.0, &creds.1).await, 401);

    // A whole namespace deleted: the controller manager deletes app and client in any order.
    let ns = namespace(&admin, "team-d").await;
    apply::<OAuthApp>(&admin, &ns, app_doc("t4-app", "t4-d", json!({}))).await;
    apply::<OAuthClient>(&admin, &ns, client_doc("t4-web", "t4-app", json!({}))).await;
    let id = client_ready(&admin, &ns, "t4-web").await.status.expect("status").backend_id.expect("id");
    Api::<Namespace>::all(admin.clone()).delete(&ns, &DeleteParams::default()).await.expect("delete namespace");
    wait(&Api::<OAuthClient>::namespaced(admin.clone(), &ns), "t4-web", "gone", |o| o.is_none()).await;
    assert!(!backend_client("t4-d", &id).await.active, "deactivated with its namespace");

    // An app that stops letting a namespace in: the client stays as it is, and its deletion
    // still deactivates it.
    let shared = |names: Value| app_doc("t4-shared", "t4-c", json!({"clientNamespaces": {"names": names}}));
    apply::<OAuthApp>(&dev_c, C, shared(json!([B]))).await;
    apply::<OAuthClient>(
        &dev_b,
        B,
        client_doc("t4-guest", "t4-shared", json!({"appRef": {"name": "t4-shared", "namespace": C}})),
    )
    .await;
    let id = client_ready(&dev_b, B, "t4-guest").await.status.expect("status").backend_id.expect("id");
    apply::<OAuthApp>(&dev_c, C, shared(json!([]))).await;
    not_ready::<OAuthClient>(&dev_b, B, "t4-guest", "NamespaceNotAllowed").await;
    assert!(backend_client("t4-c", &id).await.active, "left as it is");
    clients.delete("t4-guest", &DeleteParams::default()).await.expect("delete client");
    wait(&clients, "t4-guest", "gone", |o| o.is_none()).await;
    assert!(!backend_client("t4-c", &id).await.active, "deactivated on deletion");
}

async fn backends_are_allowed_per_namespace(admin: Client) {
    let (dev_b, dev_c) = (namespace_user(&admin, B).await, namespace_user(&admin, C).await);
    let app = |slug: &str, spec: Value| app_doc("t5-app", slug, spec);
    apply::<OAuthApp>(&dev_b, B, app("t5-b", json!({"backend": "team-c-only"}))).await;
    let message = not_ready::<OAuthApp>(&dev_b, B, "t5-app", "BackendNotAllowed").await;
    assert!(message.contains("namespace team-b may not use backend \"team-c-only\""), "{message}");
    apply::<OAuthApp>(&dev_c, C, app("t5-c", json!({"backend": "team-c-only"}))).await;
    app_ready(&dev_c, C, "t5-app").await;

    let pinned = json!({"backend": "pinned", "deploymentId": "dep_other"});
    apply::<OAuthApp>(&dev_c, C, app_doc("t5-pinned", "t5-pin", pinned)).await;
    let message = not_ready::<OAuthApp>(&dev_c, C, "t5-pinned", "BackendNotAllowed").await;
    assert!(message.contains("spec.deploymentId") && message.contains("dep_e2e"), "{message}");
    apply::<OAuthApp>(&dev_c, C, app_doc("t5-pinned-default", "t5-pin", json!({"backend": "pinned"}))).await;
    app_ready(&dev_c, C, "t5-pinned-default").await;

    // By label: only the platform can label a namespace.
    let labelled = namespace_user(&admin, "team-l").await;
    let label = json!({"metadata": {"labels": {"oauth-operator.dev/tenant": "allowed"}}});
    Api::<Namespace>::all(admin.clone())
        .patch("team-l", &PatchParams::default(), &Patch::Merge(&label))
        .await
        .expect("label");
    let by_label = |slug: &str| app_doc("t5-labelled", slug, json!({"backend": "labelled"}));
    apply::<OAuthApp>(&labelled, "team-l", by_label("t5-l")).await;
    app_ready(&labelled, "team-l", "t5-labelled").await;
    apply::<OAuthApp>(&dev_b, B, by_label("t5-bl")).await;
    not_ready::<OAuthApp>(&dev_b, B, "t5-labelled", "BackendNotAllowed").await;

    let slugs = async |deployment| {
        let apps = backend().list_apps(deployment).await.expect("apps");
        apps.into_iter().map(|a| a.slug).collect::<Vec<_>>()
    };
    let (in_e2e, in_other) = (slugs(None).await, slugs(Some("dep_other")).await);
    for refused in ["t5-b", "t5-bl"] {
        assert!(!in_e2e.iter().any(|s| s == refused), "{refused} reached the backend");
    }
    assert!(!in_other.iter().any(|s| s == "t5-pin"), "nothing was created in the deployment the pin refused");
}

async fn namespaced_operator_stays_in_its_namespace(admin: Client) {
    let (ns, other) = ("team-n", "team-n-other");
    for name in [ns, other] {
        namespace(&admin, name).await;
    }
    // Its own ServiceAccount, bound by exactly the rules of deploy/namespaced/ moved to `team-n`.
    let account = "oauth-operator-namespaced";
    let sa: ServiceAccount = serde_json::from_value(json!({"apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": account, "namespace": NAMESPACE}}))
    .expect("service account");
    Api::<ServiceAccount>::namespaced(admin.clone(), NAMESPACE)
        .patch(account, &PatchParams::apply("e2e-admin").force(), &Patch::Apply(&sa))
        .await
        .expect("apply ServiceAccount");
    let mut rules = manifest("deploy/namespaced/rbac.yaml");
    for obj in &mut rules {
        obj.metadata.namespace = Some(ns.into());
        if let Some(subject) = obj.data.get_mut("subjects").and_then(|s| s.get_mut(0)) {
            subject["name"] = account.into();
        }
    }
    apply_objects(&admin, rules).await;
    let env = Env::get();
    let args = ["--namespace", ns, "--selector", "e2e=namespaced", "--resync", "4s"];
    let mut operator = Operator::launch_as(&env.cp, &admin, &env.emu, account, &args).await;
    operator.wait_ready().await;

    for (namespace, slug) in [(other, "t6-other"), (ns, "t6-n")] {
        apply_in_shard::<OAuthApp>(&admin, namespace, app_doc("app", slug, json!({})), "namespaced").await;
        apply_in_shard::<OAuthClient>(&admin, namespace, client_doc("web", "app", json!({})), "namespaced").await;
    }
    app_ready(&admin, ns, "app").await;
    client_ready(&admin, ns, "web").await;
    let (id, secret) = credentials(&admin, ns, "web-oauth-client").await;
    assert_eq!(token_status(&id, &secret).await, 200);
    let untouched = Api::<OAuthClient>::namespaced(admin.clone(), other).get("web").await.expect("client");
    assert!(untouched.status.is_none() && untouched.finalizers().is_empty(), "the other namespace is not its own");
    let user = format!("system:serviceaccount:{NAMESPACE}:{account}");
    let outside: Vec<String> = env
        .cp
        .audit()
        .filter(|e| e["user"]["username"] == user.as_str() && e["objectRef"]["namespace"] != ns)
        .map(|e| format!("{} {} {:?}", e["verb"], e["objectRef"]["resource"], e["objectRef"]["namespace"].as_str()))
        .collect();
    assert!(outside.is_empty(), "requests outside {ns}: {outside:?}");
    drop(operator);
}

/// A namespace user names another team's client on a real server (its id is the other
/// resource's UID, which anyone who can list it may see): refused, deleting the refused
/// resource deletes nothing, and the other team's client keeps working, untouched.
pub async fn another_teams_server_client(admin: Client, server: Server) {
    let block = server.name();
    let (team_a, team_b) = (format!("e2e-{block}-team-a"), format!("e2e-{block}-team-b"));
    let team_a = namespace(&admin, &team_a).await;
    let secret = format!("api-{block}");
    let doc = |spec: Value| sample_with(server.sample(), "api", json!({"spec": spec, "metadata": {"namespace": null}}));
    apply::<OAuthClient>(&admin, &team_a, doc(json!({"secretTemplate": {"name": secret}}))).await;
    client_ready(&admin, &team_a, "api").await;
    let (id, value) = credentials(&admin, &team_a, &secret).await;
    let before = server.client(&id).await.expect("in the server");

    let user = namespace_user(&admin, &team_b).await;
    let mut spec = json!({"secretTemplate": {"name": secret}, "deletionPolicy": "Delete"});
    spec[block] = json!({"clientId": id});
    apply::<OAuthClient>(&user, &team_b, doc(spec)).await;
    let message = not_ready::<OAuthClient>(&user, &team_b, "api", "AlreadyClaimed").await;
    assert!(message.contains(&id), "{message}");
    let api: Api<OAuthClient> = Api::namespaced(user.clone(), &team_b);
    api.delete("api", &DeleteParams::default()).await.expect("delete as the user");
    wait(&api, "api", "gone", |o| o.is_none()).await;
    assert_eq!(server.client(&id).await.expect("still there"), before, "team A's client is untouched");
    assert_eq!(server.token(&id, &value).await, 200, "team A's secret still works");
}
