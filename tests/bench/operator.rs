//! The operator's benchmark: a real kube-apiserver + etcd, the emulator with 5 ms latency, the
//! operator as its own (release) process. Prints one table.
//!
//! cargo run --release --example bench -- [--sizes 1000,5000] [--rss 10000] [--rate 50] [--only memory|latency]
//!     [--latency-count 500] [--rotations 200] [--resync 30] [--backend hydra|keycloak] [--only census]
//!
//! `--backend hydra`: the throughput table only, on Ory Hydra (built from Go modules, its
//! default PBKDF2 cost of 25,000 iterations, in-memory store): hydra OAuthClients
//! (`client_credentials`) against a limit run that creates the same Hydra clients.
//! `--backend keycloak`: the same on Keycloak (dev mode, in-memory database), keycloak
//! OAuthClients against a limit run that creates the same Keycloak clients.
//!
//! - throughput: N OAuthClients applied at once until all are Ready (seen by a watch), against
//!   a "limit" run: a minimal program in this process that applies the same resources and makes
//!   exactly the Kubernetes writes and backend calls one resource needs (finalizer patch,
//!   backend create, Secret apply, event, status patch) at the same concurrency (16), with no
//!   client-side QPS limit in either; with the CPU seconds each process spent.
//! - latency: resources created at a steady rate, create → Secret with credentials, p50/p99.
//! - rotation: annotation set → new secret in the Secret, p50/p99.
//! - steady state: an operator restarted with `--resync` (30 s), two periods over everything
//!   settled: writes and backend reads. The other scenarios run at the default resync.
//! - memory: a fresh operator process syncing every resource: peak RSS and CPU seconds.

mod load;
#[path = "../support/mod.rs"]
mod support;

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use futures::{StreamExt, future::join_all, stream};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use oauth_operator::{
    api::{OAuthApp, OAuthClient},
    backend::{
        AppKey, Backend, ClientSettings, KeycloakSettings, Mode,
        hydra::HydraBackend,
        keycloak::{KeycloakBackend, KeycloakConfig},
    },
};
use serde_json::{Value, json};
use support::{
    ControlPlane,
    emulator::Emulator,
    operator::{Operator, USER},
    resources::{app_doc, apply_in_shard, client_doc, namespace, until, until_within},
};
use tokio::sync::Semaphore;

const CONCURRENCY: usize = 16;
const SHARD: &str = "bench";

struct Args {
    sizes: Vec<usize>,
    rss: usize,
    rate: u64,
    latency_count: usize,
    latency_rounds: usize,
    rotations: usize,
    resync: u64,
    /// A real server instead of the emulator (the throughput rows only).
    server: Option<Server>,
    /// `--only memory`: the memory rows alone (`--rss` clients).
    memory_only: bool,
    /// `--only census`: the cost of a resync with 100 apps of 50 clients each.
    census_only: bool,
    /// `--only latency`: the latency rows alone, with what loaded each second of them.
    latency_only: bool,
}

