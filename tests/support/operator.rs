//! `oauth-operator run` as its own process, authorised only by the RBAC in `deploy/` through a
//! ServiceAccount token, configured with backends on the emulator.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use k8s_openapi::api::{authentication::v1::TokenRequest, core::v1::ServiceAccount};
use kube::{
    Api, Client,
    api::{DynamicObject, Patch, PatchParams, PostParams},
    core::GroupVersionKind,
    discovery::{Scope, pinned_kind},
};

use super::{ControlPlane, cargo_bin, emulator::Emulator};

pub const NAMESPACE: &str = "oauth-operator-system";
pub const SERVICE_ACCOUNT: &str = "oauth-operator";
/// The user the API server sees for the operator.
pub const USER: &str = "system:serviceaccount:oauth-operator-system:oauth-operator";
/// Who may adopt what no resource owns on the `default`, `apps`, `mcp` and `hydra` backends: the
/// namespaces the platform labels so (a namespace user cannot label their own namespace).
pub const ADOPT: &str = "{matchLabels: {oauth-operator.dev/adopt: allowed}}";
/// An API key the emulator accepts, and one it does not.
pub const API_KEY: &str = "operator-key";

pub struct Operator {
    child: Child,
    /// Its identity (`POD_NAME`), e.g. for the Lease holder.
    pub name: String,
    pub log: PathBuf,
    pub http: String,
    /// Whether to keep the log as `target/e2e-operator.log` (the first operator of a run).
    keep_log: bool,
    /// The test binary that started it, to keep its log under `target/e2e-logs/`.
    binary: String,
}

/// `RUST_LOG` of the operators started from then on: `debug` unless set (the tests read the
/// debug log, for one thing to prove it holds no secret); the benchmark measures `info`.
pub static LOG_LEVEL: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

impl Operator {
    /// Installs `deploy/operator/`'s namespace, RBAC and tenant roles, then starts the operator with a
    /// token of its ServiceAccount and waits until it is ready. Backends: `default` (the
    /// emulator, valid key) and `wrong-key` (the emulator, a key it refuses). `args` are added to
    /// `oauth-operator run`.
    pub async fn start(cp: &ControlPlane, admin: &Client, emu: &Emulator, args: &[&str]) -> Operator {
        let mut operator = Operator::launch(cp, admin, emu, args).await;
        operator.wait_ready().await;
        operator
    }

    /// As [`Operator::start`], without waiting for readiness.
    pub async fn launch(cp: &ControlPlane, admin: &Client, emu: &Emulator, args: &[&str]) -> Operator {
        Operator::launch_as(cp, admin, emu, SERVICE_ACCOUNT, args).await
    }

