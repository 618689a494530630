//! What every HTTP backend adapter shares: the client with its timeouts, the Bearer API key,
//! the rate limit, request metrics, and the reading of responses and error bodies.

use std::time::Duration;

use futures::TryStreamExt;
use reqwest::{Method, RequestBuilder, Response, Url};
use serde::{
    Deserialize,
    de::{
        DeserializeOwned, DeserializeSeed, IgnoredAny, IntoDeserializer, MapAccess, SeqAccess, Visitor,
        value::{MapAccessDeserializer, SeqAccessDeserializer},
    },
};
use serde_json::Value;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::{Error, RateLimiter, Result, SecretString};

/// How to reach one backend over HTTP.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub base_url: Url,
    pub api_key: SecretString,
    pub timeout: Duration,
    /// At most this many requests a second; `0`: no limit.
    pub requests_per_second: u32,
    /// PEM certificates trusted besides the public roots (a private CA), if any.
    pub ca_pem: Option<Vec<u8>>,
}

pub struct Http {
    pub client: reqwest::Client,
    pub base_url: Url,
    api_key: SecretString,
    limiter: RateLimiter,
}

impl Http {
    pub fn new(config: HttpConfig) -> Result<Self> {
        let mut builder = reqwest::Client::builder();
        if let Some(pem) = &config.ca_pem {
            let certificates = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::Unsendable { message: format!("caFile: {e}") })?;
            if certificates.is_empty() {
                return Err(Error::Unsendable { message: "caFile: no PEM certificate in it".into() });
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("oauth-operator/", env!("CARGO_PKG_VERSION")))
            // A 307/308 would send the body (a registered client's secret, say) and the API
            // key elsewhere: a redirect is an error, never followed.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Transient { message: format!("HTTP client: {e}") })?;
        let limiter = RateLimiter::new(config.requests_per_second);
        Ok(Self { client, base_url: config.base_url, api_key: config.api_key, limiter })
    }

    /// `{base}/{segments...}`, each segment percent-encoded (an empty one stays empty).
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base_url.clone();
        url.path_segments_mut().expect("the base URL is an http(s) URL").pop_if_empty().extend(segments);
        url
    }

    /// Sends one request; `op` names it in metrics. A non-2xx answer becomes a classified error.
    pub async fn send(&self, op: &'static str, request: RequestBuilder) -> Result<Response> {
        self.limiter.acquire().await;
        let started = std::time::Instant::now();
        // A self-hosted Hydra's admin API takes no key: none is configured, none is sent.
        let request = match self.api_key.expose() {
            "" => request,
            key => request.bearer_auth(key),
        };
        let sent = request.send().await;
        crate::metrics::backend_request(op, sent.as_ref().ok().map(|r| r.status().as_u16()), started);
        let response = sent.map_err(|e| Error::Transient { message: describe(&e) })?;
        if response.status().is_success() {
            return Ok(response);
        }
        if response.status().is_redirection() {
            return Err(redirected(&response));
        }
        Err(error_from(response).await)
    }

    /// Sends a request with an optional JSON body and reads a JSON answer.
    pub async fn call<T: DeserializeOwned + Send + 'static>(
        &self,
        op: &'static str,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<T> {
        let mut request = self.client.request(method, url);
        if let Some(body) = body {
            request = request.json(body);
        }
        // A backend that echoes the request in its error must not put a secret in a condition.
        let sent = self.send(op, request).await.map_err(|e| e.redacted(&secrets_in(body)))?;
        parse(sent).await
    }
}

