//! The operator end to end: its own process with the RBAC of `deploy/`, the emulator as the
//! backend, resources applied by server-side apply as a user would.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use k8s_openapi::api::{coordination::v1::Lease, core::v1::Secret};
use kube::{
    Api, Client,
    api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams},
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
    operator::{Operator, USER},
    resources::*,
};

pub fn trials() -> Vec<Trial> {
    vec![
        trial("reconcile::client_gets_a_working_secret", client_gets_a_working_secret),
        trial(
            "reconcile::redirect_edit_updates_the_backend_and_keeps_the_secret",
            redirect_edit_updates_the_backend_and_keeps_the_secret,
        ),
        trial("reconcile::backend_drift_is_repaired_on_resync", backend_drift_is_repaired_on_resync),
        trial("reconcile::rotate_annotation_rotates_once", rotate_annotation_rotates_once),
        trial("reconcile::an_oversized_rotate_request_rotates_nothing", an_oversized_rotate_request_rotates_nothing),
        trial(
            "reconcile::a_client_that_stops_using_a_secret_loses_the_key",
            a_client_that_stops_using_a_secret_loses_the_key,
        ),
        trial("reconcile::deleted_secret_is_regenerated", deleted_secret_is_regenerated),
        trial(
            "reconcile::delete_policy_deactivates_and_removes_the_secret",
            delete_policy_deactivates_and_removes_the_secret,
        ),
        trial("reconcile::orphan_policy_keeps_the_backend_client", orphan_policy_keeps_the_backend_client),
        trial("reconcile::rejected_api_key_is_reported", rejected_api_key_is_reported),
        trial("reconcile::app_domain_scopes_and_unmanaged_clients", app_domain_scopes_and_unmanaged_clients),
        trial("reconcile::inactive_client_is_deactivated", inactive_client_is_deactivated),
        trial(
            "reconcile::mapping_set_otherwise_in_the_backend_is_refused",
            mapping_set_otherwise_in_the_backend_is_refused,
        ),
        trial("reconcile::failed_secret_write_loses_nothing", failed_secret_write_loses_nothing),
        trial("reconcile::leader_hands_over_when_killed", leader_hands_over_when_killed),
        trial("reconcile::kstatus_reads_live_resources", kstatus_reads_live_resources),
        trial("reconcile::a_missing_rbac_rule_fails_cleanly", a_missing_rbac_rule_fails_cleanly),
        trial("reconcile::a_restart_writes_nothing", a_restart_writes_nothing),
        trial("reconcile::an_upgrade_writes_nothing_to_the_backend", an_upgrade_writes_nothing_to_the_backend),
    ]
}

