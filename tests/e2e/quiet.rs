//! Tests that need the cluster to themselves, run one at a time after the others: a settled
//! operator writes nothing; the operator's debug log holds no secret; a spec that an older
//! CRD lets through is refused before any backend call.

use std::time::Duration;

use k8s_openapi::{
    api::core::v1::Secret, apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};
use libtest_mimic::Trial;
use oauth_operator::api::{OAuthApp, OAuthClient};
use serde_json::{Value, json};

use crate::support::{
    Env,
    env::{OPERATED, RESYNC, trial},
    operator::USER,
    resources::{until, until_within},
};

pub fn trials() -> Vec<Trial> {
    vec![
        trial("quiet::settled_resources_make_no_writes", settled_resources_make_no_writes),
        trial(
            "quiet::spec_an_older_crd_accepts_is_refused_before_the_backend",
            spec_an_older_crd_accepts_is_refused_before_the_backend,
        ),
        trial("quiet::operator_debug_log_holds_no_secret", operator_debug_log_holds_no_secret),
        trial("quiet::metrics_are_exposed", metrics_are_exposed),
        trial(
            "quiet::an_absurd_retry_after_neither_crashes_nor_parks",
            an_absurd_retry_after_neither_crashes_nor_parks,
        ),
        trial(
            "quiet::a_hostile_backend_neither_crashes_nor_exhausts_the_operator",
            a_hostile_backend_neither_crashes_nor_exhausts_the_operator,
        ),
    ]
}

/// Backend calls that change something (verify-domain only reads, the token endpoint is a
/// client's, not the operator's).
async fn backend_writes() -> u64 {
    let counters = Env::get().emu.counters().await;
    counters
        .as_object()
        .expect("counters")
        .iter()
        .filter(|(k, _)| !k.starts_with("GET ") && !k.ends_with("/verify-domain") && k.contains("/oauth/apps"))
        .map(|(_, v)| v.as_u64().unwrap_or(0))
        .sum()
}

fn selector() -> ListParams {
    ListParams::default().labels(&format!("{}={}", OPERATED.0, OPERATED.1))
}

async fn settled_resources_make_no_writes(client: Client) {
    let env = Env::get();
    // Resources of its own, so the test stands alone; the earlier tests' ones count too.
    crate::support::resources::app_and_client(&client, "e2e-steady", json!({})).await;
    crate::support::resources::credentials(&client, "e2e-steady", "web-oauth-client").await;
    let apps: Api<OAuthApp> = Api::all(client.clone());
    let clients: Api<OAuthClient> = Api::all(client.clone());
    // Every operated resource reconciled at its generation.
    until_within("resources settled", Duration::from_secs(60), async || {
        let app_list = apps.list(&selector()).await.expect("list apps");
        let client_list = clients.list(&selector()).await.expect("list clients");
        app_list.iter().all(|a| a.status.as_ref().and_then(|s| s.observed_generation) == a.metadata.generation)
            && client_list
                .iter()
                .all(|c| c.status.as_ref().and_then(|s| s.observed_generation) == c.metadata.generation)
    })
    .await;
    let ready_clients: Vec<(String, String)> = clients
        .list(&selector())
        .await
        .expect("list")
        .into_iter()
        .filter(|c| c.status.as_ref().is_some_and(|s| s.client_id.is_some()))
        .map(|c| {
            // The Secret each pass reads: a registered client's is the user's credentials Secret.
            let read = match &c.spec.registered {
                Some(r) => r.credentials_secret.name.clone(),
                None => c.status.as_ref().and_then(|s| s.secret_name.clone()).unwrap_or_default(),
            };
            (c.namespace().unwrap_or_default(), read)
        })
        .collect();
    assert!(!ready_clients.is_empty(), "the earlier tests left settled clients");

    // Apps refused before any backend call (another namespace's backend or app) list nothing.
    let refused = |a: &OAuthApp| {
        let conditions = a.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
        conditions
            .iter()
            .any(|c| c.type_ == "Ready" && ["BackendNotAllowed", "AlreadyClaimed"].contains(&c.reason.as_str()))
    };
    let app_count = apps.list(&selector()).await.expect("list").items.iter().filter(|a| !refused(a)).count() as u64;
    // One pass to let late status changes land (a count, a verified domain), then two quiet ones.
    passes(&env, &ready_clients, app_count, 1).await;
    let (k8s_writes, backend_before) = (env.cp.writes_by(USER), backend_writes().await);
    passes(&env, &ready_clients, app_count, 2).await;
    // Lease renewals are the leader's heartbeat, not writes to what the operator manages.
    let new_writes: Vec<_> =
        env.cp.writes_by(USER)[k8s_writes.len()..].iter().filter(|w| !w.contains(" leases ")).cloned().collect();
    assert!(new_writes.is_empty(), "Kubernetes writes by the operator at steady state: {new_writes:?}");
    assert_eq!(backend_writes().await - backend_before, 0, "backend writes at steady state");
    println!(
        "e2e: steady state over two resyncs: {app_count} apps, {} clients, 0 Kubernetes writes, 0 backend writes",
        ready_clients.len()
    );
}

