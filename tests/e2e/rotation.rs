//! Rotation policy: scheduled rotation (`spec.rotation.every`), and the two strategies under
//! a consumer's load; on the emulator's Wacht API, on Ory Hydra and on Keycloak.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use libtest_mimic::Trial;
use oauth_operator::api::{OAuthApp, OAuthClient, PreviousClient};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{
    Env,
    env::{RESYNC, trial},
    operator::USER,
    resources::*,
    samples::sample_with,
};

pub fn trials() -> Vec<Trial> {
    vec![
        trial("rotation::every_minute_rotates_three_times_in_three_and_a_half", every_minute_rotates_three_times),
        trial("rotation::new_client_fails_no_request_in_place_does", new_client_fails_no_request_in_place_does),
        trial(
            "rotation::hydra_new_client_fails_no_request_in_place_does",
            hydra_new_client_fails_no_request_in_place_does,
        ),
        trial(
            "rotation::keycloak_new_client_fails_no_request_in_place_does",
            keycloak_new_client_fails_no_request_in_place_does,
        ),
    ]
}

/// Where a consumer asks for tokens.
#[derive(Clone, Copy, Debug)]
enum Issuer {
    Emulator,
    Hydra,
    Keycloak,
}

impl Issuer {
    async fn token(self, id: &str, secret: &str) -> u16 {
        match self {
            Issuer::Emulator => token_status(id, secret).await,
            Issuer::Hydra => Env::get().hydra.token_status(id, secret, true).await,
            Issuer::Keycloak => Env::get().keycloak.token_status(id, secret, true).await,
        }
    }
}

/// A workload as the kubelet serves it a mounted Secret: it re-reads the Secret every 5 s and
/// asks for a token every 200 ms with what it read last.
struct Consumer {
    stop: Arc<AtomicBool>,
    reads: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<(u64, u64)>,
}

impl Consumer {
    fn start(client: &Client, ns: &str, secret: &str, issuer: Issuer) -> Consumer {
        let (stop, reads) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (client, ns, secret) = (client.clone(), ns.to_string(), secret.to_string());
        let (stopped, read) = (stop.clone(), reads.clone());
        let task = tokio::spawn(async move {
            let (mut ok, mut failed) = (0, 0);
            let mut creds = credentials(&client, &ns, &secret).await;
            let mut read_at = Instant::now();
            read.fetch_add(1, Ordering::SeqCst);
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            while !stopped.load(Ordering::SeqCst) {
                tick.tick().await;
                if read_at.elapsed() >= Duration::from_secs(5) {
                    creds = credentials(&client, &ns, &secret).await;
                    read_at = Instant::now();
                    read.fetch_add(1, Ordering::SeqCst);
                }
                match issuer.token(&creds.0, &creds.1).await {
                    200 => ok += 1,
                    _ => failed += 1,
                }
            }
            (ok, failed)
        });
        Consumer { stop, reads, task }
    }

    /// Waits until the consumer has read the Secret again since now.
    async fn picks_up(&self) {
        let read = self.reads.load(Ordering::SeqCst);
        until("the consumer re-reads the Secret", async || self.reads.load(Ordering::SeqCst) > read).await;
    }

    /// Successful and failed token requests.
    async fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("consumer")
    }
}

async fn new_client_fails_no_request_in_place_does(client: Client) {
    let ns = namespace(&client, "e2e-rotation-strategies").await;
    apply::<OAuthApp>(&client, &ns, app_doc("app", &ns, json!({}))).await;
    let new_client = json!({"rotation": {"strategy": "NewClient", "overlap": "20s"}});
    let docs = [client_doc("nc", "app", new_client), client_doc("ip", "app", json!({}))];
    let secrets = ["nc-oauth-client", "ip-oauth-client"];
    let replaced = strategies_under_load(&client, &ns, docs, secrets, Issuer::Emulator).await;
    let slug = ns.clone();
    for id in &replaced[..3] {
        assert!(!backend_client(&slug, id).await.active, "retired: {id}");
    }
    assert!(backend_client(&slug, &replaced[3]).await.active, "the current client stays");
}