async fn client_gets_a_working_secret(client: Client) {
    let ns = "e2e-working-secret";
    let started = Instant::now();
    let web = app_and_client(&client, ns, json!({})).await;
    let (id, secret) = credentials(&client, ns, "web-oauth-client").await;
    println!("e2e: apply to a Ready OAuthClient with its Secret: {:?}", started.elapsed());
    let status = web.status.expect("status");
    assert_eq!(status.client_id.as_deref(), Some(id.as_str()));
    assert_eq!(status.secret_name.as_deref(), Some("web-oauth-client"));
    assert_eq!(token_status(&id, &secret).await, 200, "the issued secret authenticates");
    assert!(!serde_json::to_string(&status).expect("json").contains(&secret), "no secret in the status");

    let env = Env::get();
    for kind in ["oauthapp/app", "oauthclient/web"] {
        let out = Command::new(env.cp.bin("kubectl"))
            .args([
                "--kubeconfig",
                env.cp.kubeconfig.to_str().expect("utf-8"),
                "-n",
                ns,
                "wait",
                "--for=condition=Ready",
                "--timeout=30s",
                kind,
            ])
            .output()
            .expect("run kubectl");
        assert!(out.status.success(), "kubectl wait {kind}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

async fn redirect_edit_updates_the_backend_and_keeps_the_secret(client: Client) {
    let ns = "e2e-redirect-edit";
    let web = app_and_client(&client, ns, json!({})).await;
    let before = credentials(&client, ns, "web-oauth-client").await;
    let uris = ["https://app.example.com/new-callback"];
    apply::<OAuthClient>(&client, ns, client_doc("web", "app", json!({"redirectUris": uris}))).await;
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), ns);
    let generation = web.metadata.generation.expect("generation") + 1;
    wait(&api, "web", "reconciled at the new generation", |o| {
        o.and_then(|c| c.status.as_ref()).and_then(|s| s.observed_generation) == Some(generation)
    })
    .await;
    let id = web.status.expect("status").backend_id.expect("backend id");
    assert_eq!(backend_client(ns, &id).await.settings.redirect_uris, uris);
    assert_eq!(credentials(&client, ns, "web-oauth-client").await, before, "the secret is unchanged");

    // A new Secret name: the credentials move there, the old Secret goes.
    let spec = json!({"redirectUris": uris, "secretTemplate": {"name": "web-credentials"}});
    apply::<OAuthClient>(&client, ns, client_doc("web", "app", spec)).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    wait(&secrets, "web-oauth-client", "deleted", |s| s.is_none()).await;
    let (moved_id, moved) = credentials(&client, ns, "web-credentials").await;
    assert_eq!(moved_id, before.0);
    assert_eq!(Env::get().emu.token_status(&moved_id, &moved, true, uris[0]).await, 200);
}

async fn backend_drift_is_repaired_on_resync(client: Client) {
    let ns = "e2e-drift";
    let web = app_and_client(&client, ns, json!({})).await;
    let id = web.status.expect("status").backend_id.expect("backend id");
    let app = AppKey { deployment: None, slug: ns.into() };
    let mut drifted = backend_client(ns, &id).await.settings;
    drifted.redirect_uris = vec!["https://evil.example.com/cb".into()];
    backend().update_client(&app, &id, &drifted).await.expect("edit in the backend");
    until("drift repaired", async || backend_client(ns, &id).await.settings.redirect_uris == [REDIRECT]).await;
}

async fn rotate_annotation_rotates_once(client: Client) {
    let ns = "e2e-rotate";
    let web = app_and_client(&client, ns, json!({})).await;
    let (id, old) = credentials(&client, ns, "web-oauth-client").await;
    let backend_id = web.status.as_ref().and_then(|s| s.backend_id.clone()).expect("backend id");
    let rotate_path = format!("/oauth/apps/{ns}/clients/{backend_id}/rotate-secret");
    let rotations = || async { Env::get().emu.calls("POST", &rotate_path).await };
    let before = rotations().await;
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), ns);
    let annotate = |value: &str| json!({"metadata": {"annotations": {"oauth-operator.dev/rotate": value}}});
    api.patch("web", &PatchParams::default(), &Patch::Merge(annotate("2026-11-24"))).await.expect("annotate");
    wait(&api, "web", "rotated", |o| {
        o.and_then(|c| c.status.as_ref()).and_then(|s| s.last_handled_rotate_request.as_deref()) == Some("2026-11-24")
    })
    .await;
    let (same_id, new) = credentials(&client, ns, "web-oauth-client").await;
    assert_eq!(same_id, id);
    assert_ne!(new, old);
    assert_eq!(token_status(&id, &new).await, 200, "the new secret works");
    assert_eq!(token_status(&id, &old).await, 401, "the old secret no longer works");
    assert_eq!(rotations().await, before + 1, "exactly one backend rotation");

    // The same value again, and a later pass: nothing more.
    let env = Env::get();
    let secret_reads = || env.cp.requests_by(USER, "get", "secrets", "web-oauth-client");
    let reads = secret_reads();
    api.patch("web", &PatchParams::default(), &Patch::Merge(annotate("2026-11-24"))).await.expect("annotate");
    until("two further passes", async || secret_reads() >= reads + 2).await;
    assert_eq!(rotations().await, before + 1, "the handled value does not rotate again");
    assert_eq!(credentials(&client, ns, "web-oauth-client").await.1, new);
}

async fn deleted_secret_is_regenerated(client: Client) {
    let ns = "e2e-regenerate";
    app_and_client(&client, ns, json!({})).await;
    let (id, old) = credentials(&client, ns, "web-oauth-client").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    secrets.delete("web-oauth-client", &DeleteParams::default()).await.expect("delete the Secret");
    wait(&secrets, "web-oauth-client", "regenerated", |s| {
        s.is_some_and(|s| {
            s.data.as_ref().is_some_and(|d| d.get("client_secret").is_some_and(|v| v.0 != old.as_bytes()))
        })
    })
    .await;
    let (same_id, new) = credentials(&client, ns, "web-oauth-client").await;
    assert_eq!(same_id, id, "the same backend client");
    assert_eq!(token_status(&id, &new).await, 200);
    assert_eq!(token_status(&id, &old).await, 401);

    // An edited Secret is regenerated too.
    let edit = json!({"stringData": {"client_secret": "tampered"}});
    secrets.patch("web-oauth-client", &PatchParams::default(), &Patch::Merge(edit)).await.expect("edit");
    wait(&secrets, "web-oauth-client", "repaired", |s| {
        s.is_some_and(|s| {
            s.data
                .as_ref()
                .is_some_and(|d| d.get("client_secret").is_some_and(|v| v.0 != b"tampered" && v.0 != new.as_bytes()))
        })
    })
    .await;
    let (_, repaired) = credentials(&client, ns, "web-oauth-client").await;
    assert_eq!(token_status(&id, &repaired).await, 200);
}