    /// As [`Operator::launch`], with a token of another ServiceAccount of the operator's
    /// namespace (which the caller has bound to some RBAC).
    pub async fn launch_as(
        cp: &ControlPlane,
        admin: &Client,
        emu: &Emulator,
        service_account: &str,
        args: &[&str],
    ) -> Operator {
        static LAUNCHED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = LAUNCHED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = if n == 0 { "operator".to_string() } else { format!("operator-{n}") };
        for file in ["namespace.yaml", "rbac.yaml", "tenant-roles.yaml"].map(|f| format!("deploy/operator/{f}")) {
            apply_manifest(admin, &file).await;
        }
        let dir = cp.dir();
        let token = service_account_token(admin, NAMESPACE, service_account).await;
        let kubeconfig = cp.token_kubeconfig(&name, &token);
        fs::write(dir.join("api-key"), API_KEY).expect("write key");
        fs::write(dir.join("wrong-key"), "not-a-key").expect("write key");
        fs::write(dir.join("keycloak-secret"), super::keycloak::ADMIN_SECRET).expect("write key");
        let config = dir.join(format!("{name}.yaml"));
        // Hydra's admin port takes no key; its issuer fills the tokenUrl and issuer keys.
        let hydra = super::hydra::urls().map_or(String::new(), |(admin, public)| {
            format!(
                "  hydra: {{type: hydra, baseUrl: '{admin}', issuer: '{public}', requestsPerSecond: 0, adopt: {ADOPT}}}
  hydra-slow: {{type: hydra, baseUrl: '{admin}', requestsPerSecond: 10}}
"
            )
        });
        let keycloak = super::keycloak::url().map_or(String::new(), |url| {
            format!(
                "  keycloak: {{type: keycloak, baseUrl: '{url}', realm: {realm}, adminClientId: {admin}, apiKeyFile: '{key}', requestsPerSecond: 0, adopt: {ADOPT}}}
  keycloak-slow: {{type: keycloak, baseUrl: '{url}', realm: {realm}, adminClientId: {admin}, apiKeyFile: '{key}', requestsPerSecond: 10}}
",
                realm = super::keycloak::REALM,
                admin = super::keycloak::ADMIN_CLIENT,
                key = dir.join("keycloak-secret").display(),
            )
        });
        fs::write(
            &config,
            format!(
                "backends:
{hydra}{keycloak}  default: {{type: wacht, baseUrl: '{url}', deploymentId: dep_e2e, apiKeyFile: '{key}', requestsPerSecond: 0, adopt: {ADOPT}}}
  wrong-key: {{type: wacht, baseUrl: '{url}', apiKeyFile: '{wrong}'}}
  slow: {{type: wacht, baseUrl: '{url}', deploymentId: dep_e2e, apiKeyFile: '{key}', requestsPerSecond: 10}}
  apps: {{type: oauth-applications, baseUrl: '{url}', ownerOrgId: org_e2e, apiKeyFile: '{key}', requestsPerSecond: 0, adopt: {ADOPT}}}
  apps-wrong-key: {{type: oauth-applications, baseUrl: '{url}', ownerOrgId: org_e2e, apiKeyFile: '{wrong}'}}
  mcp: {{type: mcp-oauth-clients, baseUrl: '{url}', customerId: cust_e2e, apiKeyFile: '{key}', requestsPerSecond: 0, adopt: {ADOPT}}}
  mcp-wrong-key: {{type: mcp-oauth-clients, baseUrl: '{url}', apiKeyFile: '{wrong}'}}
  team-c-only: {{type: wacht, baseUrl: '{url}', deploymentId: dep_e2e, apiKeyFile: '{key}', requestsPerSecond: 0, allowedNamespaces: {{names: [team-c]}}}}
  labelled: {{type: wacht, baseUrl: '{url}', deploymentId: dep_e2e, apiKeyFile: '{key}', requestsPerSecond: 0, allowedNamespaces: {{matchLabels: {{oauth-operator.dev/tenant: allowed}}}}}}
  pinned: {{type: wacht, baseUrl: '{url}', deploymentId: dep_e2e, apiKeyFile: '{key}', requestsPerSecond: 0, pinned: true}}
",
                url = emu.url,
                key = dir.join("api-key").display(),
                wrong = dir.join("wrong-key").display(),
            ),
        )
        .expect("write operator config");

        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
        let http = format!("127.0.0.1:{port}");
        let log = dir.join(format!("{name}.log"));
        let out = fs::File::create(&log).expect("operator log");
        let child = Command::new(cargo_bin("oauth-operator"))
            .args(["run", "--config", config.to_str().expect("utf-8"), "--http", &http])
            .args(args)
            .env("KUBECONFIG", &kubeconfig)
            .env("POD_NAME", name.as_str())
            .env("RUST_LOG", LOG_LEVEL.get().copied().unwrap_or("debug"))
            .env("OAUTH_OPERATOR_LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("start oauth-operator");
        let binary = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().split('-').next().unwrap_or_default().to_string()))
            .unwrap_or_default();
        Operator { child, name, log, http, keep_log: n == 0, binary }
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.is_ready().await {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("oauth-operator exited ({status}):\n{}", self.log_tail());
            }
            assert!(Instant::now() < deadline, "oauth-operator not ready:\n{}", self.log_tail());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn is_ready(&self) -> bool {
        reqwest::get(format!("http://{}/readyz", self.http)).await.is_ok_and(|r| r.status().is_success())
    }

