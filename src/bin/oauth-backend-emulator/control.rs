//! Fault injection and call counters, and the `/_emulator/...` endpoints that drive them.

use std::{
    collections::BTreeMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{MatchedPath, Path, Query, Request, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, Serialize};

use crate::{Emulator, wacht::error};

/// Faults applied to management API calls; rates are fractions from 0 to 1.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added to every call.
    pub latency_ms: u64,
    /// Share of calls answered 500, 502 or 503.
    pub error_rate: f64,
    /// Share of calls answered 429 with `Retry-After`.
    pub rate_limit_rate: f64,
    /// The `Retry-After` of those answers, in seconds.
    pub retry_after_seconds: u64,
    /// Share of calls whose connection is closed without an answer.
    pub drop_rate: f64,
    /// MCP client lists hand out the first page's token again and again.
    pub repeat_page_token: bool,
    /// A hostile backend, for calls whose path contains `misbehave_path` (every call when it
    /// is empty): what it answers instead of the API.
    pub misbehave: Option<Misbehaviour>,
    pub misbehave_path: String,
}

/// Ways a backend can misbehave.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Misbehaviour {
    /// 200 with a JSON answer that never ends (whitespace after `{"clients":[`).
    EndlessBody,
    /// 200 with text that is not JSON.
    InvalidJson,
    /// 200 whose body comes one byte a second.
    Trickle,
    /// 307 to this URL (say, another port that records what reaches it).
    RedirectTo(String),
}

/// The answer of a misbehaving backend.
fn misbehaviour(how: &Misbehaviour) -> Response {
    use axum::body::Body;
    use futures::{StreamExt, stream};
    let chunk = || Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b' '; 64 * 1024]));
    match how {
        Misbehaviour::EndlessBody => {
            let start = stream::iter([Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"{\"clients\":["))]);
            let body = start.chain(stream::repeat_with(chunk));
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], Body::from_stream(body)).into_response()
        }
        Misbehaviour::InvalidJson => {
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], "{\"apps\": [oops").into_response()
        }
        Misbehaviour::Trickle => {
            let body = stream::unfold((), |()| async {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Some((Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b" ")), ()))
            });
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], Body::from_stream(body)).into_response()
        }
        Misbehaviour::RedirectTo(url) => {
            (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, url.clone())]).into_response()
        }
    }
}

/// Marks a response whose connection the server must drop instead of answering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Drop,
}

/// The error that makes hyper close a connection.
#[derive(Debug)]
pub struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

/// The fault for this call (to `path`), if any.
pub async fn inject(faults: &Mutex<Faults>, path: &str) -> Option<Response> {
    let f = faults.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(how) = &f.misbehave
        && path.contains(&f.misbehave_path)
    {
        return Some(misbehaviour(how));
    }
    if f.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(f.latency_ms)).await;
    }
    if chance(f.drop_rate) {
        let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
        response.extensions_mut().insert(Verdict::Drop);
        return Some(response);
    }
    if chance(f.rate_limit_rate) {
        let wait = f.retry_after_seconds;
        let mut response =
            error(StatusCode::TOO_MANY_REQUESTS, format!("Rate limit exceeded. Retry after {wait} seconds"));
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return Some(response);
    }
    if chance(f.error_rate) {
        let status = [StatusCode::INTERNAL_SERVER_ERROR, StatusCode::BAD_GATEWAY, StatusCode::SERVICE_UNAVAILABLE]
            [(random() % 3) as usize];
        return Some(error(status, "injected fault"));
    }
    None
}

fn chance(rate: f64) -> bool {
    rate > 0.0 && ((random() >> 11) as f64 / (1u64 << 53) as f64) < rate
}

/// xorshift64*: fast and good enough to pick faults.
fn random() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let mut x = STATE.load(Ordering::Relaxed);
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    STATE.store(x, Ordering::Relaxed);
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// Calls per endpoint, keyed `METHOD /oauth/apps/{slug}/...` whatever the path layout, and
/// per concrete path (`METHOD /oauth/apps/web/clients/42/rotate-secret`) for tests that share
/// an emulator.
#[derive(Default)]
pub struct Counters(Mutex<Tallies>);

#[derive(Clone, Default, Serialize)]
struct Tallies {
    endpoints: BTreeMap<String, u64>,
    paths: BTreeMap<String, u64>,
}

impl Counters {
    pub fn count(&self, req: &Request) {
        let endpoint = req.extensions().get::<MatchedPath>().map(MatchedPath::as_str).unwrap_or("unmatched");
        let endpoint = endpoint.strip_prefix("/deployments/{deployment_id}").unwrap_or(endpoint);
        let path = req.uri().path();
        let path = match path.strip_prefix("/deployments/") {
            Some(rest) => rest.find('/').map_or(path, |i| &rest[i..]),
            None => path,
        };
        let mut tallies = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *tallies.endpoints.entry(format!("{} {endpoint}", req.method())).or_default() += 1;
        *tallies.paths.entry(format!("{} {path}", req.method())).or_default() += 1;
    }
}

pub fn routes() -> Router<Emulator> {
    Router::new()
        .route("/_emulator/faults", get(get_faults).put(put_faults))
        .route("/_emulator/counters", get(get_counters).delete(reset_counters))
        .route("/_emulator/domains/{fqdn}/verify", post(verify_domain))
}

async fn get_faults(State(emu): State<Emulator>) -> Json<Faults> {
    Json(emu.faults.lock().unwrap_or_else(|e| e.into_inner()).clone())
}

async fn put_faults(State(emu): State<Emulator>, Json(faults): Json<Faults>) -> Json<Faults> {
    *emu.faults.lock().unwrap_or_else(|e| e.into_inner()) = faults.clone();
    Json(faults)
}

#[derive(Deserialize)]
struct CountersQuery {
    by: Option<String>,
}

/// `GET /_emulator/counters`: calls per endpoint; `?by=path`: per concrete path.
async fn get_counters(State(emu): State<Emulator>, Query(q): Query<CountersQuery>) -> Json<BTreeMap<String, u64>> {
    let tallies = emu.counters.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Json(if q.by.as_deref() == Some("path") { tallies.paths } else { tallies.endpoints })
}

async fn reset_counters(State(emu): State<Emulator>) -> StatusCode {
    *emu.counters.0.lock().unwrap_or_else(|e| e.into_inner()) = Tallies::default();
    StatusCode::NO_CONTENT
}

/// Treats the CNAME of `fqdn` as in place: verify-domain reports it verified from now on.
async fn verify_domain(State(emu): State<Emulator>, Path(fqdn): Path<String>) -> StatusCode {
    emu.store.lock().verified_domains.insert(fqdn);
    StatusCode::NO_CONTENT
}