/// A read whose 404 means "not there": `None`.
pub fn found<T>(read: Result<T>) -> Result<Option<T>> {
    match read {
        Ok(value) => Ok(Some(value)),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every item of a paged list: `page(token)` reads one page (the first with `None`) and gives
/// its items and the next page's token, `None` at the end. A backend that hands out a token
/// twice, or goes on past `max_pages`, would be listed forever: both end in an error.
pub async fn all_pages<T, F, Fut>(max_pages: usize, mut page: F) -> Result<Vec<T>>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, Option<String>)>>,
{
    let (mut items, mut token) = (Vec::new(), None);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..max_pages {
        let (more, next) = page(token).await?;
        items.extend(more);
        let Some(next) = next else { return Ok(items) };
        if !seen.insert(next.clone()) {
            return Err(Error::Transient { message: "the client list repeats a page token".into() });
        }
        token = Some(next);
    }
    Err(Error::Transient { message: format!("the client list goes on past {max_pages} pages") })
}

/// The string values of the body's fields named like a secret (`client_secret`, ...).
pub(crate) fn secrets_in(body: Option<&Value>) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack: Vec<&Value> = body.into_iter().collect();
    while let Some(value) = stack.pop() {
        match value {
            Value::Object(map) => {
                for (key, item) in map {
                    match item {
                        Value::String(text) if key.contains("secret") && !text.is_empty() => found.push(text.clone()),
                        other => stack.push(other),
                    }
                }
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    found
}

/// The most of an error answer that is read, and of its message that is kept: what a backend
/// says reaches conditions, events and logs, so it is bounded.
const ERROR_BODY_MAX: usize = 64 * 1024;
const MESSAGE_MAX: usize = 300;

/// Answers longer than this are parsed as they arrive rather than read whole first.
const STREAM_ABOVE: u64 = 64 * 1024;

/// Reads a JSON answer; a `data` wrapper around it is accepted. A long answer (a list of
/// thousands of clients) is parsed as it arrives, straight into `T`: neither its text nor a
/// `Value` tree is ever held whole.
pub async fn parse<T: DeserializeOwned + Send + 'static>(response: Response) -> Result<T> {
    parse_within(response, BODY_MAX).await
}

/// The longest answer read (a list of 10,000 clients is about 10 MB): a longer one is an
/// error, so no backend can exhaust the operator's memory.
const BODY_MAX: usize = 64 * 1024 * 1024;

async fn parse_within<T: DeserializeOwned + Send + 'static>(response: Response, max: usize) -> Result<T> {
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_long(max));
    }
    let unreadable = |e: &dyn std::fmt::Display| Error::Transient { message: format!("unreadable response: {e}") };
    let read = |result: serde_json::Result<Enveloped<T>>| match result {
        Ok(Enveloped(value)) => Ok(value),
        Err(e) if e.is_io() => Err(unreadable(&e)),
        Err(e) => Err(Error::Transient { message: format!("unexpected response shape: {e}") }),
    };
    if response.content_length().is_some_and(|n| n <= STREAM_ABOVE) {
        let bytes = response.bytes().await.map_err(|e| unreadable(&describe(&e)))?;
        return read(serde_json::from_slice(&bytes));
    }
    let mut so_far = 0;
    let body = response.bytes_stream().map_err(|e| std::io::Error::other(describe(&e))).and_then(move |chunk| {
        so_far += chunk.len();
        let over = so_far > max;
        std::future::ready(if over { Err(std::io::Error::other(too_long(max).to_string())) } else { Ok(chunk) })
    });
    let reader = SyncIoBridge::new(StreamReader::new(body));
    let parsed = tokio::task::spawn_blocking(move || serde_json::from_reader(std::io::BufReader::new(reader)));
    read(parsed.await.map_err(|e| unreadable(&e))?)
}

fn too_long(max: usize) -> Error {
    Error::Transient { message: format!("the answer is longer than {} KiB", max / 1024) }
}

/// A JSON answer, unwrapped from `{"data": ...}` when it comes in one.
struct Enveloped<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Enveloped<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_any(EnvelopeVisitor(std::marker::PhantomData))
    }
}

struct EnvelopeVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for EnvelopeVisitor<T> {
    type Value = Enveloped<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON answer")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
        let first: Option<String> = map.next_key()?;
        if first.as_deref() == Some("data") {
            let value = map.next_value()?;
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(Enveloped(value));
        }
        T::deserialize(MapAccessDeserializer::new(Prepended { first, rest: map })).map(Enveloped)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> std::result::Result<Self::Value, A::Error> {
        T::deserialize(SeqAccessDeserializer::new(seq)).map(Enveloped)
    }
}

