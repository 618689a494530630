//! Request rate of the backend emulator for create-client + rotate, through the Wacht adapter.
//!
//! cargo build --release --bin oauth-backend-emulator
//! cargo run --release --example emulator-bench -- [SECONDS] [CONCURRENCY]

#[path = "../support/mod.rs"]
mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use oauth_operator::backend::{AppKey, Backend, ClientSettings, NewApp, wacht::WachtBackend};
use support::emulator::Emulator;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let concurrency: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(16);

    let emu = Emulator::start(&["bench-key"]);
    let backend = Arc::new(WachtBackend::new(emu.http("bench-key", 10), Some("dep_bench".into())).expect("backend"));
    let app = NewApp { slug: "bench".into(), name: "Bench".into(), ..Default::default() };
    backend.create_app(None, &app).await.expect("create app");
    let key = AppKey { deployment: None, slug: "bench".into() };
    let settings = ClientSettings {
        client_auth_method: "client_secret_basic".into(),
        grant_types: vec!["authorization_code".into()],
        redirect_uris: vec!["https://app.example.com/cb".into()],
        ..Default::default()
    };

    let pairs = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (backend, key, settings, pairs) = (backend.clone(), key.clone(), settings.clone(), pairs.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let (client, _) = backend.create_client(&key, &settings).await.expect("create client");
                    backend.rotate_secret(&key, &client.id).await.expect("rotate");
                    pairs.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    let elapsed = start.elapsed().as_secs_f64();
    let pairs = pairs.load(Ordering::Relaxed) as f64;
    println!("| scenario | concurrency | seconds | create+rotate pairs/s | requests/s |");
    println!("|---|---|---|---|---|");
    println!(
        "| create-client + rotate | {concurrency} | {elapsed:.1} | {:.0} | {:.0} |",
        pairs / elapsed,
        2.0 * pairs / elapsed
    );
}
