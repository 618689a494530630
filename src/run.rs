//! `oauth-operator run`: waits for the CRDs, serves `/healthz` and `/readyz`, runs both
//! controllers, and stops gracefully on SIGTERM or Ctrl-C.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{Router, http::StatusCode, routing::get};
use kube::{Api, Client, api::ListParams, core::DeserializeGuard};
use tokio::sync::watch;

use crate::{
    api::{OAuthApp, OAuthClient},
    config::{self, RunArgs},
    controller::{self, Context},
    leader::Elector,
};

pub async fn run(args: RunArgs) -> Result<(), Box<dyn std::error::Error>> {
    let backends = config::load_backends(&args.config)?;
    let client = Client::try_default().await?;
    let ready = Arc::new(AtomicBool::new(false));
    let http = tokio::net::TcpListener::bind(args.http).await?;
    tokio::spawn(serve_health(http, ready.clone()));

    let ns = args.namespace.as_deref();
    let (clients, apps, secrets) =
        (controller::scoped(&client, ns), controller::scoped(&client, ns), controller::scoped(&client, ns));
    wait_for_crds(&clients, &apps).await;
    // Ready means able to work; a standby replica is ready too, or rollouts would stall.
    ready.store(true, Ordering::Relaxed);
    if args.leader_elect {
        let identity = std::env::var("POD_NAME").unwrap_or_else(|_| format!("oauth-operator-{}", std::process::id()));
        let leases = Api::namespaced(client.clone(), &args.lease_namespace);
        let elector = Elector::new(leases, &args.lease_name, &identity, args.lease_duration);
        tracing::info!(lease = %args.lease_name, %identity, "waiting to lead");
        elector.acquire().await?;
        tokio::spawn(async move {
            elector.hold().await;
            // Another replica may lead from now on: stop before writing anything more.
            std::process::exit(1);
        });
    }

    let mut wc = controller::watch_config();
    if let Some(selector) = &args.selector {
        wc = wc.labels(selector);
    }
    let (stop, stopped) = watch::channel(false);
    let until_stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let mut ctx = Context::new(client, backends, args.namespace.clone(), args.resync, args.unmanaged_grace);
    // A shard's watch holds only its own OAuthClients: an app's may be in another shard.
    ctx.all_clients_watched = args.selector.is_none();
    let ctx = Arc::new(ctx);
    let app_controller =
        controller::run_apps(ctx.clone(), apps.clone(), wc.clone(), args.concurrency, until_stopped(stopped.clone()));
    let client_controller =
        controller::run_clients(ctx, clients, apps, secrets, wc, args.concurrency, until_stopped(stopped));
    tracing::info!(namespace = args.namespace.as_deref().unwrap_or("all"), "controllers running");
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
    });
    tokio::join!(app_controller, client_controller);
    Ok(())
}

/// Waits until both resources are served (the CRDs are installed and Established).
async fn wait_for_crds(clients: &Api<DeserializeGuard<OAuthClient>>, apps: &Api<DeserializeGuard<OAuthApp>>) {
    let probe = ListParams::default().limit(1);
    loop {
        match (clients.list(&probe).await, apps.list(&probe).await) {
            (Ok(_), Ok(_)) => return,
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "waiting for the OAuthApp and OAuthClient CRDs")
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn serve_health(listener: tokio::net::TcpListener, ready: Arc<AtomicBool>) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(|| async {
                let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
                ([(axum::http::header::CONTENT_TYPE, content_type)], crate::metrics::render())
            }),
        )
        .route(
        "/readyz",
        get(move || {
            let ready = ready.load(Ordering::Relaxed);
            async move { if ready { (StatusCode::OK, "ok") } else { (StatusCode::SERVICE_UNAVAILABLE, "starting") } }
        }),
    );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "health server stopped");
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