/// A map whose first key has been read already.
struct Prepended<A> {
    first: Option<String>,
    rest: A,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Prepended<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> std::result::Result<Option<K::Value>, A::Error> {
        match self.first.take() {
            Some(key) => seed.deserialize(key.into_deserializer()).map(Some),
            None => self.rest.next_key_seed(seed),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> std::result::Result<V::Value, A::Error> {
        self.rest.next_value_seed(seed)
    }
}

/// The error of a non-2xx answer, with the message of whichever error body the API uses:
/// `{"errors":[{"message"}]}` (Wacht), `{"error":"..."}` or `{"error":{"message"}}`, or
/// `{"code", "message"}` (gRPC gateways).
async fn error_from(response: Response) -> Error {
    let status = response.status().as_u16();
    let header = response.headers().get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).map(String::from);
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while body.len() < ERROR_BODY_MAX
        && let Ok(Some(chunk)) = chunks.try_next().await
    {
        body.extend_from_slice(&chunk[..chunk.len().min(ERROR_BODY_MAX - body.len())]);
    }
    let text = String::from_utf8_lossy(&body);
    let message = serde_json::from_str::<ErrorBody>(&text)
        .ok()
        .map(ErrorBody::message)
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| text.into_owned());
    let message = shorten(&message);
    let now = k8s_openapi::jiff::Timestamp::now();
    let wait = header.and_then(|h| retry_after(&h, now)).or_else(|| retry_after_in(&message).map(Duration::from_secs));
    Error::from_status(status, message, wait)
}

/// A redirect, named by where it pointed (scheme, host, port and path only).
fn redirected(response: &Response) -> Error {
    let location = response.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let target = match Url::parse(location) {
        Ok(url) => {
            format!(
                "{}://{}{}",
                url.scheme(),
                url.host_str().unwrap_or(""),
                url.port().map(|p| format!(":{p}")).unwrap_or_default()
            ) + url.path()
        }
        Err(_) => location.split(['?', '#']).next().unwrap_or("").to_string(),
    };
    let target: String = target.chars().take(200).collect();
    Error::Invalid {
        status: response.status().as_u16(),
        message: format!("the backend redirected to {target:?}; redirects are not followed (check its baseUrl)"),
    }
}

/// At most [`MESSAGE_MAX`] characters of `text`, marked when cut, control characters as spaces.
pub(crate) fn shorten(text: &str) -> String {
    let clean = |c: char| if c.is_control() { ' ' } else { c };
    let mut short: String = text.trim().chars().take(MESSAGE_MAX).map(clean).collect();
    if text.trim().chars().count() > MESSAGE_MAX {
        short.push('…');
    }
    short
}

/// A `Retry-After` value: seconds, or an HTTP date (a past one is no wait). Anything else,
/// negative numbers and numbers too large for a `u64` included, is no value.
fn retry_after(value: &str, now: k8s_openapi::jiff::Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = k8s_openapi::jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    Some(now.duration_until(date).try_into().unwrap_or(Duration::ZERO))
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<Message>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    message: Option<String>,
    /// OAuth's (Hydra, Keycloak).
    #[serde(default)]
    error_description: Option<String>,
    /// Keycloak's admin API.
    #[serde(default, rename = "errorMessage")]
    error_message: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    message: String,
}

impl ErrorBody {
    fn message(self) -> String {
        let nested = match self.error {
            Some(Value::String(text)) => Some(text),
            Some(Value::Object(map)) => map.get("message").and_then(Value::as_str).map(String::from),
            _ => None,
        };
        let mut parts: Vec<String> = self.errors.into_iter().map(|e| e.message).collect();
        parts.extend(nested.into_iter().chain(self.error_description).chain(self.message).chain(self.error_message));
        parts.join("; ")
    }
}