/// Waits until every app was listed, and every client's Secret read, `n` more times: `n`
/// resync passes of everything.
async fn passes(env: &Env, clients: &[(String, String)], app_count: u64, n: u64) {
    let app_lists = || async { Env::get().emu.counters().await["GET /oauth/apps"].as_u64().unwrap_or(0) };
    let secret_reads = |name: &str| env.cp.requests_by(USER, "get", "secrets", name);
    let apps_before = app_lists().await;
    let reads_before: Vec<usize> = clients.iter().map(|(_, name)| secret_reads(name)).collect();
    until_within(&format!("{n} resync passes"), RESYNC * (3 * n as u32), async || {
        let apps_done = app_lists().await >= apps_before + n * app_count;
        apps_done
            && clients.iter().zip(&reads_before).all(|((_, name), before)| secret_reads(name) >= before + n as usize)
    })
    .await;
}

async fn operator_debug_log_holds_no_secret(client: Client) {
    let env = Env::get();
    let secrets: Api<Secret> = Api::all(client);
    let managed =
        secrets.list(&ListParams::default().labels("app.kubernetes.io/managed-by=oauth-operator")).await.expect("list");
    let mut all = crate::support::resources::SEEN_SECRETS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for secret in managed {
        if let Some(value) = secret.data.as_ref().and_then(|d| d.get("client_secret")) {
            all.push(String::from_utf8_lossy(&value.0).into_owned());
        }
    }
    assert!(!all.is_empty(), "the tests saw secrets to look for");
    let log = std::fs::read_to_string(&env.operator.log).expect("operator log");
    assert!(log.contains("\"level\":\"DEBUG\""), "the operator logged at debug level");
    for secret in &all {
        assert!(!log.contains(secret.as_str()), "an issued secret appears in the operator's log");
    }
    println!("e2e: {} issued secrets, none in {} lines of debug log", all.len(), log.lines().count());
}

/// Removes every `x-kubernetes-validations` and `enum` below `schema`.
fn strip_rules(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            map.remove("x-kubernetes-validations");
            map.remove("enum");
            map.values_mut().for_each(strip_rules);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_rules),
        _ => {}
    }
}

