//! Crash and fault safety (`docs/design.md`, reconcile rules 2, 3, 4, 6): operators killed with
//! SIGKILL mid-work, backend faults and a backend outage, an API server restart, deletions
//! while the backend is down, and two replicas with leader election. Each test runs alone
//! (they share the emulator's fault switches) with operators of its own.

#[path = "../support/mod.rs"]
mod support;

use std::{
    collections::{BTreeMap, HashSet},
    time::{Duration, Instant},
};

use futures::future::join_all;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};
use oauth_operator::{
    api::{OAuthApp, OAuthClient},
    backend::{AppKey, Backend},
    controller::secret::ROTATE_REQUEST,
};
use serde_json::json;
use support::{
    Env,
    env::trial,
    operator::Operator,
    resources::{REDIRECT, app_doc, apply_in_shard, backend, client_doc, credentials, namespace, until, until_within},
    servers::Server,
};

fn main() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    if !args.list {
        support::Env::get();
    }
    let trials = vec![
        trial(
            "faults::kills_while_creating_lose_nothing_and_duplicate_nothing",
            kills_while_creating_lose_nothing_and_duplicate_nothing,
        ),
        trial(
            "faults::kills_while_rotating_repeat_only_what_a_kill_lost",
            kills_while_rotating_repeat_only_what_a_kill_lost,
        ),
        trial("faults::hydra_kills_while_creating_leave_no_orphan", hydra_kills_while_creating_leave_no_orphan),
        trial("faults::keycloak_kills_while_creating_leave_no_orphan", keycloak_kills_while_creating_leave_no_orphan),
        trial("faults::kills_while_creating_apps_leave_each_its_own", kills_while_creating_apps_leave_each_its_own),
        trial("faults::kills_during_new_client_rotations_lose_nothing", kills_during_new_client_rotations_lose_nothing),
        trial("faults::hydra_kills_during_new_client_rotations_lose_nothing", hydra_kills_during_new_client_rotations),
        trial("faults::kills_during_key_rotations_lose_no_key", kills_during_key_rotations_lose_no_key),
        trial("faults::backend_faults_and_an_outage_recover", backend_faults_and_an_outage_recover),
        trial("faults::api_server_restart_is_survived", api_server_restart_is_survived),
        trial("faults::deletion_waits_for_the_backend", deletion_waits_for_the_backend),
        trial("faults::two_replicas_never_write_together", two_replicas_never_write_together),
    ];
    let conclusion = libtest_mimic::run(&libtest_mimic::Arguments { test_threads: Some(1), ..args }, trials);
    support::Env::shutdown();
    conclusion.exit_code()
}