fn args() -> Args {
    let mut a = Args {
        sizes: vec![1000, 5000],
        rss: 10000,
        rate: 50,
        latency_count: 500,
        latency_rounds: 2,
        rotations: 200,
        resync: 30,
        server: None,
        memory_only: false,
        census_only: false,
        latency_only: false,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let value = pair.get(1).map(String::as_str).unwrap_or_default();
        match pair[0].as_str() {
            "--sizes" => a.sizes = value.split(',').filter_map(|s| s.parse().ok()).collect(),
            "--rss" => a.rss = value.parse().expect("--rss N"),
            "--rate" => a.rate = value.parse().expect("--rate N"),
            "--latency-count" => a.latency_count = value.parse().expect("--latency-count N"),
            "--latency-rounds" => a.latency_rounds = value.parse().expect("--latency-rounds N"),
            "--rotations" => a.rotations = value.parse().expect("--rotations N"),
            "--resync" => a.resync = value.parse().expect("--resync SECONDS"),
            "--backend" => match value {
                "hydra" => a.server = Some(Server::Hydra),
                "keycloak" => a.server = Some(Server::Keycloak),
                "emulator" => a.server = None,
                other => panic!("--backend hydra|keycloak|emulator, not {other}"),
            },
            "--only" if value == "memory" => a.memory_only = true,
            "--only" if value == "census" => a.census_only = true,
            "--only" if value == "latency" => a.latency_only = true,
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Server {
    Hydra,
    Keycloak,
}

/// A server that runs beside the operator, and its adapter for the limit run.
enum Running {
    Hydra(support::hydra::Hydra),
    Keycloak(support::keycloak::Keycloak),
}

impl Running {
    async fn start(server: Server) -> Running {
        match server {
            Server::Hydra => Running::Hydra(support::hydra::Hydra::start().await),
            Server::Keycloak => Running::Keycloak(support::keycloak::Keycloak::start().await),
        }
    }

    /// The server's admin API through the adapter, as the operator's backend of the same name
    /// sees it.
    fn backend(&self) -> Arc<dyn Backend> {
        let config = |url: &str, key: &str| oauth_operator::backend::http::HttpConfig {
            base_url: url.parse().expect("URL"),
            api_key: oauth_operator::backend::SecretString::new(key),
            timeout: Duration::from_secs(30),
            requests_per_second: 0,
            ca_pem: None,
        };
        match self {
            Running::Hydra(h) => Arc::new(HydraBackend::new(config(&h.admin, "")).expect("hydra adapter")),
            Running::Keycloak(k) => {
                use support::keycloak::{ADMIN_CLIENT, ADMIN_SECRET, REALM};
                let admin = KeycloakConfig {
                    realm: REALM.into(),
                    admin_realm: "master".into(),
                    admin_client_id: ADMIN_CLIENT.into(),
                };
                Arc::new(KeycloakBackend::new(config(&k.url, ADMIN_SECRET), admin).expect("keycloak adapter"))
            }
        }
    }
}

struct Table(Vec<(String, String)>);

impl Table {
    fn row(&mut self, what: impl Into<String>, value: impl Into<String>) {
        let (what, value) = (what.into(), value.into());
        println!("bench: {what}: {value}");
        self.0.push((what, value));
    }

    /// The table in Markdown, under `heading`.
    fn print(&self, heading: &str) {
        println!("\n| {heading} | value |\n|---|---|");
        for (what, value) in &self.0 {
            println!("| {what} | {value} |");
        }
    }
}

#[tokio::main]
async fn main() {
    let a = args();
    // The operator's default log level, as in production.
    support::operator::LOG_LEVEL.set("info").expect("log level");
    support::build_binaries(true);
    let cp = ControlPlane::start().await;
    cp.install_crds().await;
    let client = cp.client().await;
    let emu = Emulator::start(&[support::operator::API_KEY]);
    emu.set_faults(json!({"latency_ms": 5})).await;
    let running = match a.server {
        Some(server) => Some(Running::start(server).await),
        None => None,
    };
    // The default resync (10 minutes) but for the steady-state scenario, which would otherwise
    // take twenty minutes.
    let op_args = ["--selector", "e2e=bench", "--concurrency", "16", "--log-format", "json"];
    let mut operator = Operator::start(&cp, &client, &emu, &op_args).await;
    let mut table = Table(Vec::new());
    let mut total = 0usize;
    if a.census_only {
        census_rows(&mut table, (&cp, &client, &emu), &mut operator, a.resync).await;
        return table.print("measure");
    }
    if a.memory_only {
        throughput_operator(&client, "b-rss", a.rss, None).await;
        operator.kill();
        memory_rows(&mut table, &cp, &client, &emu, &op_args, a.rss).await;
        return table.print("measure");
    }

    let sizes = if a.latency_only { &[][..] } else { &a.sizes[..] };
    for &n in sizes {
        let ns = format!("b-{n}");
        let cpu = cpu_seconds();
        let operated = throughput_operator(&client, &ns, n, a.server).await;
        let operator_cpu = cpu_since(&cpu);
        total += n;
        let cpu = cpu_seconds();
        let limit_ns = format!("l-{n}");
        let backend = match &running {
            Some(running) => running.backend(),
            None => emulator_app(&emu, &limit_ns).await,
        };
        let limit = throughput_limit(&client, &Limit::new(&client, backend, a.server, &limit_ns).await, n).await;
        let limit_cpu = cpu_since(&cpu);
        table.row(format!("all Ready, {n} clients applied at once: operator"), format!("{operated:.1?}"));
        table.row(format!("all Ready, {n} clients: limit run"), format!("{limit:.1?}"));
        table.row(format!("CPU seconds at {n}, operator run"), operator_cpu);
        table.row(format!("CPU seconds at {n}, limit run"), limit_cpu);
        table.row(
            format!("ratio operator/limit at {n}"),
            format!("{:.2}", operated.as_secs_f64() / limit.as_secs_f64()),
        );
        table.row(format!("API requests per new client at {n}, operator"), requests_in(&cp, &ns, by_operator, n));
        table.row(format!("API requests per new client at {n}, limit run"), requests_in(&cp, &limit_ns, by_limit, n));
    }

    match a.server {
        Some(Server::Hydra) => return table.print("measure (Ory Hydra v2.3.0, PBKDF2 25,000 iterations)"),
        Some(Server::Keycloak) => return table.print("measure (Keycloak 26.5.6, dev mode, in-memory H2)"),
        None => {}
    }

    // The two sides take turns, round by round, each on a quiet machine: the limit's
    // throughput run just before would otherwise load the API server during the operator's
    // first round and not during the limit's, and a pause of the API server lands in one
    // side's run, not in both, unless each side has several.
    let limit = Arc::new(Limit::new(&client, emulator_app(&emu, "l-latency").await, None, "l-latency").await);
    let mut runs = [load::Run::default(), load::Run::default()];
    for round in 0..a.latency_rounds {
        for (run, side) in runs.iter_mut().zip([None, Some(limit.clone())]) {
            run.waited.push(quiet_machine().await);
            let ns = if side.is_some() { "l-latency" } else { "b-latency" };
            let (from, started) = (cp.audit().count(), SystemTime::now());
            let samples = latency(&client, ns, round * a.latency_count, a.latency_count, a.rate, side).await;
            run.rounds.push(load::Round { started, audit: from..cp.audit().count(), samples });
        }
    }
    total += a.latency_rounds * a.latency_count;
    let [op, lim] = &runs;
    let step = |run: &load::Run, of: Step| percentiles(run.samples().map(of).collect());
    let secret = |s: &load::Sample| s.secret;
    let ((p50, p99), (l50, l99)) = (step(op, secret), step(lim, secret));
    let count = format!("{} × {} clients, taking turns", a.latency_rounds, a.latency_count);
    table.row(format!("create → Secret at {}/s ({count}): p50", a.rate), format!("{p50:.0?}"));
    table.row(format!("create → Secret at {}/s: p99", a.rate), format!("{p99:.0?}"));
    table.row(format!("create → Secret at {}/s, limit run: p50", a.rate), format!("{l50:.0?}"));
    table.row(format!("create → Secret at {}/s, limit run: p99", a.rate), format!("{l99:.0?}"));
    let ratio = |op: Duration, limit: Duration| format!("{:.2}", op.as_secs_f64() / limit.as_secs_f64().max(1e-3));
    table.row("create → Secret ratio operator/limit: p50, p99", format!("{}, {}", ratio(p50, l50), ratio(p99, l99)));
    let pair = |(a, b): (Duration, Duration)| format!("{a:.0?}, {b:.0?}");
    let waits = |run: &load::Run| run.waited.iter().map(|w| format!("{w:.0?}")).collect::<Vec<_>>().join(", ");
    table.row(
        "latency rounds: waited for a quiet machine, operator; limit run",
        format!("{}; {}", waits(op), waits(lim)),
    );
    table.row("API requests during the latency rounds by user, operator", op.requests_by_user(&cp));
    table.row("API requests during the latency rounds by user, limit run", lim.requests_by_user(&cp));
    let steps: [(&str, Step); 3] = [
        ("create → in a watch", |s| s.seen),
        ("create → finalizer in a watch", |s| s.finalizer),
        ("finalizer → Secret", |s| s.secret.saturating_sub(s.finalizer)),
    ];
    for (name, of) in steps {
        table.row(
            format!("{name}: p50, p99 operator; limit run"),
            format!("{}; {}", pair(step(op, of)), pair(step(lim, of))),
        );
    }
    // Each second of every round, printed after the table.
    let seconds = [("operator", op.seconds(&cp)), ("limit", lim.seconds(&cp))];
    let print_seconds = || {
        for (side, rounds) in &seconds {
            for (round, rows) in rounds.iter().enumerate() {
                println!("\nlatency round {}, {side}, second by second:", round + 1);
                rows.iter().for_each(|row| println!("  {row}"));
            }
        }
    };
    if a.latency_only {
        table.print("measure");
        return print_seconds();
    }

    let rotation_ns = format!("b-{}", a.sizes.first().copied().unwrap_or(1000));
    let before = cp.audit().count();
    let (r50, r99) = rotations(&client, &rotation_ns, a.rotations, None).await;
    let operator_rotations = requests_since(&cp, before, Some(&rotation_ns), by_operator, a.rotations);
    table.row(format!("rotation, annotation → new secret ({} rotations): p50", a.rotations), format!("{r50:.0?}"));
    table.row("rotation: p99", format!("{r99:.0?}"));
    // The limit program's resources of the first size: it made them, it rotates them.
    let limit_ns = format!("l-{}", a.sizes.first().copied().unwrap_or(1000));
    let limit = Arc::new(Limit::new(&client, emulator_app_of(&emu), None, &limit_ns).await);
    let before = cp.audit().count();
    let (q50, q99) = rotations(&client, &limit_ns, a.rotations, Some(limit)).await;
    let limit_rotations = requests_since(&cp, before, Some(&limit_ns), by_limit, a.rotations);
    table.row("rotation, limit run: p50", format!("{q50:.0?}"));
    table.row("rotation, limit run: p99", format!("{q99:.0?}"));
    table.row("rotation ratio operator/limit: p50, p99", format!("{}, {}", ratio(r50, q50), ratio(r99, q99)));
    table.row("API requests per rotation, operator", operator_rotations);
    table.row("API requests per rotation, limit run", limit_rotations);

    operator.kill();
    let resync = format!("{}s", a.resync);
    let steady_args = [&op_args[..], &["--resync", &resync]].concat();
    operator = Operator::start(&cp, &client, &emu, &steady_args).await;
    let (writes, backend_writes, lists_per_app, requests) = steady(&cp, &client, &emu, a.resync).await;
    table.row(format!("steady state, {total} clients, two resyncs: Kubernetes writes"), writes.to_string());
    table.row("steady state: backend writes", backend_writes.to_string());
    table.row("steady state: client lists per app per resync", format!("{lists_per_app:.2}"));
    table.row("steady state: the operator's API requests per resync", requests);

    operator.kill();
    operator = Operator::start(&cp, &client, &emu, &op_args).await;
    if a.rss > total {
        let ns = "b-rss";
        throughput_operator(&client, ns, a.rss - total, None).await;
    }
    operator.kill();
    memory_rows(&mut table, &cp, &client, &emu, &op_args, a.rss.max(total)).await;
    table.print("measure");
    print_seconds();
}

/// 100 apps of 50 clients each, settled; then an operator that watches every OAuthClient (no
/// shard selector) with `--resync` (in seconds): its API requests and CPU per resync, which
/// the apps' unmanaged-client counts dominate.
async fn census_rows(
    table: &mut Table,
    (cp, client, emu): (&ControlPlane, &Client, &Emulator),
    operator: &mut Operator,
    resync: u64,
) {
    for i in 0..100 {
        throughput_operator(client, &format!("census-{i}"), 50, None).await;
    }
    operator.kill();
    let resync_arg = format!("{resync}s");
    *operator =
        Operator::start(cp, client, emu, &["--concurrency", "16", "--log-format", "json", "--resync", &resync_arg])
            .await;
    // One period for the restart's passes to land, then two measured: a span is the point here.
    tokio::time::sleep(Duration::from_secs(resync + resync / 5)).await;
    let (audit, cpu) = (cp.audit().count(), cpu_seconds());
    tokio::time::sleep(Duration::from_secs(2 * resync)).await;
    table.row(
        "100 apps × 50 clients: the operator's API requests per resync",
        requests_since(cp, audit, None, by_operator, 2),
    );
    table.row("100 apps × 50 clients: CPU seconds in two resyncs", cpu_since(&cpu));
}

async fn memory_rows(table: &mut Table, cp: &ControlPlane, client: &Client, emu: &Emulator, args: &[&str], n: usize) {
    let (peak_mib, rss_mib, cpu, sync) = memory(cp, client, emu, args, n).await;
    table.row(format!("fresh operator syncing {n} clients + Secrets: peak RSS"), format!("{peak_mib:.1} MiB"));
    table.row("RSS once synced", format!("{rss_mib:.1} MiB"));
    table.row("initial sync: CPU seconds", format!("{cpu:.1}"));
    table.row("initial sync: wall time", format!("{sync:.1?}"));
}

fn ready(c: &OAuthClient) -> bool {
    c.status.as_ref().is_some_and(|s| {
        s.observed_generation == c.metadata.generation
            && s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

/// Makes namespace `ns` with the OAuthApp `app`, and waits until it is in the backend.
async fn app_in_backend(client: &Client, ns: &str) {
    namespace(client, ns).await;
    apply_in_shard::<OAuthApp>(client, ns, app_doc("app", ns, json!({})), SHARD).await;
    let api: Api<OAuthApp> = Api::namespaced(client.clone(), ns);
    let in_backend = async || api.get("app").await.ok().and_then(|a| a.status).and_then(|s| s.app_id).is_some();
    until(&format!("app of {ns} in the backend"), in_backend).await;
}

/// A client named `name`: of the emulator's app `app`, or a machine-to-machine client of the
/// operator's backend for a real server.
fn doc(server: Option<Server>, name: &str) -> serde_json::Value {
    let grants = json!({"grantTypes": ["client_credentials"]});
    match server {
        Some(Server::Hydra) => json!({"metadata": {"name": name}, "spec": {"backend": "hydra", "hydra": grants}}),
        Some(Server::Keycloak) => {
            json!({"metadata": {"name": name}, "spec": {"backend": "keycloak", "keycloak": grants}})
        }
        None => client_doc(name, "app", json!({})),
    }
}

/// Applies an app and `n` clients (or `n` clients of a real server), returns the time until
/// all are Ready.
async fn throughput_operator(client: &Client, ns: &str, n: usize, server: Option<Server>) -> Duration {
    match server {
        Some(_) => drop(namespace(client, ns).await),
        None => app_in_backend(client, ns).await,
    }
    let all_ready = tokio::spawn(all_ready(client.clone(), ns.to_string(), n));
    let started = Instant::now();
    stream::iter(0..n)
        .for_each_concurrent(32, |i| async move {
            let name = format!("c{i}");
            apply_in_shard::<OAuthClient>(client, ns, doc(server, &name), SHARD).await;
        })
        .await;
    all_ready.await.expect("watch").duration_since(started)
}

/// The operator's requests.
fn by_operator(e: &Value) -> bool {
    e["user"]["username"] == support::operator::USER
}

/// The limit program's requests: the bench's own client (`admin`), less the user's applies of
/// the resources (field manager `e2e-user`), which both runs make alike.
fn by_limit(e: &Value) -> bool {
    e["user"]["username"] == "admin" && !e["requestURI"].as_str().unwrap_or_default().contains("fieldManager=e2e-user")
}

/// API requests in namespace `ns` that `by` accepts, per object (`per`), from the API server's
/// audit log: the total and the split by verb and resource (watches aside), so that a
/// regression shows as a count rather than as noise in a time.
fn requests_in(cp: &ControlPlane, ns: &str, by: fn(&Value) -> bool, per: usize) -> String {
    requests_since(cp, 0, Some(ns), by, per)
}

/// As [`requests_in`], counting only the audit events after the first `skip`; `None`: in every
/// namespace and cluster-wide.
fn requests_since(cp: &ControlPlane, skip: usize, ns: Option<&str>, by: fn(&Value) -> bool, per: usize) -> String {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    let events = cp.audit().skip(skip);
    let within = |e: &Value| ns.is_none_or(|ns| e["objectRef"]["namespace"] == ns);
    for e in events.filter(|e| e["stage"] == "ResponseComplete" && e["verb"] != "watch" && within(e)) {
        if !by(&e) {
            continue;
        }
        let o = &e["objectRef"];
        let sub = o["subresource"].as_str().map(|s| format!("/{s}")).unwrap_or_default();
        let key =
            format!("{} {}{sub}", e["verb"].as_str().unwrap_or_default(), o["resource"].as_str().unwrap_or_default());
        *counts.entry(key).or_default() += 1;
    }
    let per = per.max(1) as f64;
    let total: usize = counts.values().sum();
    let split: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {:.2}", *v as f64 / per)).collect();
    format!("{:.2} ({})", total as f64 / per, split.join(", "))
}

/// When all `n` OAuthClients of `ns` are Ready, by a watch (both runs have one, so the API
/// server serves the same watchers in each).
async fn all_ready(client: Client, ns: String, n: usize) -> Instant {
    let api: Api<OAuthClient> = Api::namespaced(client, &ns);
    let mut done = std::collections::HashSet::new();
    let mut events = watcher(api, watcher::Config::default()).default_backoff().applied_objects().boxed();
    while let Some(event) = events.next().await {
        let Ok(c) = event else { continue };
        if ready(&c) {
            done.insert(c.name_any());
        } else {
            done.remove(&c.name_any());
        }
        if done.len() == n {
            return Instant::now();
        }
    }
    panic!("the watch of {ns} ended");
}

/// Waits until the processes of the run (this one and its children) use less than a fifth of
/// a core over half a second, or a minute has passed; returns how long that took.
async fn quiet_machine() -> Duration {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let before: f64 = cpu_seconds().values().sum();
        // A sample of the CPU use, not a wait in place of a condition.
        tokio::time::sleep(Duration::from_millis(500)).await;
        if cpu_seconds().values().sum::<f64>() - before < 0.1 {
            break;
        }
    }
    started.elapsed()
}

/// CPU seconds so far of the processes of a run: this one and those it started, directly or
/// not (etcd, kube-apiserver, emulator, operator; Keycloak's JVM under its start script), by name.
fn cpu_seconds() -> HashMap<String, f64> {
    let me = std::process::id().to_string();
    // Every process: its parent, name and CPU seconds.
    let mut all = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some((head, tail)) = stat.rsplit_once(')') else { continue };
        let name = head.split_once('(').map(|(_, n)| n).unwrap_or_default().to_string();
        let fields: Vec<&str> = tail.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        let ppid = fields.get(1).copied().unwrap_or_default().to_string();
        all.insert(entry.file_name().to_string_lossy().to_string(), (ppid, name, (ticks(11) + ticks(12)) / 100.0));
    }
    let ours = |pid: &String| {
        let mut pid = pid;
        for _ in 0..8 {
            if *pid == me {
                return true;
            }
            match all.get(pid) {
                Some((ppid, _, _)) => pid = ppid,
                None => return false,
            }
        }
        false
    };
    let mut cpu = HashMap::new();
    for (pid, (_, name, seconds)) in all.iter().filter(|(pid, _)| ours(pid)) {
        let label = if *pid == me { "bench" } else { name.trim_start_matches("oauth-") };
        *cpu.entry(label.to_string()).or_default() += seconds;
    }
    cpu
}

/// CPU seconds per process since `before`, as one cell.
fn cpu_since(before: &HashMap<String, f64>) -> String {
    let mut parts: Vec<(String, f64)> =
        cpu_seconds().into_iter().map(|(k, v)| (k.clone(), v - before.get(&k).copied().unwrap_or(0.0))).collect();
    parts.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total: f64 = parts.iter().map(|p| p.1).sum();
    let each: Vec<String> = parts.iter().filter(|p| p.1 >= 0.05).map(|(k, v)| format!("{k} {v:.1}")).collect();
    format!("{total:.1} ({})", each.join(", "))
}

/// The emulator's apps through the adapter, as the operator's `default` backend sees them.
fn emulator_app_of(emu: &Emulator) -> Arc<dyn Backend> {
    Arc::new(support::resources::backend_at(emu))
}

/// The emulator's app `ns` through the adapter, made for the limit run.
async fn emulator_app(emu: &Emulator, ns: &str) -> Arc<dyn Backend> {
    let backend = support::resources::backend_at(emu);
    let new_app = oauth_operator::backend::NewApp { slug: ns.into(), name: ns.into(), ..Default::default() };
    backend.create_app(None, &new_app).await.expect("app");
    Arc::new(backend)
}

/// What the operator does for one new resource, done directly: the limit program. Its
/// resources are labelled for a shard no operator serves.
struct Limit {
    api: Api<OAuthClient>,
    secrets: Api<Secret>,
    events: Api<k8s_openapi::api::events::v1::Event>,
    backend: Arc<dyn Backend>,
    app: AppKey,
    settings: ClientSettings,
    server: Option<Server>,
    /// The operator's concurrency.
    slots: Arc<Semaphore>,
}

impl Limit {
    /// `server`: the clients are that server's (`backend` is its adapter), else clients of
    /// the emulator's app `ns`.
    async fn new(client: &Client, backend: Arc<dyn Backend>, server: Option<Server>, ns: &str) -> Limit {
        namespace(client, ns).await;
        let machine = |mode| ClientSettings {
            client_auth_method: "client_secret_basic".into(),
            grant_types: vec!["client_credentials".into()],
            mode,
            ..Default::default()
        };
        let settings = match server {
            Some(Server::Hydra) => machine(Mode::Hydra(Box::default())),
            Some(Server::Keycloak) => {
                machine(Mode::Keycloak(Box::new(KeycloakSettings { enabled: true, ..Default::default() })))
            }
            None => ClientSettings {
                client_auth_method: "client_secret_basic".into(),
                grant_types: vec!["authorization_code".into(), "refresh_token".into()],
                redirect_uris: vec![support::resources::REDIRECT.into()],
                ..Default::default()
            },
        };
        Limit {
            api: Api::namespaced(client.clone(), ns),
            secrets: Api::namespaced(client.clone(), ns),
            events: Api::namespaced(client.clone(), ns),
            backend,
            app: if server.is_some() { AppKey::none() } else { AppKey { deployment: None, slug: ns.into() } },
            settings,
            server,
            slots: Arc::new(Semaphore::new(CONCURRENCY)),
        }
    }

    /// Applies resource `name` as the operator run does, then makes exactly the writes and the
    /// backend call the operator makes for it (finalizer patch, backend create, Secret apply,
    /// event, status patch).
    async fn create(&self, client: &Client, name: &str) {
        let ns = self.api.namespace().expect("ns").to_string();
        apply_in_shard::<OAuthClient>(client, &ns, doc(self.server, name), "limit").await;
        let _slot = self.slots.acquire().await.expect("semaphore");
        let finalizer = json!({"metadata": {"finalizers": ["oauth-operator.dev/cleanup"]}});
        self.api.patch(name, &PatchParams::default(), &Patch::Merge(&finalizer)).await.expect("finalizer");
        let mut settings = self.settings.clone();
        if let Some(id) = settings.chosen_id_mut() {
            // The operator chooses the id and records the owner: the same fields here.
            *id = format!("{ns}-{name}");
            let owner = id.clone();
            settings.set_owner(&owner);
        }
        let (created, creds) = self.backend.create_client(&self.app, &settings).await.expect("backend create");
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("{name}-oauth-client")},
            "stringData": {"client_id": creds.client_id, "client_secret": creds.client_secret.expect("secret").expose()}});
        self.secrets
            .patch(&format!("{name}-oauth-client"), &PatchParams::apply("limit").force(), &Patch::Apply(&secret))
            .await
            .expect("secret");
        let event: k8s_openapi::api::events::v1::Event = serde_json::from_value(json!({
            "metadata": {"name": format!("{name}.created")}, "eventTime": k8s_openapi::jiff::Timestamp::now().to_string(),
            "reason": "Created", "action": "Created", "type": "Normal", "reportingController": "limit",
            "reportingInstance": "limit", "regarding": {"kind": "OAuthClient", "name": name, "namespace": ns}
        }))
        .expect("event");
        self.events.create(&PostParams::default(), &event).await.expect("event");
        let status = json!({"apiVersion": "oauth-operator.dev/v1alpha1", "kind": "OAuthClient",
            "status": {"observedGeneration": 1, "clientId": created.client_id, "backendId": created.id,
                "conditions": [{"type": "Ready", "status": "True", "reason": "Reconciled", "message": "",
                    "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().to_string()}]}});
        self.api
            .patch_status(name, &PatchParams::apply("limit").force(), &Patch::Apply(&status))
            .await
            .expect("status");
    }
}

impl Limit {
    /// Answers a rotate request on resource `name` as the operator does: rotate in the backend,
    /// apply the Secret, patch the status.
    async fn rotate(&self, name: &str, request: &str) {
        let _slot = self.slots.acquire().await.expect("semaphore");
        let status = self.api.get(name).await.expect("get").status.expect("status");
        let id = status.backend_id.expect("backend id");
        let secret = self.backend.rotate_secret(&self.app, &id).await.expect("rotate");
        let doc = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("{name}-oauth-client")},
            "stringData": {"client_id": status.client_id, "client_secret": secret.expose()}});
        self.secrets
            .patch(&format!("{name}-oauth-client"), &PatchParams::apply("limit").force(), &Patch::Apply(&doc))
            .await
            .expect("secret");
        let status = json!({"apiVersion": "oauth-operator.dev/v1alpha1", "kind": "OAuthClient",
            "status": {"lastHandledRotateRequest": request}});
        self.api
            .patch_status(name, &PatchParams::apply("limit-rotate").force(), &Patch::Apply(&status))
            .await
            .expect("status");
    }
}

/// The limit run of the throughput rows: `n` resources at once, at the operator's concurrency.
async fn throughput_limit(client: &Client, limit: &Limit, n: usize) -> Duration {
    let ns = limit.api.namespace().expect("ns").to_string();
    let all_ready = tokio::spawn(all_ready(client.clone(), ns, n));
    let started = Instant::now();
    stream::iter(0..n).for_each_concurrent(32, |i| async move { limit.create(client, &format!("c{i}")).await }).await;
    all_ready.await.expect("watch").duration_since(started)
}

/// One step of a latency sample.
type Step = fn(&load::Sample) -> Duration;

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    (at(0.50), at(0.99))
}

/// Creates clients `c{first}` to `c{first + n - 1}` at `rate` per second; the steps from each
/// create to its Secret. With `limit`, the limit program makes them (in its own namespace
/// `ns`), else the operator.
async fn latency(
    client: &Client,
    ns: &str,
    first: usize,
    n: usize,
    rate: u64,
    limit: Option<Arc<Limit>>,
) -> Vec<load::Sample> {
    if limit.is_none() {
        app_in_backend(client, ns).await;
    }
    let seen = watch_secrets(client, ns);
    let sightings = watch_clients(client, ns);
    let mut created = HashMap::new();
    let (started, start) = (SystemTime::now(), Instant::now());
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let mut tasks = Vec::new();
    for i in first..first + n {
        ticker.tick().await;
        let name = format!("c{i}");
        created.insert(name.clone(), Instant::now());
        let (client, ns, limit) = (client.clone(), ns.to_string(), limit.clone());
        tasks.push(tokio::spawn(async move {
            match limit {
                Some(limit) => limit.create(&client, &name).await,
                None => apply_in_shard::<OAuthClient>(&client, &ns, client_doc(&name, "app", json!({})), SHARD).await,
            }
        }));
    }
    join_all(tasks).await;
    let secret_of = |name: &str| format!("{name}-oauth-client");
    let every_secret = async || {
        let seen = seen.lock().await;
        created.keys().all(|name| seen.contains_key(&secret_of(name)))
    };
    until_within("every Secret", Duration::from_secs(300), every_secret).await;
    let every_finalizer = async || {
        let sightings = sightings.lock().await;
        created.keys().all(|name| sightings.get(name).is_some_and(|(_, f)| f.is_some()))
    };
    until("every finalizer in the watch", every_finalizer).await;
    let (seen, sightings) = (seen.lock().await, sightings.lock().await);
    created
        .iter()
        .map(|(name, at)| {
            let (sighted, finalizer) = sightings[name];
            load::Sample {
                created: started + at.duration_since(start),
                seen: sighted.saturating_duration_since(*at),
                finalizer: finalizer.expect("finalizer").saturating_duration_since(*at),
                secret: seen[&secret_of(name)].saturating_duration_since(*at),
            }
        })
        .collect()
}

/// When each OAuthClient was first seen by a watch, and first seen with a finalizer.
type Sightings = Arc<tokio::sync::Mutex<HashMap<String, (Instant, Option<Instant>)>>>;

/// The [`Sightings`] of the OAuthClients of `ns`.
fn watch_clients(client: &Client, ns: &str) -> Sightings {
    let seen = Arc::new(tokio::sync::Mutex::new(HashMap::new()));
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), ns);
    let sink = seen.clone();
    tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default()).applied_objects().boxed();
        while let Some(Ok(c)) = events.next().await {
            let now = Instant::now();
            let mut seen = sink.lock().await;
            let entry = seen.entry(c.name_any()).or_insert((now, None));
            if entry.1.is_none() && !c.finalizers().is_empty() {
                entry.1 = Some(now);
            }
        }
    });
    seen
}