async fn delete_policy_deactivates_and_removes_the_secret(client: Client) {
    let ns = "e2e-delete";
    let web = app_and_client(&client, ns, json!({})).await;
    let id = web.status.expect("status").backend_id.expect("backend id");
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), ns);
    api.delete("web", &DeleteParams::default()).await.expect("delete");
    wait(&api, "web", "gone", |o| o.is_none()).await;
    assert!(!backend_client(ns, &id).await.active, "deactivated in the backend");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    assert!(secrets.get_opt("web-oauth-client").await.expect("get").is_none(), "the Secret is gone");
}

async fn orphan_policy_keeps_the_backend_client(client: Client) {
    let ns = "e2e-orphan";
    let web = app_and_client(&client, ns, json!({"deletionPolicy": "Orphan"})).await;
    let id = web.status.expect("status").backend_id.expect("backend id");
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), ns);
    api.delete("web", &DeleteParams::default()).await.expect("delete");
    wait(&api, "web", "gone", |o| o.is_none()).await;
    assert!(backend_client(ns, &id).await.active, "kept active in the backend");
}

async fn rejected_api_key_is_reported(client: Client) {
    let ns = namespace(&client, "e2e-wrong-key").await;
    apply::<OAuthApp>(&client, &ns, app_doc("app", &ns, json!({"backend": "wrong-key"}))).await;
    let api: Api<OAuthApp> = Api::namespaced(client.clone(), &ns);
    let app = wait(&api, "app", "reported", |o| {
        o.and_then(|a| a.status.as_ref())
            .is_some_and(|s| s.conditions.iter().any(|c| c.reason == "BackendCredentialsRejected"))
    })
    .await
    .expect("app");
    let ready = app.status.expect("status").conditions.into_iter().find(|c| c.type_ == "Ready").expect("Ready");
    assert_eq!(ready.status, "False");
    assert!(ready.message.contains("backend credentials"), "{}", ready.message);
}

async fn app_domain_scopes_and_unmanaged_clients(client: Client) {
    let ns = namespace(&client, "e2e-app").await;
    let spec = json!({"fqdn": "auth.e2e-app.example.com", "verifyDomain": true,
        "scopes": [{"name": "mcp:invoke", "displayName": "Invoke", "mapping": {"category": "workspace", "workspacePermission": "ws:invoke"}},
                   {"name": "old", "archived": true}]});
    apply::<OAuthApp>(&client, &ns, app_doc("app", &ns, spec)).await;
    let api: Api<OAuthApp> = Api::namespaced(client.clone(), &ns);
    let condition = |o: Option<&OAuthApp>, status: &str| {
        o.and_then(|a| a.status.as_ref())
            .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "DomainVerified" && c.status == status))
    };
    let pending = wait(&api, "app", "DomainVerified=False", |o| condition(o, "False")).await.expect("app");
    assert!(pending.status.expect("status").cname_target.is_some_and(|t| !t.is_empty()));
    let key = AppKey { deployment: None, slug: ns.clone() };
    let apps = backend().list_apps(None).await.expect("list apps");
    let app = apps.iter().find(|a| a.slug == ns).expect("backend app");
    assert_eq!(app.scopes[0].display_name, "Invoke");
    assert_eq!(app.scopes[0].mapping, Some(oauth_operator::backend::ScopeMapping::Workspace("ws:invoke".into())));
    assert!(app.scopes[1].archived);

    Env::get().emu.verify_domain("auth.e2e-app.example.com").await;
    wait(&api, "app", "DomainVerified=True", |o| condition(o, "True")).await;

    // A client created behind the operator's back is counted.
    let settings = oauth_operator::backend::ClientSettings {
        client_auth_method: "none".into(),
        grant_types: vec!["authorization_code".into()],
        redirect_uris: vec![REDIRECT.into()],
        ..Default::default()
    };
    backend().create_client(&key, &settings).await.expect("create behind the operator's back");
    wait(&api, "app", "counting the unmanaged client", |o| {
        o.and_then(|a| a.status.as_ref()).and_then(|s| s.unmanaged_clients) == Some(1)
    })
    .await;
}

async fn inactive_client_is_deactivated(client: Client) {
    let ns = "e2e-inactive";
    let web = app_and_client(&client, ns, json!({})).await;
    let id = web.status.expect("status").backend_id.expect("backend id");
    apply::<OAuthClient>(&client, ns, client_doc("web", "app", json!({"active": false}))).await;
    until("deactivated", async || !backend_client(ns, &id).await.active).await;
    // Back to active: the backend cannot reactivate, so a new client with new credentials.
    apply::<OAuthClient>(&client, ns, client_doc("web", "app", json!({"active": true}))).await;
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), ns);
    let again = wait(&api, "web", "recreated", |o| {
        o.and_then(|c| c.status.as_ref()).is_some_and(|s| s.backend_id.as_deref().is_some_and(|b| b != id))
    })
    .await
    .expect("client");
    let (client_id, secret) = credentials(&client, ns, "web-oauth-client").await;
    assert_eq!(again.status.and_then(|s| s.client_id), Some(client_id.clone()));
    assert_eq!(token_status(&client_id, &secret).await, 200);
}