    /// The process id, e.g. to read its memory and CPU use from `/proc`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process at once, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last lines of the operator's log.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<_> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Operator {
    /// Stops the operator and keeps its log in `target/e2e-operator.log` for a look after the run.
    fn drop(&mut self) {
        self.kill();
        let logs = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/e2e-logs");
        let _ = fs::create_dir_all(&logs);
        let _ = fs::copy(&self.log, logs.join(format!("{}-{}.log", self.binary, self.name)));
        if self.keep_log {
            let _ = fs::copy(&self.log, Path::new(env!("CARGO_MANIFEST_DIR")).join("target/e2e-operator.log"));
        }
    }
}

/// Applies every document of a manifest file (relative to the repository) by server-side apply.
pub async fn apply_manifest(client: &Client, file: &str) {
    apply_objects(client, manifest(file)).await;
}

/// The documents of a manifest file (relative to the repository).
pub fn manifest(file: &str) -> Vec<DynamicObject> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    yaml_serde::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

/// Applies objects by server-side apply, finding each kind through discovery.
pub async fn apply_objects(client: &Client, objects: Vec<DynamicObject>) {
    for obj in objects {
        let types = obj.types.clone().expect("apiVersion and kind");
        let gvk = GroupVersionKind::try_from(&types).expect("valid apiVersion");
        let (resource, caps) = pinned_kind(client, &gvk).await.expect("discover the kind");
        let api: Api<DynamicObject> = match (caps.scope, obj.metadata.namespace.as_deref()) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
            _ => Api::all_with(client.clone(), &resource),
        };
        let name = obj.metadata.name.clone().expect("a name");
        api.patch(&name, &PatchParams::apply("oauth-operator-tests").force(), &Patch::Apply(&obj))
            .await
            .unwrap_or_else(|e| panic!("apply {} {name}: {e}", gvk.kind));
    }
}

/// A ServiceAccount `name` of the operator's namespace with the ClusterRole of
/// `deploy/operator/rbac.yaml` (its rules passed through `rules`) under the same name: an
/// operator of its own, told apart in the audit log.
pub async fn own_service_account(admin: &Client, name: &str, rules: impl Fn(&mut Vec<serde_json::Value>)) {
    let mut objects = manifest("deploy/operator/rbac.yaml");
    objects.retain(|o| {
        matches!(
            o.types.as_ref().map(|t| t.kind.as_str()),
            Some("ClusterRole" | "ClusterRoleBinding" | "ServiceAccount")
        )
    });
    for obj in &mut objects {
        obj.metadata.name = Some(name.into());
        if let Some(list) = obj.data.get_mut("rules").and_then(serde_json::Value::as_array_mut) {
            rules(list);
        }
        if let Some(role_ref) = obj.data.get_mut("roleRef") {
            role_ref["name"] = name.into();
        }
        if let Some(subjects) = obj.data.get_mut("subjects") {
            subjects[0]["name"] = name.into();
        }
    }
    apply_objects(admin, objects).await;
}

/// A token of a ServiceAccount, from the TokenRequest API.
pub async fn service_account_token(client: &Client, namespace: &str, service_account: &str) -> String {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let request: TokenRequest = serde_json::from_value(serde_json::json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"audiences": [], "expirationSeconds": 86400}
    }))
    .expect("token request");
    let response = accounts
        .create_token_request(service_account, &PostParams::default(), &request)
        .await
        .expect("TokenRequest for the operator's ServiceAccount");
    response.status.expect("token").token
}