/// When each Secret of `ns` was first seen with a client secret, and when its secret changed.
fn watch_secrets(client: &Client, ns: &str) -> Arc<tokio::sync::Mutex<HashMap<String, Instant>>> {
    let seen = Arc::new(tokio::sync::Mutex::new(HashMap::new()));
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let sink = seen.clone();
    tokio::spawn(async move {
        let mut values: HashMap<String, Vec<u8>> = HashMap::new();
        let mut events = watcher(api, watcher::Config::default()).applied_objects().boxed();
        while let Some(Ok(secret)) = events.next().await {
            let Some(value) = secret.data.as_ref().and_then(|d| d.get("client_secret")).map(|v| v.0.clone()) else {
                continue;
            };
            let name = secret.name_any();
            if values.get(&name) != Some(&value) {
                values.insert(name.clone(), value);
                sink.lock().await.insert(name, Instant::now());
            }
        }
    });
    seen
}

/// `count` rotations at 20 a second; the time from each annotation to its new secret. With
/// `limit`, the limit program answers them (its resources in `ns`), else the operator.
async fn rotations(client: &Client, ns: &str, count: usize, limit: Option<Arc<Limit>>) -> (Duration, Duration) {
    let seen = watch_secrets(client, ns);
    until("the watch listing the Secrets", async || seen.lock().await.len() >= count).await;
    let baseline = seen.lock().await.clone();
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), ns);
    let mut asked = HashMap::new();
    let mut ticker = tokio::time::interval(Duration::from_millis(50));
    let mut tasks = Vec::new();
    for i in 0..count {
        ticker.tick().await;
        let name = format!("c{i}");
        asked.insert(format!("{name}-oauth-client"), Instant::now());
        let patch = json!({"metadata": {"annotations": {"oauth-operator.dev/rotate": "bench"}}});
        // As the user, like the applies (`by_limit` leaves the user's requests out).
        let user = PatchParams { field_manager: Some("e2e-user".into()), ..Default::default() };
        api.patch(&name, &user, &Patch::Merge(&patch)).await.expect("annotate");
        if let Some(limit) = limit.clone() {
            tasks.push(tokio::spawn(async move { limit.rotate(&name, "bench").await }));
        }
    }
    join_all(tasks).await;
    let done = async || {
        let now = seen.lock().await;
        asked.keys().filter(|k| now.get(*k) != baseline.get(*k)).count() == count
    };
    until_within("every rotation seen", Duration::from_secs(120), done).await;
    let now = seen.lock().await;
    percentiles(asked.iter().map(|(k, at)| now[k].saturating_duration_since(*at)).collect())
}