async fn mapping_set_otherwise_in_the_backend_is_refused(client: Client) {
    let ns = namespace(&client, "e2e-mapping").await;
    // Someone mapped the scope in the backend's dashboard first.
    let scope = |mapping| oauth_operator::backend::Scope {
        name: "mcp:invoke".into(),
        display_name: "mcp:invoke".into(),
        description: "Allows mcp:invoke access".into(),
        archived: false,
        mapping,
    };
    let dashboard = oauth_operator::backend::NewApp {
        slug: ns.clone(),
        name: "Dashboard".into(),
        scopes: vec![scope(Some(oauth_operator::backend::ScopeMapping::Workspace("ws:admin".into())))],
        ..Default::default()
    };
    backend().create_app(None, &dashboard).await.expect("create in the backend");
    // Made by hand, so the platform's: it lets this namespace adopt it (tests/e2e/adoption.rs).
    crate::adoption::allow_adoption(&client, &ns).await;
    let spec = json!({"scopes": [{"name": "mcp:invoke", "mapping": {"category": "workspace", "workspacePermission": "ws:invoke"}}]});
    apply::<OAuthApp>(&client, &ns, app_doc("app", &ns, spec)).await;
    let api: Api<OAuthApp> = Api::namespaced(client.clone(), &ns);
    let app = wait(&api, "app", "refused", |o| {
        o.and_then(|a| a.status.as_ref())
            .is_some_and(|s| s.conditions.iter().any(|c| c.reason == "ScopeMappingImmutable"))
    })
    .await
    .expect("app");
    let ready = app.status.expect("status").conditions.into_iter().find(|c| c.type_ == "Ready").expect("Ready");
    assert_eq!(ready.status, "False");
    assert!(ready.message.contains("mcp:invoke") && ready.message.contains("ws:admin"), "{}", ready.message);
}

/// A Secret write that fails after the backend issued a secret (here: an admission policy that
/// denies Secrets in the namespace) loses nothing: once writes work again, the kept credentials
/// are written, with no second client and no extra rotation.
async fn failed_secret_write_loses_nothing(client: Client) {
    let ns = namespace(&client, "e2e-secret-write-fails").await;
    let block = BlockSecrets::install(&client, &ns).await;
    apply::<OAuthApp>(&client, &ns, app_doc("app", &ns, json!({}))).await;
    app_ready(&client, &ns, "app").await;
    apply::<OAuthClient>(&client, &ns, client_doc("web", "app", json!({}))).await;
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), &ns);
    let failing = wait(&api, "web", "failing on the Secret", |o| {
        o.and_then(|c| c.status.as_ref())
            .is_some_and(|s| s.backend_id.is_some() && s.conditions.iter().any(|c| c.reason == "KubernetesError"))
    })
    .await
    .expect("client");
    block.lift(&client).await;
    let web = client_ready(&client, &ns, "web").await;
    let (id, secret) = credentials(&client, &ns, "web-oauth-client").await;
    assert_eq!(token_status(&id, &secret).await, 200, "the kept secret works");
    let backend_id = failing.status.and_then(|s| s.backend_id).expect("backend id");
    assert_eq!(web.status.and_then(|s| s.backend_id).as_ref(), Some(&backend_id), "same client");
    let emu = &Env::get().emu;
    assert_eq!(emu.calls("POST", &format!("/oauth/apps/{ns}/clients")).await, 1, "one backend client");
    let rotate = format!("/oauth/apps/{ns}/clients/{backend_id}/rotate-secret");
    assert_eq!(emu.calls("POST", &rotate).await, 0, "no rotation needed");
}

/// A ValidatingAdmissionPolicy that denies writes of Secrets in one namespace.
struct BlockSecrets {
    name: String,
}