async fn spec_an_older_crd_accepts_is_refused_before_the_backend(client: Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = "oauthclients.oauth-operator.dev";
    let mut old = serde_json::to_value(crds.get(name).await.expect("CRD")).expect("json");
    strip_rules(&mut old["spec"]);
    let old = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": name}, "spec": old["spec"]});
    crds.patch(name, &PatchParams::apply("oauth-operator-tests").force(), &Patch::Apply(&old))
        .await
        .expect("older CRD");
    // Put the real CRD back whatever happens below.
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            let env = Env::get();
            let _ = std::thread::scope(|s| s.spawn(|| env.block_on(env.cp.install_crds())).join());
        }
    }
    let _restore = Restore;

    let ns = "e2e-older-crd";
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let _ = namespaces
        .create(&Default::default(), &serde_json::from_value(json!({"metadata": {"name": ns}})).expect("ns"))
        .await;
    let writes = backend_writes().await;
    let doc = json!({"apiVersion": "oauth-operator.dev/v1alpha1", "kind": "OAuthClient",
        "metadata": {"name": "insecure", "labels": {OPERATED.0: OPERATED.1}},
        "spec": {"appRef": {"name": "app"}, "grantTypes": ["authorization_code"], "redirectUris": ["http://app.example.com/cb"]}});
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), ns);
    let apply = PatchParams::apply("e2e-user").force();
    until("the older CRD takes the spec", async || api.patch("insecure", &apply, &Patch::Apply(&doc)).await.is_ok())
        .await;
    let mut ready = None;
    until("a Ready condition", async || {
        let obj = api.get("insecure").await.expect("get");
        ready = obj.status.and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"));
        ready.is_some()
    })
    .await;
    let ready = ready.expect("a condition");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "InvalidSpec"));
    assert!(ready.message.contains("spec.redirectUris"), "the message names the field: {}", ready.message);
    assert_eq!(backend_writes().await, writes, "no backend call for an invalid spec");

    // One the operator cannot even decode is reported too, and stops nothing.
    let mut undecodable = doc.clone();
    undecodable["metadata"]["name"] = "undecodable".into();
    undecodable["spec"]["grantTypes"] = json!(["client_credentials"]);
    let dynamic: Api<kube::api::DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &kube::api::ApiResource::erase::<OAuthClient>(&()));
    dynamic
        .patch("undecodable", &PatchParams::apply("e2e-user").force(), &Patch::Apply(&undecodable))
        .await
        .expect("apply");
    let mut ready = None;
    until("a condition on the undecodable object", async || {
        let obj = dynamic.get("undecodable").await.expect("get");
        let conditions = obj.data["status"]["conditions"].as_array().cloned().unwrap_or_default();
        ready = conditions.into_iter().find(|c| c["type"] == "Ready");
        ready.is_some()
    })
    .await;
    let c = ready.expect("a condition");
    assert_eq!(c["reason"], "InvalidSpec");
    assert!(c["message"].as_str().is_some_and(|m| m.contains("client_credentials")), "{c}");
    crate::support::resources::app_and_client(&client, "e2e-after-undecodable", json!({})).await;
    for name in ["insecure", "undecodable"] {
        dynamic.delete(name, &Default::default()).await.expect("delete");
    }
}