/// Two resync periods over everything settled: operator writes (Leases aside), backend
/// writes, and client lists per app per resync.
async fn steady(cp: &ControlPlane, client: &Client, emu: &Emulator, resync: u64) -> (usize, u64, f64, String) {
    let clients: Api<OAuthClient> = Api::all(client.clone());
    loop {
        let list = clients.list(&ListParams::default().labels("e2e=bench")).await.expect("list");
        if list.items.iter().all(ready) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // One period to let the last changes land, then measure two.
    tokio::time::sleep(Duration::from_secs(resync + resync / 5)).await;
    let writes_before = cp.writes_by(USER).iter().filter(|w| !w.contains(" leases ")).count();
    let audit_before = cp.audit().count();
    let counters = emu.counters().await;
    let value = |c: &serde_json::Value, k: &str| c[k].as_u64().unwrap_or(0);
    let writes = |c: &serde_json::Value| -> u64 {
        c.as_object()
            .expect("counters")
            .iter()
            .filter(|(k, _)| !k.starts_with("GET ") && !k.ends_with("verify-domain") && k.contains("/oauth/apps"))
            .map(|(_, v)| v.as_u64().unwrap_or(0))
            .sum()
    };
    let (backend_before, lists_before) = (writes(&counters), value(&counters, "GET /oauth/apps/{slug}/clients"));
    // Measuring two periods is the point here: the benchmark reports what happens in them.
    tokio::time::sleep(Duration::from_secs(2 * resync)).await;
    let after = emu.counters().await;
    let apps: Api<OAuthApp> = Api::all(client.clone());
    let app_count = apps.list(&ListParams::default().labels("e2e=bench")).await.expect("apps").items.len() as f64;
    let writes_now: Vec<String> = cp.writes_by(USER).into_iter().filter(|w| !w.contains(" leases ")).collect();
    let k8s = writes_now.len() - writes_before;
    // What they were, when there were any.
    let mut kinds: HashMap<String, usize> = HashMap::new();
    for w in &writes_now[writes_before..] {
        *kinds.entry(w.split('/').next().unwrap_or_default().to_string()).or_default() += 1;
    }
    if let Some(sample) = writes_now.get(writes_before) {
        println!("bench: steady-state writes by kind {kinds:?}, the first: {sample}");
    }
    let lists = value(&after, "GET /oauth/apps/{slug}/clients") - lists_before;
    // Every request of the operator's in the two periods, per period.
    let requests = requests_since(cp, audit_before, None, by_operator, 2);
    (k8s, writes(&after) - backend_before, lists as f64 / app_count / 2.0, requests)
}

/// A process's resident memory in MiB: anonymous (heap, stacks), its executable's pages, and
/// those of the libraries it loaded.
fn rss_by_mapping(pid: u32) -> String {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).expect("smaps");
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe");
    let (mut kib, mut mapping) = ([0f64; 3], 0);
    for line in smaps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.first().is_some_and(|f| f.contains('-') && !f.ends_with(':')) {
            let path = fields.get(5).copied().unwrap_or_default();
            mapping = if path == exe.to_string_lossy() {
                1
            } else if path.starts_with('/') {
                2
            } else {
                0
            };
        } else if fields.first() == Some(&"Rss:") {
            kib[mapping] += fields.get(1).and_then(|v| v.parse::<f64>().ok()).unwrap_or_default();
        }
    }
    format!("anonymous {:.1}, executable {:.1}, libraries {:.1} MiB", kib[0] / 1024.0, kib[1] / 1024.0, kib[2] / 1024.0)
}