/// A shard label per test, so each test's operators see only its own resources.
fn shard_args<'a>(shard: &'a str, extra: &[&'a str]) -> Vec<String> {
    let mut args = vec!["--selector".to_string(), format!("e2e={shard}"), "--resync".into(), "5s".into()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

async fn start(client: &Client, args: &[String]) -> Operator {
    let env = Env::get();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Operator::start(&env.cp, client, &env.emu, &args).await
}

/// Applies an app and `n` clients named `c0..` at once.
async fn apply_many(client: &Client, ns: &str, shard: &str, n: usize, app_spec: serde_json::Value) {
    namespace(client, ns).await;
    apply_in_shard::<OAuthApp>(client, ns, app_doc("app", ns, app_spec), shard).await;
    join_all(
        (0..n)
            .map(|i| apply_in_shard::<OAuthClient>(client, ns, client_doc(&format!("c{i}"), "app", json!({})), shard)),
    )
    .await;
}

fn is_ready(c: &OAuthClient) -> bool {
    c.status.as_ref().is_some_and(|s| {
        s.observed_generation == c.metadata.generation
            && s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Waits until every OAuthClient of `ns` is Ready and `extra` holds for each.
async fn all_ready(
    client: &Client,
    ns: &str,
    within: Duration,
    extra: impl Fn(&OAuthClient) -> bool,
) -> Vec<OAuthClient> {
    match ready_within(client, ns, within, extra).await {
        Ok(list) => list,
        Err(not_yet) => panic!("{not_yet}"),
    }
}

/// Every OAuthClient of `ns` once all are Ready and `extra` holds for each, or what was still
/// waiting at the end of `within`.
async fn ready_within(
    client: &Client,
    ns: &str,
    within: Duration,
    extra: impl Fn(&OAuthClient) -> bool,
) -> Result<Vec<OAuthClient>, String> {
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), ns);
    let deadline = Instant::now() + within;
    loop {
        let list = api.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
        if !list.is_empty() && list.iter().all(|c| is_ready(c) && extra(c)) {
            return Ok(list);
        }
        if Instant::now() >= deadline {
            let waiting = list.iter().filter(|c| !(is_ready(c) && extra(c))).count();
            return Err(format!("{waiting} of {} clients in {ns} not settled within {within:?}", list.len()));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Checks the end state: one active backend client per resource, no other active client,
/// every Secret authenticates. Returns the number of clients the backend ever created.
async fn assert_one_working_client_each(client: &Client, ns: &str, clients: &[OAuthClient]) -> usize {
    let list = backend().list_clients(&AppKey { deployment: None, slug: ns.into() }).await.expect("list clients");
    let active: HashSet<String> = list.iter().filter(|c| c.active).map(|c| c.id.clone()).collect();
    let owned: HashSet<String> = clients.iter().filter_map(|c| c.status.as_ref()?.backend_id.clone()).collect();
    assert_eq!(owned.len(), clients.len(), "every resource has its own backend client");
    assert_eq!(active, owned, "exactly the resources' clients are active: no duplicate, no orphan");
    let checks = clients.iter().map(|c| async move {
        let name = c.status.as_ref().and_then(|s| s.secret_name.clone()).expect("secret name");
        let (id, secret) = credentials(client, ns, &name).await;
        Env::get().emu.token_status(&id, &secret, true, REDIRECT).await
    });
    let statuses = join_all(checks).await;
    let lost = statuses.iter().filter(|s| **s != 200).count();
    assert_eq!(lost, 0, "every Secret authenticates (lost secrets: {lost})");
    list.len()
}

/// Sets the rotate annotation of every client to `value`, all at once.
async fn request_rotation(client: &Client, clients: &[OAuthClient], value: &str) {
    let patch = json!({"metadata": {"annotations": {"oauth-operator.dev/rotate": value}}});
    join_all(clients.iter().map(|c| {
        let api: Api<OAuthClient> = Api::namespaced(client.clone(), &c.namespace().unwrap_or_default());
        let (name, patch) = (c.name_any(), patch.clone());
        async move { api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.expect("annotate") }
    }))
    .await;
}

/// Kills the operator `kills` times, each at a random moment after the restarted process has
/// settled at least one more resource (`done`): a crash loop that makes no progress at all is
/// another scenario. A resource whose rotate call and Secret write straddle a kill must rotate
/// again; without progress between kills the same first batch would be hit every time.
async fn kill_repeatedly(
    client: &Client,
    operator: &mut Operator,
    args: &[String],
    kills: usize,
    ns: &str,
    done: impl Fn(&OAuthClient) -> bool,
) -> usize {
    kill_while(client, operator, args, kills, progress(client, ns, done), async || {}).await
}

/// How many OAuthClients of `ns` are Ready and `done`, of how many.
fn progress(client: &Client, ns: &str, done: impl Fn(&OAuthClient) -> bool) -> impl AsyncFn() -> (usize, usize) {
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), ns);
    async move || {
        let list = api.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
        (list.iter().filter(|c| is_ready(c) && done(c)).count(), list.len())
    }
}

/// Kills and restarts the operator `kills` times, each after some progress (`settled`: how
/// many are done, of how many) and a random moment; returns how many kills came mid-work.
/// `after_kill` runs while no operator runs, to see what each kill left behind.
async fn kill_while(
    client: &Client,
    operator: &mut Operator,
    args: &[String],
    kills: usize,
    settled: impl AsyncFn() -> (usize, usize),
    mut after_kill: impl AsyncFnMut(),
) -> usize {
    let mut mid_work = 0;
    for _ in 0..kills {
        let (before, _) = settled().await;
        until("progress after a restart", async || {
            let (now, total) = settled().await;
            now > before || now == total
        })
        .await;
        // The moment of the kill is the point of the test, not a wait for a condition.
        tokio::time::sleep(Duration::from_millis(rand_u64() % 600)).await;
        let (now, total) = settled().await;
        mid_work += usize::from(now < total);
        operator.kill();
        after_kill().await;
        *operator = start(client, args).await;
    }
    mid_work
}

fn rand_u64() -> u64 {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).expect("/dev/urandom");
    u64::from_le_bytes(bytes)
}

async fn kills_while_creating_lose_nothing_and_duplicate_nothing(client: Client) {
    let (ns, shard) = ("f-create", "f-create");
    let args = shard_args(shard, &["--unmanaged-grace", "3s"]);
    let mut operator = start(&client, &args).await;
    let started = Instant::now();
    apply_many(&client, ns, shard, 100, json!({"pruneUnmanagedClients": true})).await;
    kill_repeatedly(&client, &mut operator, &args, 12, ns, |_| true).await;
    let apps: Api<OAuthApp> = Api::namespaced(client.clone(), ns);
    let clients = all_ready(&client, ns, Duration::from_secs(180), |_| true).await;
    // Orphans of a kill between a create and its Secret are pruned once past the grace period.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let app = apps.get("app").await.expect("app");
        let list = backend().list_clients(&AppKey { deployment: None, slug: ns.into() }).await.expect("list");
        if app.status.and_then(|s| s.unmanaged_clients) == Some(0) && list.iter().filter(|c| c.active).count() == 100 {
            break;
        }
        assert!(Instant::now() < deadline, "orphans not pruned:\n{}", operator.log_tail());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let created = assert_one_working_client_each(&client, ns, &clients).await;
    println!(
        "faults: 100 clients, 12 SIGKILLs: all Ready and working after {:?}; backend clients created {created} (orphans pruned {}); lost secrets 0; duplicates 0",
        started.elapsed(),
        created - 100
    );
}

/// The Wacht API keeps no owner on an app: an OAuthApp records that it asked for its app
/// (`status.createRequested`) before the create, so a kill between the create and the status
/// write finds the app as its own, never as one nobody owns (`AdoptionNotAllowed`).
async fn kills_while_creating_apps_leave_each_its_own(client: Client) {
    let (ns, shard) = ("f-apps", "f-apps");
    let args = shard_args(shard, &[]);
    let mut operator = start(&client, &args).await;
    namespace(&client, ns).await;
    // A backend limited to 10 requests a second, so the kills fall mid-work.
    let slug = |i: usize| format!("f-app-{i}");
    let doc = |i: usize| app_doc(&format!("a{i}"), &slug(i), json!({"backend": "slow"}));
    join_all((0..30).map(|i| apply_in_shard::<OAuthApp>(&client, ns, doc(i), shard))).await;
    let apps: Api<OAuthApp> = Api::namespaced(client.clone(), ns);
    let ready = |a: &OAuthApp| {
        a.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    let settled = async || {
        let list = apps.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
        (list.iter().filter(|a| ready(a)).count(), list.len())
    };
    let mid_work = kill_while(&client, &mut operator, &args, 6, settled, async || {}).await;
    until_within("every app Ready", Duration::from_secs(120), async || settled().await == (30, 30)).await;
    let listed = apps.list(&ListParams::default()).await.expect("list").items;
    let refused: Vec<_> = listed
        .iter()
        .filter(|a| a.status.as_ref().is_some_and(|s| s.conditions.iter().any(|c| c.reason == "AdoptionNotAllowed")))
        .map(|a| a.name_any())
        .collect();
    assert!(refused.is_empty(), "its own app taken for one nobody owns: {refused:?}");
    let in_backend: HashSet<String> = backend()
        .list_apps(None)
        .await
        .expect("apps")
        .into_iter()
        .map(|a| a.slug)
        .filter(|s| s.starts_with("f-app-"))
        .collect();
    assert_eq!(in_backend.len(), 30, "one backend app per OAuthApp");
    for app in &listed {
        let status = app.status.as_ref().expect("status");
        assert!(status.app_id.is_some() && !status.create_requested, "{}: the status names its app", app.name_any());
    }
    println!("faults: 30 apps, 6 SIGKILLs ({mid_work} mid-work): all Ready, each its own backend app, none refused");
}

/// A spec on a server's backend limited to 10 requests a second, so that kills fall mid-work.
fn slow_spec(server: Server) -> serde_json::Value {
    let block = server.name();
    json!({"backend": format!("{block}-slow"), block: {"grantTypes": ["client_credentials"]}})
}
async fn hydra_kills_while_creating_leave_no_orphan(client: Client) {
    kills_while_creating_leave_no_orphan(client, Server::Hydra, "f-hydra").await;
}

async fn keycloak_kills_while_creating_leave_no_orphan(client: Client) {
    kills_while_creating_leave_no_orphan(client, Server::Keycloak, "f-keycloak").await;
}

/// Where the operator chooses each client id, a create that a kill hid is found again by it,
/// so there is nothing to prune: the server ends with exactly one client per resource.
async fn kills_while_creating_leave_no_orphan(client: Client, server: Server, ns: &str) {
    let args = shard_args(ns, &[]);
    let mut operator = start(&client, &args).await;
    let started = Instant::now();
    namespace(&client, ns).await;
    let doc = |i: usize| json!({"metadata": {"name": format!("h{i}")}, "spec": slow_spec(server)});
    join_all((0..100).map(|i| apply_in_shard::<OAuthClient>(&client, ns, doc(i), ns))).await;
    let mid_work = kill_repeatedly(&client, &mut operator, &args, 12, ns, |_| true).await;
    assert!(mid_work >= 10, "only {mid_work} of 12 kills came before every client was Ready");
    let clients = all_ready(&client, ns, Duration::from_secs(180), |_| true).await;
    let uids: HashSet<String> = clients.iter().filter_map(|c| c.metadata.uid.clone()).collect();
    assert_eq!(uids.len(), 100);
    let ids: Vec<String> = server
        .client_ids()
        .await
        .into_iter()
        .filter(|id| uids.iter().any(|uid| id.starts_with(uid.as_str())))
        .collect();
    assert_eq!(ids.len(), 100, "exactly one {server:?} client per resource: no orphan, no duplicate");
    assert_eq!(ids.iter().cloned().collect::<HashSet<_>>(), uids, "each is the resource's chosen id");
    assert_every_secret_gets_a_token(&client, ns, &clients, server).await;
    println!(
        "faults: {server:?}, 100 clients, 12 SIGKILLs ({mid_work} mid-work): all Ready and working after {:?}; {server:?} holds {} clients of theirs (orphans 0, duplicates 0, pruned 0); lost secrets 0",
        started.elapsed(),
        ids.len()
    );
}

async fn assert_every_secret_gets_a_token(client: &Client, ns: &str, clients: &[OAuthClient], server: Server) {
    let checks = clients.iter().map(|c| async move {
        let name = c.status.as_ref().and_then(|s| s.secret_name.clone()).expect("secret name");
        let (id, secret) = credentials(client, ns, &name).await;
        server.token(&id, &secret).await
    });
    let lost = join_all(checks).await.iter().filter(|s| **s != 200).count();
    assert_eq!(lost, 0, "every Secret gets a token from {server:?} (lost secrets: {lost})");
}

/// Managed keys rotated on Hydra while the operator is killed: every Secret's key still gets a
/// token (no key lost between the Secret and the backend), and once the overlaps end each
/// client publishes exactly its Secret's key (none left past its overlap).
async fn kills_during_key_rotations_lose_no_key(client: Client) {
    let (ns, shard) = ("f-keys", "f-keys");
    let args = shard_args(shard, &[]);
    let mut operator = start(&client, &args).await;
    let started = Instant::now();
    namespace(&client, ns).await;
    let doc = |i: usize| {
        json!({"metadata": {"name": format!("k{i}")}, "spec": {"backend": "hydra-slow",
            "clientAuthMethod": "private_key_jwt", "managedKeys": {"algorithm": "ES256"},
            "rotation": {"overlap": "10s"}, "hydra": {"grantTypes": ["client_credentials"]}}})
    };
    join_all((0..20).map(|i| apply_in_shard::<OAuthClient>(&client, ns, doc(i), shard))).await;
    let before = all_ready(&client, ns, Duration::from_secs(120), |_| true).await;
    request_rotation(&client, &before, "keys-1").await;
    let handled =
        |c: &OAuthClient| c.status.as_ref().and_then(|s| s.last_handled_rotate_request.as_deref()) == Some("keys-1");
    let mid_work = kill_repeatedly(&client, &mut operator, &args, 6, ns, handled).await;
    let settled = |c: &OAuthClient| handled(c) && c.status.as_ref().is_some_and(|s| s.previous_key.is_none());
    let after = all_ready(&client, ns, Duration::from_secs(180), settled).await;
    let (server, client) = (Server::Hydra, &client);
    let checks = after.iter().map(|c| async move {
        let secret = c.status.as_ref().and_then(|s| s.secret_name.clone()).expect("secret name");
        let data =
            Api::<Secret>::namespaced(client.clone(), ns).get(&secret).await.expect("Secret").data.expect("data");
        let text = |k: &str| String::from_utf8(data[k].0.clone()).expect("utf-8");
        let (id, pem) = (text("client_id"), text("private_key"));
        let now = k8s_openapi::jiff::Timestamp::now().as_second();
        let claims = json!({"iss": id, "sub": id, "aud": server.token_url(), "jti": format!("{id}-{now}"),
            "iat": now, "exp": now + 60});
        let assertion =
            oauth_operator::keys::sign(oauth_operator::keys::Algorithm::Es256, &pem, &claims).expect("sign");
        (server.token_with_assertion(&assertion).await, server.published_keys(&id).await)
    });
    // One at a time: Hydra's in-memory store records each assertion's jti, and a burst of
    // concurrent token requests could fail on its side, not the operator's.
    let mut results = Vec::new();
    for check in checks {
        results.push(check.await);
    }
    let lost = results.iter().filter(|(status, _)| *status != 200).count();
    let statuses: Vec<u16> = results.iter().map(|(status, _)| *status).filter(|s| *s != 200).collect();
    println!("faults: token statuses other than 200: {statuses:?}");
    let extra = results.iter().filter(|(_, published)| *published != 1).count();
    println!(
        "faults: 20 managed-key rotations, 6 SIGKILLs ({mid_work} mid-work): settled after {:?}; lost keys {lost}; clients publishing other than one key after the overlap {extra}",
        started.elapsed()
    );
    assert_eq!(lost, 0, "every Secret's key gets a token");
    assert_eq!(extra, 0, "no key published past its overlap");
}

/// A rotation is repeated only when a kill lost its secret (`docs/design.md`, rule 4): one
/// process rotates a resource once per request, so each kill can cost a resource at most one
/// more rotation, and only while its Secret does not answer the request yet; a resource whose
/// Secret answered it when a kill came is never rotated again.
async fn kills_while_rotating_repeat_only_what_a_kill_lost(client: Client) {
    let (ns, shard) = ("f-rotate", "f-rotate");
    let args = shard_args(shard, &["--unmanaged-grace", "3s"]);
    let mut operator = start(&client, &args).await;
    apply_many(&client, ns, shard, 50, json!({"pruneUnmanagedClients": true})).await;
    let before = all_ready(&client, ns, Duration::from_secs(120), |_| true).await;
    let ids: BTreeMap<String, String> = before
        .iter()
        .map(|c| (c.name_any(), c.status.as_ref().and_then(|s| s.backend_id.clone()).expect("backend id")))
        .collect();
    request_rotation(&client, &before, "storm-1").await;
    let handled =
        |c: &OAuthClient| c.status.as_ref().and_then(|s| s.last_handled_rotate_request.as_deref()) == Some("storm-1");
    let emu = &Env::get().emu;
    let rotations = async || {
        let counters = emu.counters_by_path().await;
        let count = |id: &str| counters.get(&format!("POST /oauth/apps/{ns}/clients/{id}/rotate-secret"));
        ids.iter().map(|(name, id)| (name.clone(), count(id).and_then(|v| v.as_u64()).unwrap_or(0))).collect()
    };
    // After each kill: whose Secret answers the request, then the rotations so far (in this
    // order, so a rotation a Secret answers is counted).
    let mut kills: Vec<(HashSet<String>, BTreeMap<String, u64>)> = Vec::new();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let answered = async || -> HashSet<String> {
        let list = secrets.list(&ListParams::default()).await.expect("list Secrets").items;
        list.iter()
            .filter(|s| s.annotations().get(ROTATE_REQUEST).map(String::as_str) == Some("storm-1"))
            .filter_map(|s| s.name_any().strip_suffix("-oauth-client").map(str::to_string))
            .collect()
    };
    let after_kill = async || kills.push((answered().await, rotations().await));
    kill_while(&client, &mut operator, &args, 6, progress(&client, ns, handled), after_kill).await;
    let after = all_ready(&client, ns, Duration::from_secs(120), handled).await;
    assert_one_working_client_each(&client, ns, &after).await;
    assert_eq!(answered().await.len(), 50, "every Secret answers the request");
    let last: BTreeMap<String, u64> = rotations().await;
    let mut histogram: BTreeMap<u64, usize> = BTreeMap::new();
    for (name, &count) in &last {
        *histogram.entry(count).or_default() += 1;
        let lost_to = kills.iter().filter(|(answered, _)| !answered.contains(name)).count() as u64;
        assert!(
            (1..=1 + lost_to).contains(&count),
            "{name}: {count} rotations for one request, {lost_to} kills before its Secret answered it"
        );
        if let Some((_, then)) = kills.iter().find(|(answered, _)| answered.contains(name)) {
            assert_eq!(count, then[name], "{name}: rotated again after its Secret answered the request");
        }
    }
    let repeated: u64 = last.values().map(|c| c - 1).sum();
    println!(
        "faults: 50 rotations under 6 SIGKILLs: rotations per request {histogram:?} (count: resources); repeated {repeated}, each after a kill that came before its Secret answered"
    );
}

/// What a `NewClient` rotation of 30 resources goes through: kills while the new clients are
/// created and written (until each resource handled the request), then kills while the
/// previous clients retire (10 s later). Returns the resources and the kills that came
/// mid-work.
async fn new_client_rotations_under_kills(client: &Client, ns: &str, args: &[String]) -> (Vec<OAuthClient>, usize) {
    let mut operator = start(client, args).await;
    let before = all_ready(client, ns, Duration::from_secs(120), |_| true).await;
    request_rotation(client, &before, "swap-1").await;
    let handled =
        |c: &OAuthClient| c.status.as_ref().and_then(|s| s.last_handled_rotate_request.as_deref()) == Some("swap-1");
    let retired = move |c: &OAuthClient| {
        handled(c) && c.status.as_ref().and_then(|s| s.previous_client.as_ref()).is_some_and(|p| p.retired)
    };
    let mut mid_work = kill_repeatedly(client, &mut operator, args, 4, ns, handled).await;
    mid_work += kill_repeatedly(client, &mut operator, args, 3, ns, retired).await;
    let after = all_ready(client, ns, Duration::from_secs(120), retired).await;
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b.name_any(), a.name_any());
        let previous = a.status.as_ref().and_then(|s| s.previous_client.clone()).expect("previous client");
        let first = b.status.as_ref().and_then(|s| s.backend_id.clone());
        assert_eq!(Some(previous.backend_id), first, "{}: the previous client is the one replaced", a.name_any());
    }
    (after, mid_work)
}

async fn kills_during_new_client_rotations_lose_nothing(client: Client) {
    let (ns, shard) = ("f-swap", "f-swap");
    let args = shard_args(shard, &["--unmanaged-grace", "3s"]);
    let started = Instant::now();
    let swap = json!({"rotation": {"strategy": "NewClient", "overlap": "10s"}});
    namespace(&client, ns).await;
    // A backend limited to 10 requests a second, so the kills fall mid-work.
    let app = app_doc("app", ns, json!({"backend": "slow", "pruneUnmanagedClients": true}));
    apply_in_shard::<OAuthApp>(&client, ns, app, shard).await;
    let docs = (0..30).map(|i| client_doc(&format!("s{i}"), "app", swap.clone()));
    join_all(docs.map(|doc| apply_in_shard::<OAuthClient>(&client, ns, doc, shard))).await;
    let (after, mid_work) = new_client_rotations_under_kills(&client, ns, &args).await;
    assert!(mid_work >= 6, "only {mid_work} of 7 kills came mid-work");
    // Orphans of a kill between a create and its Secret are pruned once past the grace period.
    let apps: Api<OAuthApp> = Api::namespaced(client.clone(), ns);
    until_within("orphans pruned", Duration::from_secs(60), async || {
        apps.get("app").await.ok().and_then(|a| a.status?.unmanaged_clients) == Some(0)
    })
    .await;
    let created = assert_one_working_client_each(&client, ns, &after).await;
    let emu = &Env::get().emu;
    for c in &after {
        let previous = c.status.as_ref().and_then(|s| s.previous_client.clone()).expect("previous");
        let calls = emu.calls("DELETE", &format!("/oauth/apps/{ns}/clients/{}", previous.backend_id)).await;
        assert_eq!(calls, 1, "{}: the previous client is deactivated exactly once", c.name_any());
    }
    println!(
        "faults: 30 NewClient rotations, 7 SIGKILLs ({mid_work} mid-work): all retired and working after {:?}; backend clients created {created} (30 first, 30 new, orphans pruned {}); each previous client deactivated once; lost secrets 0",
        started.elapsed(),
        created - 60
    );
}

/// On Ory Hydra the new client's id is chosen (`<uid>-r1`): one a kill hid is found again.
async fn hydra_kills_during_new_client_rotations(client: Client) {
    let (ns, shard) = ("f-hydra-swap", "f-hydra-swap");
    let args = shard_args(shard, &[]);
    let started = Instant::now();
    namespace(&client, ns).await;
    let doc = |i: usize| {
        json!({"metadata": {"name": format!("h{i}")}, "spec": {"backend": "hydra-slow",
            "hydra": {"grantTypes": ["client_credentials"]},
            "rotation": {"strategy": "NewClient", "overlap": "10s"}}})
    };
    join_all((0..30).map(|i| apply_in_shard::<OAuthClient>(&client, ns, doc(i), shard))).await;
    let (after, mid_work) = new_client_rotations_under_kills(&client, ns, &args).await;
    assert!(mid_work >= 6, "only {mid_work} of 7 kills came mid-work");
    let hydra = &Env::get().hydra;
    let uids: HashSet<String> = after.iter().filter_map(|c| c.metadata.uid.clone()).collect();
    let ours: HashSet<String> =
        hydra.client_ids().await.into_iter().filter(|id| uids.iter().any(|uid| id.starts_with(uid.as_str()))).collect();
    let wanted: HashSet<String> = uids.iter().map(|uid| format!("{uid}-r1")).collect();
    assert_eq!(
        ours, wanted,
        "each resource holds exactly its replacement: the previous deleted, no orphan, no duplicate"
    );
    assert_every_secret_gets_a_token(&client, ns, &after, Server::Hydra).await;
    println!(
        "faults: hydra, 30 NewClient rotations, 7 SIGKILLs ({mid_work} mid-work): all retired and working after {:?}; Hydra holds exactly the 30 replacements; lost secrets 0",
        started.elapsed()
    );
}

async fn backend_faults_and_an_outage_recover(client: Client) {
    let (ns, shard) = ("f-backend", "f-backend");
    let emu = &Env::get().emu;
    let _operator = start(&client, &shard_args(shard, &[])).await;
    emu.set_faults(json!({"error_rate": 0.3, "latency_ms": 30, "rate_limit_rate": 0.1, "retry_after_seconds": 1, "drop_rate": 0.05}))
        .await;
    let calls = || async { emu.calls_under(&format!("/oauth/apps/{ns}")).await };
    apply_many(&client, ns, shard, 20, json!({})).await;
    // Under random faults a resource can fail pass after pass and back off up to 5 minutes, so
    // no wait under faults is sure to be long enough. What is sure: once the faults stop, each
    // resource's next pass succeeds, at the latest when its backoff (≤ 5 min + 20%) ends.
    let (settled, lifted) = match ready_within(&client, ns, Duration::from_secs(90), |_| true).await {
        Ok(settled) => (settled, false),
        Err(not_yet) => {
            println!("faults: {not_yet} under faults; faults lifted");
            emu.set_faults(json!({})).await;
            (all_ready(&client, ns, Duration::from_secs(400), |_| true).await, true)
        }
    };
    let with_faults = calls().await;

    // A full outage of a minute, with work waiting: a rotation for every client.
    emu.set_faults(json!({"error_rate": 1.0})).await;
    let outage_start = calls().await;
    request_rotation(&client, &settled, "during-outage").await;
    // The outage's length is the scenario, not a wait for a condition.
    let outage: u64 = std::env::var("FAULTS_OUTAGE_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    tokio::time::sleep(Duration::from_secs(outage)).await;
    let during = calls().await - outage_start;
    emu.set_faults(json!({})).await;
    let recovering = Instant::now();
    let handled = |c: &OAuthClient| {
        c.status.as_ref().and_then(|s| s.last_handled_rotate_request.as_deref()) == Some("during-outage")
    };
    let recovered = all_ready(&client, ns, Duration::from_secs(240), handled).await;
    let recovery = recovering.elapsed();
    assert_one_working_client_each(&client, ns, &recovered).await;
    let per_resource = during as f64 / 21.0;
    // Backoff doubles from 1 s: about log2(60) + 1 attempts per resource in a minute, not
    // one every reconcile; allow for the list shared by an app's clients and the app itself.
    assert!(per_resource <= 10.0, "{per_resource:.1} backend calls per resource during a 60 s outage: a hot loop");
    println!(
        "faults: 20 clients under 30% 5xx, 10% 429, 5% drops, 30 ms: settled with {with_faults} backend calls ({:.1} per resource{}); \
         60 s outage: {during} calls ({per_resource:.1} per resource); recovery after the outage {recovery:?}; lost secrets 0",
        with_faults as f64 / 21.0,
        if lifted { ", the last after the faults were lifted" } else { "" }
    );
}

async fn api_server_restart_is_survived(client: Client) {
    let (ns, shard) = ("f-apiserver", "f-apiserver");
    let env = Env::get();
    let _operator = start(&client, &shard_args(shard, &[])).await;
    apply_many(&client, ns, shard, 5, json!({})).await;
    all_ready(&client, ns, Duration::from_secs(60), |_| true).await;
    env.cp.restart_apiserver().await;
    let client = env.cp.client().await;
    // Work that only reaches the operator through watches re-established after the restart.
    apply_in_shard::<OAuthClient>(&client, ns, client_doc("late", "app", json!({})), shard).await;
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), ns);
    let annotate = json!({"metadata": {"annotations": {"oauth-operator.dev/rotate": "after-restart"}}});
    api.patch("c0", &PatchParams::default(), &Patch::Merge(&annotate)).await.expect("annotate");
    let clients = all_ready(&client, ns, Duration::from_secs(120), |c| {
        c.name_any() != "c0"
            || c.status.as_ref().and_then(|s| s.last_handled_rotate_request.as_deref()) == Some("after-restart")
    })
    .await;
    assert_eq!(clients.len(), 6);
    assert_one_working_client_each(&client, ns, &clients).await;
}

async fn deletion_waits_for_the_backend(client: Client) {
    let (ns, shard) = ("f-delete", "f-delete");
    let emu = &Env::get().emu;
    let _operator = start(&client, &shard_args(shard, &[])).await;
    apply_many(&client, ns, shard, 2, json!({})).await;
    let clients = all_ready(&client, ns, Duration::from_secs(60), |_| true).await;
    let id = |name: &str| {
        clients.iter().find(|c| c.name_any() == name).and_then(|c| c.status.as_ref()?.backend_id.clone()).expect("id")
    };
    let (id0, id1) = (id("c0"), id("c1"));
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), ns);
    emu.set_faults(json!({"error_rate": 1.0})).await;
    api.delete("c0", &DeleteParams::default()).await.expect("delete c0");
    api.delete("c1", &DeleteParams::default()).await.expect("delete c1");
    for name in ["c0", "c1"] {
        let held = || async {
            api.get_opt(name).await.ok().flatten().and_then(|c| c.status).is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.reason == "Deleting" && c.message.contains("Orphan"))
            })
        };
        until(&format!("{name}: the finalizer says why it waits"), held).await;
    }
    // A user finishes one deletion by hand...
    api.patch("c1", &PatchParams::default(), &Patch::Merge(json!({"spec": {"deletionPolicy": "Orphan"}})))
        .await
        .expect("orphan");
    let gone = |name: &'static str| {
        let api = api.clone();
        async move { api.get_opt(name).await.ok().flatten().is_none() }
    };
    until("Orphan finishes the deletion", async || gone("c1").await).await;
    assert!(api.get_opt("c0").await.expect("get").is_some(), "c0 waits for the backend");
    // ...and the other completes once the backend is back.
    emu.set_faults(json!({})).await;
    until_within("the deletion completes after recovery", Duration::from_secs(120), async || gone("c0").await).await;
    let list = backend().list_clients(&AppKey { deployment: None, slug: ns.into() }).await.expect("list");
    let active = |id: &str| list.iter().find(|c| c.id == id).is_some_and(|c| c.active);
    assert!(!active(&id0), "Delete deactivated the backend client");
    assert!(active(&id1), "Orphan left the backend client alone");
}

