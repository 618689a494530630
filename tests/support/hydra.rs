//! Ory Hydra, built from Go modules by `tests/hydra/build.sh` (or `HYDRA_BIN`), as its own
//! process on two free loopback ports with an in-memory store, stopped on drop.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use serde_json::Value;

use super::controlplane::{free_port, log_tail, spawn, stop};

pub struct Hydra {
    child: Child,
    /// `http://127.0.0.1:PORT` of the admin API.
    pub admin: String,
    /// `http://127.0.0.1:PORT` of the public API (the issuer).
    pub public: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

/// The admin and public URLs of the Hydra this process started, for the operator's config.
static URLS: OnceLock<(String, String)> = OnceLock::new();

/// `(admin, issuer)` of the running Hydra, if one was started.
pub fn urls() -> Option<&'static (String, String)> {
    URLS.get()
}

impl Hydra {
    /// Builds (once) and starts Hydra with its default PBKDF2 cost, and waits until it is ready.
    pub async fn start() -> Hydra {
        let bin = binary();
        let dir = tempfile::Builder::new().prefix("oauth-operator-hydra-").tempdir().expect("temp dir");
        let (public_port, admin_port) = (free_port(), free_port());
        let public = format!("http://127.0.0.1:{public_port}");
        let admin = format!("http://127.0.0.1:{admin_port}");
        let log = dir.path().join("hydra.log");
        let child = spawn(
            Command::new(&bin)
                .args(["serve", "all", "--dev", "--sqa-opt-out"])
                .env("DSN", "memory")
                .env("SECRETS_SYSTEM", "oauth-operator-tests-system-secret-0123456789")
                .env("URLS_SELF_ISSUER", &public)
                .env("SERVE_PUBLIC_HOST", "127.0.0.1")
                .env("SERVE_PUBLIC_PORT", public_port.to_string())
                .env("SERVE_ADMIN_HOST", "127.0.0.1")
                .env("SERVE_ADMIN_PORT", admin_port.to_string())
                .env("LOG_LEVEL", "warn"),
            &log,
        );
        let mut hydra = Hydra { child, admin, public, log, _dir: dir, http: reqwest::Client::new() };
        hydra.wait_ready().await;
        let _ = URLS.set((hydra.admin.clone(), hydra.public.clone()));
        hydra
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("hydra exited ({status}):\n{}", log_tail(&self.log));
            }
            let ready = self.http.get(format!("{}/health/ready", self.admin)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(Instant::now() < deadline, "hydra not ready within 60s:\n{}", log_tail(&self.log));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The client as `GET /admin/clients/{id}` shows it; `None` on 404.
    pub async fn client(&self, id: &str) -> Option<Value> {
        let response = self.http.get(format!("{}/admin/clients/{id}", self.admin)).send().await.expect("GET client");
        match response.status().as_u16() {
            404 => None,
            200 => Some(response.json().await.expect("JSON")),
            other => panic!("GET /admin/clients/{id}: {other}"),
        }
    }

    /// Sends a raw admin request (a change made directly in Hydra, as an administrator would).
    pub async fn admin_call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.admin));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("admin call");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Every client id in Hydra, following the `Link` header's pages.
    pub async fn client_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        let mut url = format!("{}/admin/clients?page_size=500", self.admin);
        loop {
            let response = self.http.get(&url).send().await.expect("list clients");
            let next = response
                .headers()
                .get("link")
                .and_then(|l| l.to_str().ok())
                .and_then(|l| l.split(',').find(|p| p.contains("rel=\"next\"")).map(String::from));
            let page: Vec<Value> = response.json().await.expect("JSON");
            ids.extend(page.iter().filter_map(|c| c["client_id"].as_str().map(String::from)));
            let Some(next) = next else { return ids };
            let target = next.trim().trim_start_matches('<').split('>').next().unwrap_or_default().to_string();
            url = format!("{}{target}", self.admin);
        }
    }

    /// The token endpoint's status for these credentials (`client_credentials` grant): 200 when
    /// they work, 401 when not. `basic`: HTTP Basic, else in the form.
    pub async fn token_status(&self, client_id: &str, secret: &str, basic: bool) -> u16 {
        let mut form = vec![("grant_type", "client_credentials")];
        let mut request = self.http.post(format!("{}/oauth2/token", self.public));
        if basic {
            request = request.basic_auth(form_encoded(client_id), Some(form_encoded(secret)));
        } else {
            form.extend([("client_id", client_id), ("client_secret", secret)]);
        }
        request.form(&form).send().await.expect("POST /oauth2/token").status().as_u16()
    }

    /// The last lines of Hydra's log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }
}

/// HTTP Basic credentials of OAuth clients are form-encoded first (RFC 6749 2.3.1).
pub fn form_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Drop for Hydra {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// The Hydra binary: `HYDRA_BIN`, else built into `target/hydra/` by `tests/hydra/build.sh`.
pub fn binary() -> PathBuf {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hydra/build.sh");
    let out = Command::new("bash").arg(&script).stderr(Stdio::inherit()).output().expect("run tests/hydra/build.sh");
    assert!(out.status.success(), "tests/hydra/build.sh failed");
    let stdout = String::from_utf8(out.stdout).expect("utf-8 path");
    PathBuf::from(stdout.lines().last().expect("build.sh prints the binary").trim())
}