/// A fresh operator syncing everything: peak RSS, CPU seconds and wall time until every
/// resource had its first pass.
async fn memory(
    cp: &ControlPlane,
    client: &Client,
    emu: &Emulator,
    args: &[&str],
    n: usize,
) -> (f64, f64, f64, Duration) {
    let started = Instant::now();
    let operator = Operator::start(cp, client, emu, args).await;
    let metrics = format!("http://{}/metrics", operator.http);
    loop {
        let text = reqwest::get(&metrics).await.expect("scrape").text().await.expect("body");
        let passes: f64 = text
            .lines()
            .filter(|l| l.starts_with("oauth_operator_reconciles_total{kind=\"oauthclient\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if passes >= n as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let sync = started.elapsed();
    let status = std::fs::read_to_string(format!("/proc/{}/status", operator.pid())).expect("status");
    let kib = |field: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("a memory field")
    };
    let (peak_kib, now_kib) = (kib("VmHWM:"), kib("VmRSS:"));
    println!("bench: RSS once synced: {}, threads {}", rss_by_mapping(operator.pid()), kib("Threads:"));
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", operator.pid())).expect("stat");
    let fields: Vec<&str> = stat.rsplit(')').next().expect("stat").split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    (peak_kib / 1024.0, now_kib / 1024.0, ticks / 100.0, sync)
}