async fn hydra_new_client_fails_no_request_in_place_does(client: Client) {
    let ns = namespace(&client, "e2e-rotation-hydra-strategies").await;
    let doc = |name: &str, rotation: Value| {
        let spec = json!({"spec": {"rotation": rotation, "secretTemplate": {"name": format!("{name}-secret")}}});
        sample_with("oauthclient-hydra.yaml", name, spec)
    };
    let docs = [doc("hnc", json!({"strategy": "NewClient", "overlap": "20s"})), doc("hip", json!({}))];
    let replaced = strategies_under_load(&client, &ns, docs, ["hnc-secret", "hip-secret"], Issuer::Hydra).await;
    let hydra = &Env::get().hydra;
    for id in &replaced[..3] {
        assert!(hydra.client(id).await.is_none(), "retired (deleted in Hydra): {id}");
    }
    assert!(hydra.client(&replaced[3]).await.is_some(), "the current client stays");
    assert!(replaced[1].ends_with("-r1") && replaced[3].ends_with("-r3"), "chosen ids: {replaced:?}");
    // Settled on its third client: two passes later (each reads the Secret) Hydra's copy and
    // the status are unchanged.
    let updated_at = async || hydra.client(&replaced[3]).await.expect("in Hydra")["updated_at"].clone();
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), &ns);
    let (settled, version) = (updated_at().await, api.get("hnc").await.expect("get").metadata.resource_version);
    let reads = || Env::get().cp.requests_by(USER, "get", "secrets", "hnc-secret");
    let start = reads();
    until_within("two more passes", RESYNC * 6, async || reads() >= start + 2).await;
    assert_eq!(updated_at().await, settled, "no write in Hydra at steady state");
    assert_eq!(api.get("hnc").await.expect("get").metadata.resource_version, version, "no status write");
}

async fn keycloak_new_client_fails_no_request_in_place_does(client: Client) {
    let ns = namespace(&client, "e2e-rotation-keycloak-strategies").await;
    let doc = |name: &str, rotation: Value| {
        let spec = json!({"spec": {"rotation": rotation, "secretTemplate": {"name": format!("{name}-secret")}}});
        sample_with("oauthclient-keycloak.yaml", name, spec)
    };
    let docs = [doc("knc", json!({"strategy": "NewClient", "overlap": "20s"})), doc("kip", json!({}))];
    let replaced = strategies_under_load(&client, &ns, docs, ["knc-secret", "kip-secret"], Issuer::Keycloak).await;
    let keycloak = &Env::get().keycloak;
    for id in &replaced[..3] {
        assert!(keycloak.client(id).await.is_none(), "retired (deleted in Keycloak): {id}");
    }
    assert!(keycloak.client(&replaced[3]).await.is_some(), "the current client stays");
    assert!(replaced[1].ends_with("-r1") && replaced[3].ends_with("-r3"), "chosen ids: {replaced:?}");
    // Settled on its third client: two passes later Keycloak's admin events show no write.
    let internal = oauth_operator::backend::keycloak::internal_id(&replaced[3]);
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), &ns);
    let (settled, version) =
        (keycloak.writes_to(&internal).await, api.get("knc").await.expect("get").metadata.resource_version);
    let reads = || Env::get().cp.requests_by(USER, "get", "secrets", "knc-secret");
    let start = reads();
    until_within("two more passes", RESYNC * 6, async || reads() >= start + 2).await;
    assert_eq!(keycloak.writes_to(&internal).await, settled, "no write in Keycloak at steady state");
    assert_eq!(api.get("knc").await.expect("get").metadata.resource_version, version, "no status write");
}

