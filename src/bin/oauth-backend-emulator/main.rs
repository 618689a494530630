//! oauth-backend-emulator: the management APIs of `docs/backends/` over real HTTP, for tests
//! and the demo. Not part of the operator image.
//!
//! - `/oauth/apps/...` and `/deployments/{id}/oauth/apps/...`: the Wacht-style API
//!   (Bearer API key; 401 without one).
//! - `POST /oauth2/token`: a token endpoint that authenticates clients by
//!   `client_secret_basic` or `client_secret_post`. Authorization codes are not checked: any
//!   non-empty code stands for a user's consent and records a grant.
//! - `/api/oauth-applications/...`: the OAuth Applications API (Bearer API key).
//! - `/v1/customers/{customer_id}/projects/{project_id}/mcp-oauth-clients/...`: the MCP OAuth
//!   clients API (Bearer API key); empty ids stand for the key's session scope.
//! - `/_emulator/mcp-oauth-clients/{id}/check-secret` (POST): whether a registered secret is
//!   the one stored, for tests (the API itself never returns it).
//! - `/_emulator/faults` (GET, PUT), `/_emulator/counters` (GET, DELETE to reset),
//!   `/_emulator/domains/{fqdn}/verify` (POST): control endpoints, never faulted, no key.
#![forbid(unsafe_code)]

mod applications;
mod control;
mod mcp;
mod store;
mod token;
mod wacht;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::Response,
};
use clap::Parser;
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use tower::ServiceExt;

use control::{Counters, Faults, Verdict};

/// Emulates the management APIs that oauth-operator reconciles against.
#[derive(Parser)]
#[command(name = "oauth-backend-emulator", version)]
struct Args {
    /// Address to listen on; port 0 picks a free one (printed on start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Accepted API key, as KEY or KEY=DEPLOYMENT (the deployment of the key-scoped layout,
    /// `default` when not given). Repeatable; comma-separated in the environment.
    #[arg(long = "api-key", env = "EMULATOR_API_KEYS", value_delimiter = ',', required = true)]
    api_keys: Vec<String>,
    /// Faults at start, as JSON (see `/_emulator/faults`).
    #[arg(long, default_value = "{}")]
    faults: String,
}

/// The caller a valid API key stands for.
#[derive(Clone)]
pub struct Caller {
    pub deployment: String,
}

#[derive(Clone)]
pub struct Emulator {
    pub store: Arc<store::Shared>,
    keys: Arc<HashMap<String, Caller>>,
    pub faults: Arc<Mutex<Faults>>,
    pub counters: Arc<Counters>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let keys = args
        .api_keys
        .iter()
        .map(|k| match k.split_once('=') {
            Some((key, dep)) => (key.to_string(), Caller { deployment: dep.to_string() }),
            None => (k.clone(), Caller { deployment: "default".into() }),
        })
        .collect();
    let faults: Faults = serde_json::from_str(&args.faults).map_err(|e| format!("--faults: {e}"))?;
    let emu = Emulator {
        store: Default::default(),
        keys: Arc::new(keys),
        faults: Arc::new(Mutex::new(faults)),
        counters: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    println!("oauth-backend-emulator listening on http://{}", listener.local_addr()?);
    serve(listener, app(emu)).await
}

fn app(emu: Emulator) -> Router {
    let api = Router::new()
        .merge(wacht::routes())
        .nest("/deployments/{deployment_id}", wacht::routes())
        .merge(applications::routes())
        .merge(mcp::routes())
        .route_layer(middleware::from_fn_with_state(emu.clone(), authenticate));
    Router::new()
        .merge(api)
        .merge(token::routes())
        .merge(control::routes())
        .merge(mcp::control_routes())
        .with_state(emu)
}

/// Serves connections with hyper directly, so that a fault can drop one without a response.
async fn serve(listener: tokio::net::TcpListener, app: Router) -> Result<(), Box<dyn std::error::Error>> {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("accept: {e}");
                continue;
            }
        };
        let app = app.clone();
        tokio::spawn(async move {
            let service = tower::service_fn(move |req: Request<hyper::body::Incoming>| {
                let app = app.clone();
                async move {
                    let req = mcp::session_scope(req);
                    let response = app.oneshot(req.map(Body::new)).await.expect("axum routers are infallible");
                    if response.extensions().get::<Verdict>() == Some(&Verdict::Drop) {
                        return Err(control::Dropped);
                    }
                    Ok(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
                .await;
        });
    }
}

/// A JSON request body: 415 without a JSON content type, 400 for malformed JSON, 422 for a
/// body of the wrong shape (a required field missing). Each API words the error its own way.
pub fn json_request<T: serde::de::DeserializeOwned>(
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<T, (StatusCode, String)> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Err((StatusCode::UNSUPPORTED_MEDIA_TYPE, "expected Content-Type: application/json".into()));
    }
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => (StatusCode::UNPROCESSABLE_ENTITY, format!("invalid body: {e}")),
        _ => (StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")),
    })
}

/// The error body of the API a path belongs to.
fn api_error(path: &str, status: StatusCode, message: &str) -> Response {
    if path.starts_with("/api/") {
        applications::error(status, message)
    } else if path.starts_with("/v1/") {
        mcp::error(status, message)
    } else {
        wacht::error(status, message)
    }
}

/// Counts the call, applies the faults, then checks the Bearer key.
async fn authenticate(State(emu): State<Emulator>, mut req: Request, next: Next) -> Response {
    emu.counters.count(&req);
    if let Some(response) = control::inject(&emu.faults, req.uri().path()).await {
        return response;
    }
    let key =
        req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match key.and_then(|k| emu.keys.get(k)) {
        Some(caller) => {
            req.extensions_mut().insert(caller.clone());
            next.run(req).await
        }
        None => api_error(req.uri().path(), StatusCode::UNAUTHORIZED, "missing or invalid API key"),
    }
}