impl BlockSecrets {
    async fn install(client: &Client, ns: &str) -> BlockSecrets {
        let name = format!("block-secrets-{ns}");
        let policy = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {"failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"], "resources": ["secrets"]}]},
                "validations": [{"expression": "false", "message": "Secrets are blocked in this test namespace"}]}});
        let binding = json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {"policyName": name, "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}}});
        for (kind, doc) in [("validatingadmissionpolicies", policy), ("validatingadmissionpolicybindings", binding)] {
            let resource = ApiResource {
                group: "admissionregistration.k8s.io".into(),
                version: "v1".into(),
                api_version: "admissionregistration.k8s.io/v1".into(),
                kind: doc["kind"].as_str().expect("kind").into(),
                plural: kind.into(),
            };
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
            api.patch(&name, &PatchParams::apply("e2e-user").force(), &Patch::Apply(&doc)).await.expect("policy");
        }
        // Policies take effect asynchronously: wait until a Secret is really refused.
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        let probe: Secret = serde_json::from_value(json!({"metadata": {"name": "probe"}})).expect("secret");
        let dry_run = PostParams { dry_run: true, ..Default::default() };
        until("the admission policy takes effect", async || secrets.create(&dry_run, &probe).await.is_err()).await;
        BlockSecrets { name }
    }

    async fn lift(self, client: &Client) {
        let resource = ApiResource {
            group: "admissionregistration.k8s.io".into(),
            version: "v1".into(),
            api_version: "admissionregistration.k8s.io/v1".into(),
            kind: "ValidatingAdmissionPolicyBinding".into(),
            plural: "validatingadmissionpolicybindings".into(),
        };
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        api.delete(&self.name, &DeleteParams::default()).await.expect("delete the binding");
    }
}

/// Two operators on one Lease: the second waits while the first leads, and takes over within
/// the Lease duration once the first is killed.
async fn leader_hands_over_when_killed(client: Client) {
    let env = Env::get();
    let args =
        ["--leader-elect", "--lease-name", "handover-test", "--lease-duration", "3s", "--selector", "e2e=nobody"];
    let logged = |op: &Operator, text: &str| std::fs::read_to_string(&op.log).unwrap_or_default().contains(text);
    let mut first = Operator::start(&env.cp, &client, &env.emu, &args).await;
    until("the first operator leading", async || logged(&first, "controllers running")).await;
    let second = Operator::start(&env.cp, &client, &env.emu, &args).await;
    until("the second operator waiting", async || logged(&second, "waiting to lead")).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "oauth-operator-system");
    let holder = || async { leases.get("handover-test").await.expect("lease").spec.and_then(|s| s.holder_identity) };
    assert_eq!(holder().await.as_deref(), Some(first.name.as_str()));
    assert!(second.is_ready().await, "a standby is ready (rollouts must not stall)");
    assert!(!logged(&second, "controllers running"), "the standby does not reconcile");

    first.kill();
    let killed = Instant::now();
    until("the takeover", async || logged(&second, "controllers running")).await;
    let took = killed.elapsed();
    assert_eq!(holder().await.as_deref(), Some(second.name.as_str()));
    assert!(took < Duration::from_secs(9), "handover took {took:?} with a 3 s Lease");
    println!("e2e: leader handover after a kill: {took:?} (Lease 3 s)");
}

/// Flux reads health through kstatus: the kstatus library (built from Go modules) computes
/// Current for a Ready resource, InProgress for one still working, Failed for a stalled one.
async fn kstatus_reads_live_resources(client: Client) {
    let env = Env::get();
    let ns = "e2e-kstatus";
    app_and_client(&client, ns, json!({})).await;
    apply::<OAuthClient>(&client, ns, client_doc("waiting", "no-such-app", json!({}))).await;
    apply::<OAuthApp>(&client, ns, app_doc("stalled", "e2e-kstatus-stalled", json!({"backend": "wrong-key"}))).await;
    let reason = |api: Api<DynamicObject>, name: &'static str, condition: &'static str| async move {
        wait(&api, name, condition, |o| {
            o.and_then(|o| o.data["status"]["conditions"].as_array().cloned())
                .is_some_and(|cs| cs.iter().any(|c| c["type"] == condition && c["status"] == "True"))
        })
        .await;
    };
    reason(dynamic::<OAuthClient>(&client, ns), "waiting", "Reconciling").await;
    reason(dynamic::<OAuthApp>(&client, ns), "stalled", "Stalled").await;

    for (resource, name, want) in [
        ("oauthclients", "web", "Current"),
        ("oauthapps", "app", "Current"),
        ("oauthclients", "waiting", "InProgress"),
        ("oauthapps", "stalled", "Failed"),
    ] {
        assert_eq!(crate::support::gitops::kstatus(&env.cp, resource, ns, name), want, "{resource}/{name}");
    }
}

