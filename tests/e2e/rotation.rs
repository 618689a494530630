//! Scheduled rotation (`spec.rotation.every`): on the emulator's Wacht API and on Ory Hydra.

use std::time::Duration;

use kube::Client;
use libtest_mimic::Trial;
use oauth_operator::api::{OAuthApp, OAuthClient};
use serde_json::json;
use tokio::time::Instant;

use crate::support::{Env, env::trial, operator::USER, resources::*, samples::sample_with};

pub fn trials() -> Vec<Trial> {
    vec![trial("rotation::every_minute_rotates_three_times_in_three_and_a_half", every_minute_rotates_three_times)]
}

/// Both clients rotate every minute: over 3.5 minutes that is three rotations each, and the
/// passes between them (one every resync, 4 s) write nothing, here or in the backend.
async fn every_minute_rotates_three_times(client: Client) {
    let ns = namespace(&client, "e2e-rotation-every").await;
    let env = Env::get();
    apply::<OAuthApp>(&client, &ns, app_doc("app", &ns, json!({}))).await;
    let every = json!({"rotation": {"every": "1m"}, "secretTemplate": {"name": "every-web-secret"}});
    apply::<OAuthClient>(&client, &ns, client_doc("every-web", "app", every)).await;
    let hydra = sample_with(
        "oauthclient-hydra.yaml",
        "every-hydra",
        json!({"spec": {"rotation": {"every": "1m"}, "secretTemplate": {"name": "every-hydra-secret"}}}),
    );
    apply::<OAuthClient>(&client, &ns, hydra).await;
    let web = client_ready(&client, &ns, "every-web").await;
    client_ready(&client, &ns, "every-hydra").await;
    let start = Instant::now();
    let id = web.status.and_then(|s| s.backend_id).expect("backend id");

    let rotate_path = format!("/oauth/apps/{ns}/clients/{id}/rotate-secret");
    let rotations = async || env.emu.calls("POST", &rotate_path).await;
    let backend_writes = async || env.emu.calls_matching(|m| m != "GET", &format!("/oauth/apps/{ns}")).await;
    let writes = |verb: &str, resource: &str, name: &str| env.cp.requests_by(USER, verb, resource, name);
    let secret_writes = |name: &str| writes("patch", "secrets", name);
    // The finalizer patch and the status writes of each client.
    let client_writes = |name: &str| writes("patch", "oauthclients", name);
    let before = (
        backend_writes().await,
        secret_writes("every-web-secret"),
        secret_writes("every-hydra-secret"),
        client_writes("every-web"),
        client_writes("every-hydra"),
    );
    assert_eq!(rotations().await, 0);

    until_within("three scheduled rotations of each", Duration::from_secs(240), async || {
        rotations().await >= 3 && secret_writes("every-hydra-secret") >= before.2 + 3
    })
    .await;
    // What is asserted is a span: no fourth rotation within 3.5 minutes.
    tokio::time::sleep_until(start + Duration::from_secs(210)).await;

    assert_eq!(rotations().await, 3, "three rotations of the Wacht client in 3.5 minutes");
    assert_eq!(backend_writes().await - before.0, 3, "and no other backend write");
    assert_eq!(secret_writes("every-web-secret") - before.1, 3, "one Secret write per rotation");
    assert_eq!(secret_writes("every-hydra-secret") - before.2, 3, "three rotations of the Hydra client");
    assert_eq!(client_writes("every-web") - before.3, 3, "one status write per rotation");
    assert_eq!(client_writes("every-hydra") - before.4, 3, "one status write per rotation");

    let (hydra_id, secret) = credentials(&client, &ns, "every-hydra-secret").await;
    assert_eq!(env.hydra.token_status(&hydra_id, &secret, true).await, 200, "the rotated secret works");
    let metrics = reqwest::get(format!("http://{}/metrics", env.operator.http)).await.expect("metrics");
    let text = metrics.text().await.expect("text");
    let labels = format!(r#"{{namespace="{ns}",name="every-hydra"}}"#);
    assert!(text.contains(&format!("oauth_operator_secret_max_age_seconds{labels} 60")), "{text}");
    let age = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("oauth_operator_secret_age_seconds{labels} ")))
        .and_then(|v| v.parse::<i64>().ok())
        .expect("an age");
    assert!((0..=75).contains(&age), "the age restarts at each rotation: {age}");
}
