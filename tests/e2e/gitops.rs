//! The GitOps path as Argo CD and Flux see it: what a sync applies at once settles without
//! ever looking broken, and what is broken says so. Health is computed by Argo CD's own Lua
//! engine from the live objects, status by Flux's kstatus library.

use kube::Client;
use libtest_mimic::Trial;
use oauth_operator::api::{OAuthApp, OAuthClient};
use serde_json::{Value, json};

use crate::support::{
    Env,
    env::trial,
    gitops::{argocd_health, kstatus},
    resources::*,
    samples::sample_with,
};

pub fn trials() -> Vec<Trial> {
    vec![trial("gitops::a_sync_is_never_degraded_and_ends_healthy", a_sync_is_never_degraded_and_ends_healthy)]
}

/// `deploy/samples/` (made unique to this test) applied in one go, as a sync applies them.
fn samples() -> Vec<(&'static str, Value)> {
    vec![
        (
            "oauthapps",
            sample_with(
                "oauthapp.yaml",
                "mcp-auth",
                json!({"spec": {"slug": "e2e-gitops", "fqdn": "gitops.example.com"}}),
            ),
        ),
        ("oauthclients", sample_with("oauthclient.yaml", "web", json!({}))),
        ("oauthclients", sample_with("oauthclient-application.yaml", "shop", json!({}))),
        (
            "oauthclients",
            sample_with(
                "oauthclient-registered.yaml",
                "github",
                json!({"spec": {"registered": {"provider": "gitops-github"}}}),
            ),
        ),
    ]
}

async fn live(client: &Client, ns: &str, resource: &str, name: &str) -> Value {
    let api = match resource {
        "oauthapps" => dynamic::<OAuthApp>(client, ns),
        _ => dynamic::<OAuthClient>(client, ns),
    };
    serde_json::to_value(api.get(name).await.expect("live object")).expect("JSON")
}

async fn a_sync_is_never_degraded_and_ends_healthy(client: Client) {
    let ns = namespace(&client, "e2e-gitops").await;
    let resources = samples();
    for (resource, doc) in &resources {
        match *resource {
            "oauthapps" => apply::<OAuthApp>(&client, &ns, doc.clone()).await,
            _ => apply::<OAuthClient>(&client, &ns, doc.clone()).await,
        }
    }
    // The registered client's Secret comes in a later wave: it waits for it meanwhile.
    let mut secret_applied = false;
    let mut seen = std::collections::BTreeSet::new();
    until("every resource Healthy, none ever Degraded", async || {
        let mut healthy = true;
        for (resource, doc) in &resources {
            let name = doc["metadata"]["name"].as_str().expect("name");
            let obj = live(&client, &ns, resource, name).await;
            let (status, message) = argocd_health(&obj);
            assert_ne!(status, "Degraded", "{resource}/{name} looked broken while settling: {message}");
            seen.insert(format!("{name}: {status}"));
            healthy &= status == "Healthy";
        }
        if !secret_applied {
            let waiting = live(&client, &ns, "oauthclients", "github").await;
            let reasons = waiting["status"]["conditions"].as_array().cloned().unwrap_or_default();
            if reasons.iter().any(|c| c["reason"] == "CredentialsSecretNotReady") {
                upstream_secret(&client, &ns, "github-oauth", "gh-gitops", "gitops-upstream-secret").await;
                secret_applied = true;
            }
        }
        healthy && secret_applied
    })
    .await;
    assert!(seen.contains("github: Progressing"), "the registered client was seen waiting: {seen:?}");
    let env = Env::get();
    for (resource, doc) in &resources {
        let name = doc["metadata"]["name"].as_str().expect("name");
        assert_eq!(kstatus(&env.cp, resource, &ns, name), "Current", "{resource}/{name}");
    }

    // A spec that cannot work until someone changes it: Degraded and Failed.
    let broken = sample_with("oauthclient-application.yaml", "broken", json!({"spec": {"backend": "no-such-backend"}}));
    apply::<OAuthClient>(&client, &ns, broken).await;
    not_ready::<OAuthClient>(&client, &ns, "broken", "BackendNotConfigured").await;
    let (status, message) = argocd_health(&live(&client, &ns, "oauthclients", "broken").await);
    assert_eq!(status, "Degraded", "{message}");
    assert!(message.contains("no-such-backend"), "{message}");
    assert_eq!(kstatus(&env.cp, "oauthclients", &ns, "broken"), "Failed");
}
