//! Managed signing keys (`spec.managedKeys`, `private_key_jwt`) on the real Ory Hydra and
//! Keycloak: a workload that re-reads its Secret every 5 s and signs a client assertion every
//! 200 ms gets every token through three rotations with a 20 s overlap, under one client id;
//! the server never publishes more than two keys, and one once settled; a replaced key is
//! refused once its overlap has ended.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client,
    api::{Patch, PatchParams},
};
use libtest_mimic::Trial;
use oauth_operator::{api::OAuthClient, keys};
use serde_json::{Value, json};

use crate::support::{env::trial, resources::*, samples::sample_with, servers::Server};

pub fn trials() -> Vec<Trial> {
    vec![
        trial("keys::hydra_rotations_fail_no_request_and_keep_the_client_id", |c| rotations(c, Server::Hydra)),
        trial("keys::keycloak_rotations_fail_no_request_and_keep_the_client_id", |c| rotations(c, Server::Keycloak)),
    ]
}

/// A client assertion for `id` at `server`, signed with the PEM key.
fn assertion(server: Server, id: &str, pem: &str) -> String {
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let jti = format!("{now}-{}", std::process::id() as u64 * 1_000_003 + JTI.fetch_add(1, Ordering::Relaxed));
    let claims = json!({"iss": id, "sub": id, "aud": server.token_url(), "jti": jti, "iat": now, "exp": now + 60});
    keys::sign(keys::Algorithm::Es256, pem, &claims).expect("signed")
}

static JTI: AtomicU64 = AtomicU64::new(0);

/// The Secret's client id, private key and key id.
async fn read_key(client: &Client, ns: &str, secret: &str) -> (String, String, String) {
    let data = Api::<Secret>::namespaced(client.clone(), ns).get(secret).await.expect("Secret").data.expect("data");
    let text = |k: &str| String::from_utf8(data.get(k).unwrap_or_else(|| panic!("key {k}")).0.clone()).expect("utf-8");
    (text("client_id"), text("private_key"), text("key_id"))
}

/// The workload: re-reads the Secret every 5 s, asks for a token every 200 ms with an assertion
/// signed by the key it read last; counts answers; remembers the key id it uses.
struct Workload {
    stop: Arc<AtomicBool>,
    kid: Arc<Mutex<String>>,
    most_published: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<(u64, u64)>,
}

impl Workload {
    fn start(client: &Client, ns: &str, secret: &str, server: Server) -> Workload {
        let (stop, kid, most) =
            (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(String::new())), Arc::new(AtomicUsize::new(0)));
        let (client, ns, secret) = (client.clone(), ns.to_string(), secret.to_string());
        let (stop2, kid2, most2) = (stop.clone(), kid.clone(), most.clone());
        let task = tokio::spawn(async move {
            let (mut ok, mut failed) = (0, 0);
            let mut read_at = tokio::time::Instant::now() - Duration::from_secs(10);
            let mut held = (String::new(), String::new());
            while !stop2.load(Ordering::SeqCst) {
                if read_at.elapsed() >= Duration::from_secs(5) {
                    let (id, pem, key_id) = read_key(&client, &ns, &secret).await;
                    *kid2.lock().unwrap() = key_id;
                    held = (id, pem);
                    read_at = tokio::time::Instant::now();
                }
                match server.token_with_assertion(&assertion(server, &held.0, &held.1)).await {
                    200 => ok += 1,
                    _ => failed += 1,
                }
                most2.fetch_max(server.published_keys(&held.0).await, Ordering::SeqCst);
                // The pace of the workload is the point here, not a wait for a condition.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            (ok, failed)
        });
        Workload { stop, kid, most_published: most, task }
    }

    async fn uses(&self, kid: &str) {
        until("the workload re-reads its Secret", async || *self.kid.lock().unwrap() == kid).await;
    }
}

async fn rotations(client: Client, server: Server) {
    let ns = namespace(&client, &format!("e2e-keys-{}", server.name())).await;
    let secret = "reports-keys";
    let mut spec = json!({"backend": server.name(), "rotation": {"overlap": "20s", "every": null}});
    if server == Server::Keycloak {
        spec["hydra"] = Value::Null;
        spec["keycloak"] = json!({"grantTypes": ["client_credentials"]});
        spec["secretTemplate"]["keys"]["tokenUrl"] = Value::Null;
    }
    apply::<OAuthClient>(
        &client,
        &ns,
        sample_with("oauthclient-managed-keys.yaml", "reports", json!({"spec": spec, "metadata": {"namespace": null}})),
    )
    .await;
    let reports = client_ready(&client, &ns, "reports").await;
    let uid = reports.metadata.uid.clone().expect("uid");
    let (id, first_pem, first_kid) = read_key(&client, &ns, secret).await;
    assert_eq!(id, uid, "the client id is the resource's UID");
    assert!(first_pem.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8 PEM");
    assert_eq!(server.token_with_assertion(&assertion(server, &id, &first_pem)).await, 200, "the first key works");
    assert_eq!(server.published_keys(&id).await, 1);

    let workload = Workload::start(&client, &ns, secret, server);
    workload.uses(&first_kid).await;
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), &ns);
    let mut replaced = Vec::new();
    for round in 1..=3 {
        let (_, old_pem, old_kid) = read_key(&client, &ns, secret).await;
        let value = format!("round-{round}");
        let patch = json!({"metadata": {"annotations": {"oauth-operator.dev/rotate": value}}});
        api.patch("reports", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("annotate");
        wait(&api, "reports", "rotated", |o| {
            o.and_then(|c| c.status.as_ref()).and_then(|s| s.last_handled_rotate_request.as_deref())
                == Some(value.as_str())
        })
        .await;
        let (same_id, _, new_kid) = read_key(&client, &ns, secret).await;
        assert_eq!(same_id, id, "the client id never changes");
        assert_ne!(new_kid, old_kid, "a new key");
        let status = api.get("reports").await.expect("get").status.expect("status");
        assert_eq!(status.previous_key.as_ref().map(|p| p.kid.as_str()), Some(old_kid.as_str()), "the old key serves");
        workload.uses(&new_kid).await;
        replaced.push(old_pem);
    }
    let most = workload.most_published.load(Ordering::SeqCst);
    workload.stop.store(true, Ordering::SeqCst);
    let (ok, failed) = workload.task.await.expect("workload");
    println!(
        "managed keys ({server:?}): 3 rotations, {failed} failed of {} token requests, at most {most} keys published",
        ok + failed
    );
    assert_eq!(failed, 0, "no token request fails over three rotations");
    assert!(ok > 50, "the workload made requests: {ok}");
    assert!(most <= 2, "at most two keys published at any time: {most}");

    // The last replaced key is withdrawn when its overlap ends; then one key is published.
    until_within("the previous key retires", Duration::from_secs(40), async || {
        api.get("reports").await.expect("get").status.is_some_and(|s| s.previous_key.is_none())
    })
    .await;
    until("the server publishes one key", async || server.published_keys(&id).await == 1).await;
    let old = replaced.last().expect("three rounds");
    assert_ne!(server.token_with_assertion(&assertion(server, &id, old)).await, 200, "the replaced key is refused");
    let (_, pem, _) = read_key(&client, &ns, secret).await;
    assert_eq!(server.token_with_assertion(&assertion(server, &id, &pem)).await, 200, "the current key works");
}