/// The RBAC of `deploy/operator/rbac.yaml` is what the operator needs: without its Secrets rule, an
/// operator reports the missing permission in the resource's status and keeps running.
async fn a_missing_rbac_rule_fails_cleanly(client: Client) {
    let env = Env::get();
    crate::support::operator::own_service_account(&client, "oauth-operator-reduced", |rules| {
        let before = rules.len();
        rules.retain(|r| !r["resources"].as_array().is_some_and(|rs| rs.iter().any(|x| x == "secrets")));
        assert_eq!(rules.len(), before - 1, "deploy/operator/rbac.yaml has one Secrets rule");
    })
    .await;
    let args = ["--selector", "e2e=reduced", "--resync", "4s"];
    let mut reduced = Operator::launch_as(&env.cp, &client, &env.emu, "oauth-operator-reduced", &args).await;
    reduced.wait_ready().await;

    let ns = namespace(&client, "e2e-reduced-rbac").await;
    apply_in_shard::<OAuthApp>(&client, &ns, app_doc("app", &ns, json!({})), "reduced").await;
    apply_in_shard::<OAuthClient>(&client, &ns, client_doc("web", "app", json!({})), "reduced").await;
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), &ns);
    let web = wait(&api, "web", "reporting the missing permission", |o| {
        o.and_then(|c| c.status.as_ref()).is_some_and(|s| s.conditions.iter().any(|c| c.reason == "KubernetesError"))
    })
    .await
    .expect("client");
    let ready = web.status.expect("status").conditions.into_iter().find(|c| c.type_ == "Ready").expect("Ready");
    assert!(ready.message.contains("forbidden") && ready.message.contains("secrets"), "{}", ready.message);
    assert!(reduced.is_ready().await, "the operator keeps running");
    reduced.kill();
}

/// A new process (an upgrade, a failover) passes every settled resource again and writes
/// nothing: no status, no Secret, no finalizer (the API server's audit log). Both processes
/// resync rarely, so the first never passes a resource twice.
async fn a_restart_writes_nothing(client: Client) {
    let env = Env::get();
    let account = "oauth-operator-restart";
    crate::support::operator::own_service_account(&client, account, |_| {}).await;
    let args = ["--selector", "e2e=restart", "--resync", "10m"];
    let mut first = Operator::launch_as(&env.cp, &client, &env.emu, account, &args).await;
    first.wait_ready().await;
    let ns = namespace(&client, "e2e-restart").await;
    apply_in_shard::<OAuthApp>(&client, &ns, app_doc("app", &ns, json!({})), "restart").await;
    let names: Vec<String> = (0..10).map(|i| format!("web-{i}")).collect();
    for name in &names {
        apply_in_shard::<OAuthClient>(&client, &ns, client_doc(name, "app", json!({})), "restart").await;
    }
    for name in &names {
        client_ready(&client, &ns, name).await;
    }
    first.kill();

    let user = format!("system:serviceaccount:{}:{account}", crate::support::operator::NAMESPACE);
    let reads = |name: &str| env.cp.requests_by(&user, "get", "secrets", &format!("{name}-oauth-client"));
    let (writes, before) = (env.cp.writes_by(&user).len(), names.iter().map(|n| reads(n)).collect::<Vec<_>>());
    let mut second = Operator::launch_as(&env.cp, &client, &env.emu, account, &args).await;
    second.wait_ready().await;
    until("the new process passed every client", async || names.iter().zip(&before).all(|(n, b)| reads(n) > *b)).await;
    let new = env.cp.writes_by(&user)[writes..].to_vec();
    assert!(new.is_empty(), "writes of the new process: {new:?}");
    second.kill();
}

/// A rotate value too long to record (the Secret's annotations take 256 KiB in all) is refused
/// before any backend call: the Secret keeps a working secret, nothing is rotated.
async fn an_oversized_rotate_request_rotates_nothing(client: Client) {
    let ns = "e2e-rotate-oversized";
    let web = app_and_client(&client, ns, json!({})).await;
    let (id, secret) = credentials(&client, ns, "web-oauth-client").await;
    let backend_id = web.status.as_ref().and_then(|s| s.backend_id.clone()).expect("backend id");
    let rotate_path = format!("/oauth/apps/{ns}/clients/{backend_id}/rotate-secret");
    let before = Env::get().emu.calls("POST", &rotate_path).await;
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), ns);
    let annotate = |value: String| json!({"metadata": {"annotations": {"oauth-operator.dev/rotate": value}}});
    api.patch("web", &PatchParams::default(), &Patch::Merge(annotate("x".repeat(262_000)))).await.expect("annotate");
    let message = not_ready::<OAuthClient>(&client, ns, "web", "InvalidSpec").await;
    assert!(message.contains("oauth-operator.dev/rotate") && message.contains("at most 253"), "{message}");
    assert_eq!(Env::get().emu.calls("POST", &rotate_path).await, before, "nothing rotated");
    assert_eq!(credentials(&client, ns, "web-oauth-client").await, (id.clone(), secret.clone()));
    assert_eq!(token_status(&id, &secret).await, 200, "the Secret still works");
    // A value that fits rotates once.
    api.patch("web", &PatchParams::default(), &Patch::Merge(annotate("2026-11-28".into()))).await.expect("annotate");
    wait(&api, "web", "rotated", |o| {
        o.and_then(|c| c.status.as_ref()).and_then(|s| s.last_handled_rotate_request.as_deref()) == Some("2026-11-28")
    })
    .await;
    assert_eq!(Env::get().emu.calls("POST", &rotate_path).await, before + 1);
}

