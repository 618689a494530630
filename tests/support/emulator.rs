//! The backend emulator as its own process on a free loopback port, stopped on drop.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

use serde_json::Value;

pub struct Emulator {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    http: reqwest::Client,
}

impl Emulator {
    /// Starts the emulator with these API keys (`KEY` or `KEY=DEPLOYMENT`).
    pub fn start(keys: &[&str]) -> Emulator {
        let mut child = Command::new(super::cargo_bin("oauth-backend-emulator"))
            .args(["--listen", "127.0.0.1:0", "--api-key", &keys.join(",")])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start oauth-backend-emulator");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read the emulator's address");
        let url = line
            .trim()
            .rsplit_once(' ')
            .map(|(_, url)| url.to_string())
            .unwrap_or_else(|| panic!("unexpected first line from the emulator: {line:?}"));
        Emulator { child, url, http: reqwest::Client::new() }
    }

    /// How an adapter reaches the emulator with `key`: no rate limit, a timeout of `timeout_s`.
    pub fn http(&self, key: &str, timeout_s: u64) -> oauth_operator::backend::http::HttpConfig {
        oauth_operator::backend::http::HttpConfig {
            base_url: self.url.parse().expect("URL"),
            api_key: oauth_operator::backend::SecretString::new(key),
            timeout: std::time::Duration::from_secs(timeout_s),
            requests_per_second: 0,
            ca_pem: None,
        }
    }

    /// Sets the faults (`/_emulator/faults`), e.g. `json!({"error_rate": 1.0})`.
    pub async fn set_faults(&self, faults: Value) {
        let response =
            self.http.put(format!("{}/_emulator/faults", self.url)).json(&faults).send().await.expect("PUT faults");
        assert!(response.status().is_success(), "PUT faults: {}", response.status());
    }

    /// Calls per endpoint, e.g. `counters["POST /oauth/apps/{slug}/clients"]`.
    pub async fn counters(&self) -> Value {
        self.http
            .get(format!("{}/_emulator/counters", self.url))
            .send()
            .await
            .expect("GET counters")
            .json()
            .await
            .expect("JSON")
    }

    /// Calls per `METHOD /concrete/path`, whatever the layout.
    pub async fn counters_by_path(&self) -> serde_json::Map<String, Value> {
        let by_path: Value = self
            .http
            .get(format!("{}/_emulator/counters?by=path", self.url))
            .send()
            .await
            .expect("GET counters")
            .json()
            .await
            .expect("JSON");
        by_path.as_object().cloned().unwrap_or_default()
    }

    /// Calls of one method on one concrete path, e.g.
    /// `calls("POST", "/oauth/apps/web/clients/42/rotate-secret")`.
    pub async fn calls(&self, method: &str, path: &str) -> u64 {
        self.counters_by_path().await.get(&format!("{method} {path}")).and_then(Value::as_u64).unwrap_or(0)
    }

    /// Calls whose method passes `method` on paths under `prefix`, e.g. every write about one app.
    pub async fn calls_matching(&self, method: impl Fn(&str) -> bool, prefix: &str) -> u64 {
        let counters = self.counters_by_path().await;
        let under = |key: &String| key.split_once(' ').is_some_and(|(m, path)| method(m) && path.starts_with(prefix));
        counters.iter().filter(|(k, _)| under(k)).filter_map(|(_, v)| v.as_u64()).sum()
    }

    /// Calls of any method on paths under `prefix`, e.g. every call about one app.
    pub async fn calls_under(&self, prefix: &str) -> u64 {
        self.calls_matching(|_| true, prefix).await
    }

    /// Whether `secret` is the one the MCP OAuth clients API stores for client `id`.
    pub async fn mcp_secret_matches(&self, id: &str, secret: &str) -> bool {
        let answer: Value = self
            .http
            .post(format!("{}/_emulator/mcp-oauth-clients/{id}/check-secret", self.url))
            .json(&serde_json::json!({ "client_secret": secret }))
            .send()
            .await
            .expect("check secret")
            .json()
            .await
            .expect("JSON");
        answer["matches"].as_bool().expect("matches")
    }

    /// Marks a custom domain as having its CNAME in place.
    pub async fn verify_domain(&self, fqdn: &str) {
        let response =
            self.http.post(format!("{}/_emulator/domains/{fqdn}/verify", self.url)).send().await.expect("verify");
        assert!(response.status().is_success());
    }

    /// The token endpoint's status for these credentials: 200 when they work, 401 when not.
    pub async fn token_status(&self, client_id: &str, secret: &str, basic: bool, redirect_uri: &str) -> u16 {
        let mut form = vec![("grant_type", "authorization_code"), ("code", "c"), ("redirect_uri", redirect_uri)];
        let mut request = self.http.post(format!("{}/oauth2/token", self.url));
        if basic {
            request = request.basic_auth(client_id, Some(secret));
        } else {
            form.extend([("client_id", client_id), ("client_secret", secret)]);
        }
        request.form(&form).send().await.expect("POST /oauth2/token").status().as_u16()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