/// Two replicas on one Lease, each with a ServiceAccount of its own so the audit log tells
/// their writes apart: the standby writes nothing; after the leader is killed, the standby
/// takes over within the Lease duration; no write of one falls among the other's.
async fn two_replicas_never_write_together(client: Client) {
    let (ns, shard) = ("f-leader", "f-leader");
    let env = Env::get();
    for sa in ["replica-a", "replica-b"] {
        bind_operator_rbac(&client, sa).await;
    }
    let args = shard_args(shard, &["--leader-elect", "--lease-name", "f-leader", "--lease-duration", "3s"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut a = Operator::launch_as(&env.cp, &client, &env.emu, "replica-a", &args).await;
    let logged = |op: &Operator, text: &str| std::fs::read_to_string(&op.log).unwrap_or_default().contains(text);
    until("replica a leading", async || logged(&a, "controllers running")).await;
    let b = Operator::launch_as(&env.cp, &client, &env.emu, "replica-b", &args).await;
    until("replica b waiting", async || logged(&b, "waiting to lead")).await;
    apply_many(&client, ns, shard, 10, json!({})).await;
    all_ready(&client, ns, Duration::from_secs(60), |_| true).await;

    let user = |sa: &str| format!("system:serviceaccount:oauth-operator-system:{sa}");
    let writes = |sa: &str| -> Vec<String> {
        env.cp
            .audit()
            .filter(|e| e["user"]["username"] == user(sa).as_str())
            .filter(|e| matches!(e["verb"].as_str(), Some("create" | "update" | "patch" | "delete")))
            .filter_map(|e| e["requestReceivedTimestamp"].as_str().map(String::from))
            .collect()
    };
    assert!(!writes("replica-a").is_empty(), "the leader writes");
    assert!(writes("replica-b").is_empty(), "the standby writes nothing while the leader lives");

    a.kill();
    let killed = Instant::now();
    until("replica b taking over", async || logged(&b, "controllers running")).await;
    let takeover = killed.elapsed();
    assert!(takeover < Duration::from_secs(6), "takeover took {takeover:?} with a 3 s Lease");
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), ns);
    let annotate = json!({"metadata": {"annotations": {"oauth-operator.dev/rotate": "after-takeover"}}});
    api.patch("c0", &PatchParams::default(), &Patch::Merge(&annotate)).await.expect("annotate");
    all_ready(&client, ns, Duration::from_secs(60), |c| {
        c.name_any() != "c0"
            || c.status.as_ref().and_then(|s| s.last_handled_rotate_request.as_deref()) == Some("after-takeover")
    })
    .await;
    let (last_a, first_b) = (writes("replica-a").into_iter().max(), writes("replica-b").into_iter().min());
    let (last_a, first_b) = (last_a.expect("a wrote"), first_b.expect("b wrote after the takeover"));
    assert!(last_a < first_b, "two writers at once: a wrote at {last_a}, b already at {first_b}");
    println!(
        "faults: leader killed, standby led after {takeover:?} (Lease 3 s); last write of a {last_a} < first of b {first_b}"
    );
}

/// A ServiceAccount with the operator's ClusterRole and Lease Role.
async fn bind_operator_rbac(client: &Client, sa: &str) {
    let ns = "oauth-operator-system";
    let objects = json!([
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": ns}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": sa},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "oauth-operator"},
         "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": sa, "namespace": ns},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "oauth-operator-leader"},
         "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]},
    ]);
    let objects = serde_json::from_value(objects).expect("objects");
    support::operator::apply_objects(client, objects).await;
}