/// Settled resources as release 0.1.0 stored them (`tests/fixtures/upgrade-0.1.0.yaml`: an app,
/// a client of each mode, their Secrets), with the matching objects in the backends: the
/// current operator rotates nothing, recreates nothing, makes no backend write, the Secrets keep
/// working, and every resource ends Ready.
async fn an_upgrade_writes_nothing_to_the_backend(client: Client) {
    use oauth_operator::{
        api::OAuthApp,
        backend::SecretString,
        controller::desired::{client_settings, new_app},
    };
    let env = Env::get();
    let ns = namespace(&client, "e2e-upgrade").await;
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/upgrade-0.1.0.yaml"))
        .expect("fixtures");
    let doc = |kind: &str, name: &str| -> Value {
        let docs: Vec<Value> = yaml_serde::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).expect("YAML"))
            .collect();
        docs.into_iter().find(|d| d["kind"] == kind && d["metadata"]["name"] == name).expect("a fixture")
    };
    // The backend objects the release had made for them.
    let app: OAuthApp = serde_json::from_value(doc("OAuthApp", "app")).expect("app");
    let made = backend().create_app(None, &new_app(&app.spec)).await.expect("backend app");
    let web: OAuthClient = serde_json::from_value(doc("OAuthClient", "web")).expect("web");
    let slug = AppKey { deployment: None, slug: app.spec.slug.clone() };
    let (web_client, web_creds) = backend().create_client(&slug, &client_settings(&web)).await.expect("client");
    let shop: OAuthClient = serde_json::from_value(doc("OAuthClient", "shop")).expect("shop");
    let (shop_client, shop_creds) =
        applications().create_client(&AppKey::none(), &client_settings(&shop)).await.expect("application");
    let github: OAuthClient = serde_json::from_value(doc("OAuthClient", "github")).expect("github");
    let mut settings = client_settings(&github);
    let oauth_operator::backend::Mode::Registered(registered) = &mut settings.mode else { panic!("registered") };
    registered.client_id = "gh-upgrade".into();
    registered.metadata.remove("oauth-operator.dev/owner"); // 0.1.0 recorded no owner
    let github_secret = "upgrade-upstream-secret";
    let github_client =
        mcp().register_client(&AppKey::none(), &settings, &SecretString::new(github_secret)).await.expect("mcp");
    let secret_of =
        |c: &oauth_operator::backend::Credentials| c.client_secret.as_ref().expect("a secret").expose().to_string();
    let (web_secret, shop_secret) = (secret_of(&web_creds), secret_of(&shop_creds));
    SEEN_SECRETS.lock().unwrap_or_else(|e| e.into_inner()).extend([web_secret.clone(), shop_secret.clone()]);
    let checksum = |id: &str, secret: &str| {
        let sum = ring::digest::digest(&ring::digest::SHA256, format!("{id}\0{secret}").as_bytes());
        sum.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let mut values = std::collections::BTreeMap::from([
        ("APP_ID", made.id.clone()),
        ("WEB_ID", web_client.id.clone()),
        ("WEB_CLIENT_ID", web_client.client_id.clone()),
        ("WEB_SECRET", web_secret.clone()),
        ("WEB_CHECKSUM", checksum(&web_client.client_id, &web_secret)),
        ("SHOP_ID", shop_client.id.clone()),
        ("SHOP_CLIENT_ID", shop_client.client_id.clone()),
        ("SHOP_SECRET", shop_secret.clone()),
        ("SHOP_CHECKSUM", checksum(&shop_client.client_id, &shop_secret)),
        ("GITHUB_ID", github_client.id.clone()),
        ("GITHUB_SECRET", github_secret.to_string()),
    ]);
    let fill = |doc: Value, values: &std::collections::BTreeMap<&str, String>| -> Value {
        let mut text = doc.to_string();
        for (key, value) in values {
            text = text.replace(&format!("${{{key}}}"), value);
        }
        serde_json::from_str(&text).expect("JSON")
    };
    // Loaded as the release left them: objects, then their status, then the Secrets they own.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let upstream: Secret = serde_json::from_value(fill(doc("Secret", "github-upstream"), &values)).expect("secret");
    let upstream = secrets.create(&PostParams::default(), &upstream).await.expect("upstream Secret");
    values.insert("GITHUB_UPSTREAM_VERSION", upstream.metadata.resource_version.expect("version"));
    for (kind, name) in
        [("OAuthApp", "app"), ("OAuthClient", "web"), ("OAuthClient", "shop"), ("OAuthClient", "github")]
    {
        let object = fill(doc(kind, name), &values);
        let api = match kind {
            "OAuthApp" => dynamic::<OAuthApp>(&client, &ns),
            _ => dynamic::<OAuthClient>(&client, &ns),
        };
        let created: DynamicObject = serde_json::from_value(object.clone()).expect("object");
        api.create(&PostParams::default(), &created).await.unwrap_or_else(|e| panic!("create {name}: {e}"));
        let status = json!({"status": object["status"]});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status)).await.expect("status");
        if kind == "OAuthClient" {
            let uid = api.get(name).await.expect("get").metadata.uid.expect("uid");
            values.insert(
                if name == "web" {
                    "WEB_UID"
                } else if name == "shop" {
                    "SHOP_UID"
                } else {
                    "GITHUB_UID"
                },
                uid,
            );
        }
    }
    for name in ["web-oauth-client", "shop-oauth-client"] {
        let secret: Secret = serde_json::from_value(fill(doc("Secret", name), &values)).expect("secret");
        secrets.create(&PostParams::default(), &secret).await.expect("Secret");
    }
    let writes = async || {
        let needles = ["/oauth/apps/e2e-upgrade", shop_client.id.as_str(), github_client.id.as_str()];
        let counters = env.emu.counters_by_path().await;
        let write = |key: &String| {
            key.split_once(' ').is_some_and(|(m, p)| m != "GET" && needles.iter().any(|n| p.contains(n)))
        };
        counters.iter().filter(|(k, _)| write(k)).filter_map(|(_, v)| v.as_u64()).sum::<u64>()
    };
    let before = writes().await;

    let account = "oauth-operator-upgrade";
    crate::support::operator::own_service_account(&client, account, |_| {}).await;
    let args = ["--selector", "e2e=upgrade", "--resync", "10m"];
    let mut operator = Operator::launch_as(&env.cp, &client, &env.emu, account, &args).await;
    operator.wait_ready().await;
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), &ns);
    for name in ["web", "shop", "github"] {
        // `backendRef` is new: its presence shows the new operator's pass.
        wait(&api, name, "passed by the new operator, Ready", |o| {
            ready(o, |c| c.status.as_ref().map(|s| (s.observed_generation, s.conditions.clone())))
                && o.and_then(|c| c.status.as_ref()).is_some_and(|s| s.backend_ref.is_some())
        })
        .await;
    }
    app_ready(&client, &ns, "app").await;
    assert_eq!(writes().await, before, "no backend write: nothing rotated, recreated or updated");
    assert_eq!(credentials(&client, &ns, "web-oauth-client").await, (web_client.client_id.clone(), web_secret.clone()));
    assert_eq!(token_status(&web_client.client_id, &web_secret).await, 200, "the Secret keeps working");
    let shop_redirect = "https://shop.example.com/oauth/callback";
    assert_eq!(env.emu.token_status(&shop_client.client_id, &shop_secret, true, shop_redirect).await, 200);
    assert!(env.emu.mcp_secret_matches(&github_client.id, github_secret).await, "nothing pushed over it");
    operator.kill();
}