/// The N of "Retry after N seconds".
fn retry_after_in(message: &str) -> Option<u64> {
    let rest = &message[message.to_ascii_lowercase().find("retry after ")? + "retry after ".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// A reqwest error without its source chain's noise; it never holds a body.
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    match e.url() {
        Some(url) => format!(
            "{kind}: {} {}",
            url.path(),
            std::error::Error::source(e).map(|s| s.to_string()).unwrap_or_default()
        ),
        None => format!("{kind}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_both_forms() {
        use k8s_openapi::jiff::Timestamp;
        let now: Timestamp = "2026-11-28T10:00:00Z".parse().expect("time");
        assert_eq!(retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(retry_after(" 120 ", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after("18446744073709551615", now), Some(Duration::from_secs(u64::MAX)));
        assert_eq!(retry_after("18446744073709551616", now), None, "beyond u64");
        assert_eq!(retry_after("-5", now), None);
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("", now), None);
        assert_eq!(retry_after("Sat, 28 Nov 2026 10:01:30 GMT", now), Some(Duration::from_secs(90)), "a future date");
        assert_eq!(retry_after("Sat, 28 Nov 2026 09:00:00 GMT", now), Some(Duration::ZERO), "a past date");
        let far = retry_after("Thu, 30 Dec 9999 20:00:00 GMT", now).expect("a far date");
        assert!(far > Duration::from_secs(1 << 30), "read as it is; the caller clamps it");
        assert_eq!(retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now), None, "beyond the clock: no value");
        assert_eq!(retry_after("Mon, 28 Nov 2026 10:00:00 GMT", now), None, "a wrong weekday");
    }

    /// A redirect to another port: an error naming it, and nothing reaches that port.
    #[tokio::test]
    async fn redirects_are_refused_not_followed() {
        use futures::FutureExt;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}/", backend.local_addr().expect("addr"));
        let target = format!("http://{}/steal?key=x", elsewhere.local_addr().expect("addr"));
        let answer = format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: {target}\r\nContent-Length: 0\r\n\r\n");
        tokio::spawn(async move {
            let (mut socket, _) = backend.accept().await.expect("accept");
            let mut request = vec![0; 4096];
            let _ = socket.read(&mut request).await;
            socket.write_all(answer.as_bytes()).await.expect("answer");
        });
        let http = Http::new(HttpConfig {
            base_url: Url::parse(&base).expect("url"),
            api_key: SecretString::new("key"),
            timeout: Duration::from_secs(5),
            requests_per_second: 0,
            ca_pem: None,
        })
        .expect("client");
        let body = serde_json::json!({"client_secret": "s3cret"});
        let err = http.call::<Value>("test", Method::POST, http.url(&["x"]), Some(&body)).await.expect_err("refused");
        let message = err.to_string();
        assert!(message.contains("redirected to") && message.contains("/steal"), "{message}");
        assert!(!message.contains("key=x"), "the query is left out: {message}");
        assert_eq!(err.category(), super::super::ErrorCategory::Invalid);
        // Had the redirect been followed, the call would have connected there before it returned.
        assert!(elsewhere.accept().now_or_never().is_none(), "nothing reached the other port");
    }

    #[test]
    fn backend_text_is_bounded_and_never_carries_what_was_sent() {
        let long = "x".repeat(10_000);
        let short = shorten(&long);
        assert_eq!(short.chars().count(), MESSAGE_MAX + 1, "cut and marked");
        assert_eq!(shorten("a\nb\u{7}c"), "a b c", "no control characters reach a condition");
        let body = serde_json::json!({"client_id": "id", "client_secret": "s3cret", "nested": [{"secret_key": "k3y"}]});
        let mut secrets = secrets_in(Some(&body));
        secrets.sort();
        assert_eq!(secrets, ["k3y", "s3cret"]);
        let echoed = Error::Invalid { status: 400, message: "bad client_secret s3cret for id (k3y)".into() };
        let text = echoed.redacted(&secrets).to_string();
        assert!(!text.contains("s3cret") && !text.contains("k3y") && text.contains("<redacted>"), "{text}");
    }

    #[test]
    fn retry_after_is_read_from_the_message() {
        assert_eq!(retry_after_in("Rate limit exceeded. Retry after 12 seconds"), Some(12));
        assert_eq!(retry_after_in("Rate limit exceeded."), None);
    }

    #[test]
    fn every_error_body_style_gives_its_message() {
        let read = |text: &str| serde_json::from_str::<ErrorBody>(text).expect("body").message();
        assert_eq!(read(r#"{"errors":[{"message":"a","code":400}]}"#), "a");
        assert_eq!(read(r#"{"error":"b"}"#), "b");
        assert_eq!(read(r#"{"error":{"code":"not_found","message":"c"}}"#), "c");
        assert_eq!(read(r#"{"code":5,"message":"d","details":[]}"#), "d");
    }

    #[derive(Deserialize, Debug, PartialEq)]
    struct Items {
        items: Vec<u32>,
    }

    fn response(chunks: Vec<String>, length: bool) -> Response {
        let total: usize = chunks.iter().map(String::len).sum();
        let stream = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
        let mut builder = http::Response::builder();
        if length {
            builder = builder.header(reqwest::header::CONTENT_LENGTH, total);
        }
        builder.body(reqwest::Body::wrap_stream(stream)).expect("response").into()
    }

    #[tokio::test]
    async fn answers_are_read_with_or_without_a_data_wrapper() {
        for (text, want) in [
            (r#"{"items":[1,2]}"#, vec![1, 2]),
            (r#"{"data":{"items":[3]}}"#, vec![3]),
            (r#"{"data":{"items":[4]},"meta":{}}"#, vec![4]),
            (r#"{"other":1,"items":[5]}"#, vec![5]),
        ] {
            let items: Items = parse(response(vec![text.into()], true)).await.expect(text);
            assert_eq!(items.items, want, "{text}");
        }
        let list: Vec<u32> = parse(response(vec!["[7,8]".into()], true)).await.expect("array");
        assert_eq!(list, [7, 8]);
        let err = parse::<Items>(response(vec![r#"{"items":"no"}"#.into()], true)).await.expect_err("shape");
        assert!(err.to_string().contains("unexpected response shape"), "{err}");
    }

    #[tokio::test]
    async fn a_long_answer_is_parsed_as_it_arrives() {
        let numbers: Vec<u32> = (0..40_000).collect();
        let text = format!(r#"{{"data":{{"items":{}}}}}"#, serde_json::to_string(&numbers).expect("json"));
        assert!(text.len() as u64 > STREAM_ABOVE);
        let chunks: Vec<String> = text.as_bytes().chunks(1000).map(|c| String::from_utf8_lossy(c).into()).collect();
        let items: Items = parse(response(chunks.clone(), false)).await.expect("streamed");
        assert_eq!(items.items, numbers);
        let cut = chunks[..chunks.len() / 2].to_vec();
        let err = parse::<Items>(response(cut, false)).await.expect_err("cut short");
        assert!(
            err.to_string().contains("unexpected response shape") || err.to_string().contains("unreadable"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_answer_past_the_limit_is_an_error() {
        let text = format!(r#"{{"items":{}}}"#, serde_json::to_string(&vec![7u32; 100_000]).expect("json"));
        let chunks: Vec<String> = text.as_bytes().chunks(4096).map(|c| String::from_utf8_lossy(c).into()).collect();
        let max = 100 * 1024;
        for declared in [false, true] {
            let err = parse_within::<Items>(response(chunks.clone(), declared), max).await.expect_err("too long");
            assert!(err.to_string().contains("longer than 100 KiB"), "{declared}: {err}");
        }
        let fits: Items = parse_within(response(chunks, false), text.len()).await.expect("at the limit");
        assert_eq!(fits.items.len(), 100_000);
    }
}