/// `/metrics` after the run: reconciles by kind and result, their duration, backend requests by
/// operation and status with latency, rotations, regenerations, passes in flight.
async fn metrics_are_exposed(_client: Client) {
    let env = Env::get();
    let response = reqwest::get(format!("http://{}/metrics", env.operator.http)).await.expect("scrape");
    assert!(response.status().is_success());
    let content_type = response.headers()["content-type"].to_str().expect("header").to_string();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    let text = response.text().await.expect("body");
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{series} not exposed:\n{text}"))
    };
    assert!(value(r#"oauth_operator_reconciles_total{kind="oauthclient",result="ok"}"#) > 0.0);
    assert!(value(r#"oauth_operator_reconciles_total{kind="oauthapp",result="ok"}"#) > 0.0);
    assert!(value(r#"oauth_operator_reconciles_total{kind="oauthapp",result="unauthorized"}"#) > 0.0);
    assert!(value(r#"oauth_operator_backend_requests_total{operation="create_client",status="200"}"#) > 0.0);
    assert!(value(r#"oauth_operator_backend_requests_total{operation="list_apps",status="401"}"#) > 0.0);
    assert!(value(r#"oauth_operator_backend_request_duration_seconds_count{operation="rotate_secret"}"#) > 0.0);
    assert!(value(r#"oauth_operator_reconcile_duration_seconds_count{kind="oauthclient"}"#) > 0.0);
    assert!(value("oauth_operator_secret_rotations_total") >= 1.0);
    assert!(value("oauth_operator_secret_regenerations_total") >= 1.0);
    assert!(text.contains("oauth_operator_reconciles_in_flight"), "queue gauge");
}

/// A backend answering 429 with `Retry-After: 18446744073709551615` (seconds): the wait is
/// clamped, so the operator stays up (the unclamped sum overflowed the clock and ended the
/// process) and a user's next change still gets a pass.
async fn an_absurd_retry_after_neither_crashes_nor_parks(client: Client) {
    use crate::support::resources::*;
    let env = Env::get();
    let ns = "e2e-retry-after";
    app_and_client(&client, ns, json!({})).await;
    let rotate = |value: &str| {
        let mut doc = client_doc("web", "app", json!({}));
        doc["metadata"]["annotations"] = json!({"oauth-operator.dev/rotate": value});
        doc
    };
    env.emu.set_faults(json!({"rate_limit_rate": 1.0, "retry_after_seconds": u64::MAX})).await;
    apply::<OAuthClient>(&client, ns, rotate("r1")).await;
    let message = not_ready::<OAuthClient>(&client, ns, "web", "BackendRateLimited").await;
    env.emu.set_faults(json!({})).await;
    assert!(message.contains("retry after 900s"), "the wait is clamped to 15 minutes: {message}");
    assert!(env.operator.is_ready().await, "the operator is still up");
    apply::<OAuthClient>(&client, ns, rotate("r2")).await;
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), ns);
    wait(&api, "web", "rotated for r2", |o| {
        o.and_then(|c| c.status.as_ref()).is_some_and(|s| s.last_handled_rotate_request.as_deref() == Some("r2"))
    })
    .await;
}

/// One app's backend misbehaves (an answer that never ends, text that is not JSON, a redirect
/// to another port, an answer trickling a byte a second): each time its client says what
/// happened in a sentence, the operator stays up with bounded memory, nothing reaches the
/// other port, and a client of a healthy app keeps reconciling meanwhile.
async fn a_hostile_backend_neither_crashes_nor_exhausts_the_operator(client: Client) {
    use crate::support::resources::*;
    let env = Env::get();
    let (ns, healthy) = ("e2e-hostile", "e2e-hostile-ok");
    app_and_client(&client, ns, json!({})).await;
    app_and_client(&client, healthy, json!({})).await;
    let elsewhere = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    elsewhere.set_nonblocking(true).expect("nonblocking");
    let target = format!("http://{}/steal", elsewhere.local_addr().expect("addr"));
    let rotate = async |ns: &str, value: &str| {
        let mut doc = client_doc("web", "app", json!({}));
        doc["metadata"]["annotations"] = json!({"oauth-operator.dev/rotate": value});
        apply::<OAuthClient>(&client, ns, doc).await;
    };
    let cases = [
        (json!("endless_body"), "longer than"),
        (json!("invalid_json"), "unexpected response shape"),
        (json!({"redirect_to": target}), "redirected to"),
        (json!("trickle"), "timed out"),
    ];
    for (i, (how, words)) in cases.into_iter().enumerate() {
        let faults = json!({"misbehave": how, "misbehave_path": format!("/oauth/apps/{ns}/")});
        env.emu.set_faults(faults).await;
        rotate(ns, &format!("r{i}")).await;
        if words == "timed out" {
            // Meanwhile a client of a healthy app rotates as usual.
            rotate(healthy, "r1").await;
            let api: Api<OAuthClient> = Api::namespaced(client.clone(), healthy);
            wait(&api, "web", "rotated", |o| {
                o.and_then(|c| c.status.as_ref())
                    .is_some_and(|s| s.last_handled_rotate_request.as_deref() == Some("r1"))
            })
            .await;
        }
        let api: Api<OAuthClient> = Api::namespaced(client.clone(), ns);
        let said = wait(&api, "web", words, |o| {
            o.and_then(|c| c.status.as_ref()).is_some_and(|s| {
                s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "False" && c.message.contains(words))
            })
        })
        .await
        .and_then(|c| c.status)
        .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.message)
        .unwrap_or_default();
        assert!(env.operator.is_ready().await, "the operator is up after {words:?}");
        println!("e2e: hostile backend, {words}: {said}");
    }
    env.emu.set_faults(json!({})).await;
    assert!(elsewhere.accept().is_err(), "nothing reached the port the redirect named");
    let status = std::fs::read_to_string(format!("/proc/{}/status", env.operator.pid())).expect("status");
    let peak = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap_or_default().trim().to_string();
    let kib: u64 = peak.split_whitespace().next().and_then(|n| n.parse().ok()).expect("VmHWM");
    println!("e2e: operator peak RSS after the hostile backend: {} MiB", kib / 1024);
    assert!(kib < 256 * 1024, "memory stayed bounded (the Deployment's limit is 256 MiB): {peak}");
    rotate(ns, "after").await;
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), ns);
    wait(&api, "web", "recovered", |o| {
        o.and_then(|c| c.status.as_ref()).is_some_and(|s| s.last_handled_rotate_request.as_deref() == Some("after"))
    })
    .await;
}