/// A client switched to `clientAuthMethod: none`: the next credentials written leave the
/// secret key out, and the Secret then settles (a key the operator cannot remove would leave
/// a Secret that never matches its checksum, regenerated on every pass).
async fn a_client_that_stops_using_a_secret_loses_the_key(client: Client) {
    // A name of its own: the audit log counts requests by Secret name across namespaces.
    let ns = namespace(&client, "e2e-auth-none").await;
    apply::<OAuthApp>(&client, &ns, app_doc("app", &ns, json!({}))).await;
    apply::<OAuthClient>(&client, &ns, client_doc("public", "app", json!({}))).await;
    client_ready(&client, &ns, "public").await;
    let mut doc = client_doc("public", "app", json!({"clientAuthMethod": "none"}));
    doc["metadata"]["annotations"] = json!({"oauth-operator.dev/rotate": "to-none"});
    apply::<OAuthClient>(&client, &ns, doc).await;
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), &ns);
    wait(&api, "public", "rewritten for none", |o| {
        o.and_then(|c| c.status.as_ref()).is_some_and(|s| s.last_handled_rotate_request.as_deref() == Some("to-none"))
    })
    .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let data = secrets.get("public-oauth-client").await.expect("Secret").data.expect("data");
    assert!(data.contains_key("client_id") && !data.contains_key("client_secret"), "keys: {:?}", data.keys());
    let env = Env::get();
    let requests = |verb: &str| env.cp.requests_by(USER, verb, "secrets", "public-oauth-client");
    let (writes, reads) = (requests("patch"), requests("get"));
    until("two more passes", async || requests("get") >= reads + 2).await;
    assert_eq!(requests("patch"), writes, "settled: no more writes");
}
