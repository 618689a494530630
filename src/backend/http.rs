//! What every HTTP backend adapter shares: the client with its timeouts, the Bearer API key,
//! the rate limit, request metrics, and the reading of responses and error bodies.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, Url};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::Value;

use super::{Error, RateLimiter, Result, SecretString};

/// How to reach one backend over HTTP.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub base_url: Url,
    pub api_key: SecretString,
    pub timeout: Duration,
    /// At most this many requests a second; `0`: no limit.
    pub requests_per_second: u32,
}

pub struct Http {
    pub client: reqwest::Client,
    pub base_url: Url,
    api_key: SecretString,
    limiter: RateLimiter,
}

impl Http {
    pub fn new(config: HttpConfig) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("oauth-operator/", env!("CARGO_PKG_VERSION")))
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
        let sent = request.bearer_auth(self.api_key.expose()).send().await;
        crate::metrics::backend_request(op, sent.as_ref().ok().map(|r| r.status().as_u16()), started);
        let response = sent.map_err(|e| Error::Transient { message: describe(&e) })?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(error_from(response).await)
    }

    /// Sends a request with an optional JSON body and reads a JSON answer.
    pub async fn call<T: DeserializeOwned>(
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
        parse(self.send(op, request).await?).await
    }
}

/// Reads a JSON answer; a `data` wrapper around it is accepted. Parsed straight into `T` (a
/// list of thousands of clients as a `Value` tree first would take several times the memory).
pub async fn parse<T: DeserializeOwned>(response: Response) -> Result<T> {
    let bytes = response
        .bytes()
        .await
        .map_err(|e| Error::Transient { message: format!("unreadable response: {}", describe(&e)) })?;
    let shape = |e: serde_json::Error| Error::Transient { message: format!("unexpected response shape: {e}") };
    // The top level's members as raw text, to see whether `data` is the only one.
    let members = serde_json::from_slice::<
        std::collections::HashMap<std::borrow::Cow<str>, &serde_json::value::RawValue>,
    >(&bytes);
    match members {
        Ok(map) if map.len() == 1 && map.contains_key("data") => serde_json::from_str(map["data"].get()).map_err(shape),
        _ => serde_json::from_slice(&bytes).map_err(shape),
    }
}

/// The error of a non-2xx answer, with the message of whichever error body the API uses:
/// `{"errors":[{"message"}]}` (Wacht), `{"error":"..."}` or `{"error":{"message"}}`, or
/// `{"code", "message"}` (gRPC gateways).
async fn error_from(response: Response) -> Error {
    let status = response.status().as_u16();
    let header_wait = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let text = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<ErrorBody>(&text)
        .ok()
        .map(ErrorBody::message)
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| text.chars().take(200).collect());
    let wait = header_wait.or_else(|| retry_after_in(&message)).map(Duration::from_secs);
    Error::from_status(status, message, wait)
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<Message>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    message: Option<String>,
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
        parts.extend(nested.into_iter().chain(self.message));
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
}