/// Applies a `NewClient` and an `InPlace` client, starts a consumer of each, rotates both three
/// times (each after the consumers picked up the last), and checks that the first consumer
/// never failed and the second did, and that the previous client is refused once it retired.
/// Returns the backend ids the NewClient resource went through.
async fn strategies_under_load(
    client: &Client,
    ns: &str,
    docs: [Value; 2],
    secrets: [&str; 2],
    issuer: Issuer,
) -> Vec<String> {
    let names: Vec<String> = docs.iter().map(|d| d["metadata"]["name"].as_str().expect("name").to_string()).collect();
    for doc in docs {
        apply::<OAuthClient>(client, ns, doc).await;
    }
    let first = client_ready(client, ns, &names[0]).await;
    client_ready(client, ns, &names[1]).await;
    let mut ids = vec![first.status.and_then(|s| s.backend_id).expect("backend id")];
    let consumers = [Consumer::start(client, ns, secrets[0], issuer), Consumer::start(client, ns, secrets[1], issuer)];
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), ns);
    let mut last_replaced = None;
    for round in 1..=3 {
        let value = format!("round-{round}");
        let patch = json!({"metadata": {"annotations": {"oauth-operator.dev/rotate": value}}});
        let previous_creds = credentials(client, ns, secrets[0]).await;
        for name in &names {
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("annotate");
        }
        let handled =
            |c: &OAuthClient| c.status.as_ref().and_then(|s| s.last_handled_rotate_request.as_ref()) == Some(&value);
        until("both rotations handled", async || {
            let (a, b) = (api.get(&names[0]).await.expect("get"), api.get(&names[1]).await.expect("get"));
            handled(&a) && handled(&b)
        })
        .await;
        let status = api.get(&names[0]).await.expect("get").status.expect("status");
        let previous: PreviousClient = status.previous_client.clone().expect("the previous client is shown");
        assert_eq!(previous.backend_id, ids[round - 1], "the client this rotation replaced");
        assert!(!previous.retired, "it keeps working during the overlap");
        let rotated_at: k8s_openapi::jiff::Timestamp =
            status.last_rotated_at.expect("rotated at").parse().expect("time");
        let retires_at: k8s_openapi::jiff::Timestamp = previous.retires_at.parse().expect("time");
        let overlap = retires_at.duration_since(rotated_at).as_secs();
        assert!((19..=21).contains(&overlap), "retires 20 s after the rotation: {overlap}");
        ids.push(status.backend_id.expect("backend id"));
        assert_ne!(ids[round], ids[round - 1], "a new client");
        for consumer in &consumers {
            consumer.picks_up().await;
        }
        last_replaced = Some((previous, previous_creds));
    }
    let [new_client, in_place] = consumers;
    let (nc_ok, nc_failed) = new_client.stop().await;
    let (ip_ok, ip_failed) = in_place.stop().await;
    println!(
        "rotation strategies under load ({issuer:?}): NewClient {nc_failed} failed of {} token requests; InPlace {ip_failed} failed of {}",
        nc_ok + nc_failed,
        ip_ok + ip_failed
    );
    assert_eq!(nc_failed, 0, "NewClient: no token request fails over three rotations");
    assert!(nc_ok > 50, "the consumer made requests: {nc_ok}");
    assert!(ip_failed > 0, "InPlace: the old secret stops at once, so requests fail until the Secret is re-read");

    let (previous, (old_id, old_secret)) = last_replaced.expect("three rounds");
    assert_eq!(issuer.token(&old_id, &old_secret).await, 200, "the previous client works during its overlap");
    until_within("the previous client retires", Duration::from_secs(40), async || {
        let status = api.get(&names[0]).await.expect("get").status.expect("status");
        status.previous_client.is_some_and(|p| p.backend_id == previous.backend_id && p.retired)
    })
    .await;
    assert_eq!(issuer.token(&old_id, &old_secret).await, 401, "after the overlap the previous client id is refused");
    let (id, secret) = credentials(client, ns, secrets[0]).await;
    assert_eq!(issuer.token(&id, &secret).await, 200, "the current one works");
    ids
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
    // Rotating every minute, they are never settled: gone before the steady-state trial.
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), &ns);
    for name in ["every-web", "every-hydra"] {
        api.delete(name, &Default::default()).await.expect("delete");
        wait(&api, name, "gone", |o| o.is_none()).await;
    }
}
