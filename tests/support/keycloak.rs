//! Keycloak, fetched from Maven Central by `tests/keycloak/fetch.sh` (or `KEYCLOAK_HOME`), as
//! its own process (the machine's Java) on a free loopback port with an in-memory database,
//! one realm for the operator's clients, and an admin service account; stopped on drop.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use super::controlplane::{free_port, log_tail, spawn, stop};

/// The realm whose clients the operator manages.
pub const REALM: &str = "apps";
/// The admin service account Keycloak makes at its first start (in the `master` realm).
pub const ADMIN_CLIENT: &str = "oauth-operator";
pub const ADMIN_SECRET: &str = "oauth-operator-tests-admin-secret";

pub struct Keycloak {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

/// The base URL of the Keycloak this process started, for the operator's config.
static URL: OnceLock<String> = OnceLock::new();

/// The base URL of the running Keycloak, if one was started.
pub fn url() -> Option<&'static String> {
    URL.get()
}

impl Keycloak {
    /// Fetches (once) and starts Keycloak, and waits until it is ready with the realm made.
    pub async fn start() -> Keycloak {
        let mut keycloak = Keycloak::launch();
        keycloak.wait_ready().await;
        keycloak
    }

    /// Starts the process without waiting (Keycloak takes 10-30 s to start: the caller may
    /// start other things meanwhile, then call [`Keycloak::wait_ready`]).
    pub fn launch() -> Keycloak {
        let home = distribution();
        let dir = tempfile::Builder::new().prefix("oauth-operator-keycloak-").tempdir().expect("temp dir");
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let log = dir.path().join("keycloak.log");
        let child = spawn(
            Command::new(home.join("bin/kc.sh"))
                .args(["start-dev", "--db=dev-mem", "--http-host=127.0.0.1", "--log-level=warn"])
                .arg(format!("--http-port={port}"))
                .env("KC_BOOTSTRAP_ADMIN_CLIENT_ID", ADMIN_CLIENT)
                .env("KC_BOOTSTRAP_ADMIN_CLIENT_SECRET", ADMIN_SECRET)
                .env("JAVA_OPTS_KC_HEAP", "-Xms64m -Xmx512m")
                .env("JAVA_OPTS_APPEND", format!("-Djava.io.tmpdir={}", dir.path().display())),
            &log,
        );
        Keycloak { child, url, log, _dir: dir, http: reqwest::Client::new() }
    }

    /// Waits until Keycloak answers, then makes the realm (admin events on, so that tests can
    /// tell whether the operator wrote a client).
    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(240);
        let mut relaunches = 0;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let tail = log_tail(&self.log);
                // The port was free when chosen, and another process took it before Keycloak
                // (seconds into its start) bound it: start again on another.
                if tail.contains("Port already bound") && relaunches < 3 {
                    relaunches += 1;
                    *self = Keycloak::launch();
                    continue;
                }
                panic!("keycloak exited ({status}):\n{tail}");
            }
            let ready =
                self.http.get(format!("{}/realms/master/.well-known/openid-configuration", self.url)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(Instant::now() < deadline, "keycloak not ready within 240s:\n{}", log_tail(&self.log));
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let realm = json!({"realm": REALM, "enabled": true, "adminEventsEnabled": true});
        let (status, body) = self.admin_call(reqwest::Method::POST, "/admin/realms", Some(realm)).await;
        assert!(matches!(status, 201 | 409), "create realm {REALM}: {status} {body}");
        let _ = URL.set(self.url.clone());
    }

    /// An admin token of the service account.
    async fn admin_token(&self) -> String {
        let url = format!("{}/realms/master/protocol/openid-connect/token", self.url);
        let form = [("grant_type", "client_credentials"), ("client_id", ADMIN_CLIENT), ("client_secret", ADMIN_SECRET)];
        let answer: Value =
            self.http.post(url).form(&form).send().await.expect("admin token").json().await.expect("JSON");
        answer["access_token"].as_str().expect("an access token").to_string()
    }

    /// Sends a raw admin request (a change made in Keycloak's console, as an administrator
    /// would): the status and the JSON answer (`null` when there is none).
    pub async fn admin_call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request =
            self.http.request(method, format!("{}{path}", self.url)).bearer_auth(self.admin_token().await);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("admin call");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// The client with this `clientId` as the admin API shows it; `None` when there is none.
    pub async fn client(&self, client_id: &str) -> Option<Value> {
        let path = format!("/admin/realms/{REALM}/clients?clientId={client_id}");
        let (status, found) = self.admin_call(reqwest::Method::GET, &path, None).await;
        assert_eq!(status, 200, "GET {path}: {found}");
        found.as_array().expect("a list").iter().find(|c| c["clientId"] == client_id).cloned()
    }

    /// Every `clientId` in the realm.
    pub async fn client_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for first in (0..).step_by(500) {
            let path = format!("/admin/realms/{REALM}/clients?first={first}&max=500");
            let (status, page) = self.admin_call(reqwest::Method::GET, &path, None).await;
            assert_eq!(status, 200, "GET {path}");
            let page = page.as_array().cloned().unwrap_or_default();
            ids.extend(page.iter().filter_map(|c| c["clientId"].as_str().map(String::from)));
            if page.len() < 500 {
                return ids;
            }
        }
        ids
    }

    /// How many times a client was written (created, updated, deleted, its scopes changed)
    /// through the admin API, by the realm's admin events.
    pub async fn writes_to(&self, internal_id: &str) -> usize {
        let path = format!("/admin/realms/{REALM}/admin-events?max=100000");
        let (status, events) = self.admin_call(reqwest::Method::GET, &path, None).await;
        assert_eq!(status, 200, "GET {path}");
        let prefix = format!("clients/{internal_id}");
        let events = events.as_array().cloned().unwrap_or_default();
        events.iter().filter(|e| e["resourcePath"].as_str().is_some_and(|p| p.starts_with(&prefix))).count()
    }

    /// The realm's token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/realms/{REALM}/protocol/openid-connect/token", self.url)
    }

    /// The token endpoint's status for these credentials (`client_credentials` grant): 200 when
    /// they work, 401 when not. `basic`: HTTP Basic, else in the form.
    pub async fn token_status(&self, client_id: &str, secret: &str, basic: bool) -> u16 {
        let mut form = vec![("grant_type", "client_credentials")];
        let mut request = self.http.post(self.token_url());
        if basic {
            request =
                request.basic_auth(super::hydra::form_encoded(client_id), Some(super::hydra::form_encoded(secret)));
        } else {
            form.extend([("client_id", client_id), ("client_secret", secret)]);
        }
        request.form(&form).send().await.expect("POST token").status().as_u16()
    }

    /// The last lines of Keycloak's log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }
}

impl Drop for Keycloak {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// The distribution: `KEYCLOAK_HOME`, else fetched into `target/keycloak/` by
/// `tests/keycloak/fetch.sh`.
pub fn distribution() -> PathBuf {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keycloak/fetch.sh");
    let out = Command::new("bash").arg(&script).stderr(Stdio::inherit()).output().expect("run tests/keycloak/fetch.sh");
    assert!(out.status.success(), "tests/keycloak/fetch.sh failed");
    let stdout = String::from_utf8(out.stdout).expect("utf-8 path");
    PathBuf::from(stdout.lines().last().expect("fetch.sh prints the folder").trim())
}
