//! The operator's configuration: flags (or environment) for the process, and a file naming
//! the backends (README, Configuration; access rules in `docs/multi-tenancy.md`).
//!
//! ```yaml
//! backends:
//!   default:
//!     type: wacht
//!     baseUrl: https://api.wacht.dev
//!     deploymentId: dep_123          # optional: key-scoped paths without it
//!     apiKeyFile: /etc/oauth-operator/keys/default
//!     requestsPerSecond: 20          # optional, 0: no limit
//!     timeoutSeconds: 10             # optional
//!   apps-api:
//!     type: oauth-applications       # the OAuth Applications REST API
//!     baseUrl: https://id.example.com
//!     ownerOrgId: org_123            # optional: for OAuthClients that name none
//!     apiKeyEnv: APPS_API_KEY
//!   mcp:
//!     type: mcp-oauth-clients        # the MCP OAuth clients API
//!     baseUrl: https://router.example.com
//!     customerId: cust_123           # optional: the API key's session scope without them
//!     projectId: proj_123
//!     apiKeyFile: /etc/oauth-operator/keys/mcp
//!   hydra:
//!     type: hydra                    # Ory Hydra's admin API (docs/backends/hydra.md)
//!     baseUrl: http://hydra-admin.auth.svc:4445
//!     insecureHttp: true             # an in-cluster admin port without TLS
//!     issuer: https://auth.example.com  # optional: Hydra's public URL, for tokenUrl/issuer keys
//!                                    # no API key for a self-hosted Hydra; Ory Network: apiKeyFile
//!   keycloak:
//!     type: keycloak                 # a Keycloak realm's admin API (docs/backends/keycloak.md)
//!     baseUrl: https://sso.example.com
//!     realm: apps                    # the realm whose clients the operator manages
//!     adminRealm: master             # optional (default master): where the admin client lives
//!     adminClientId: oauth-operator  # a service-account client with realm admin rights
//!     apiKeyFile: /etc/oauth-operator/keys/keycloak   # that client's secret
//!     issuer: https://sso.example.com/realms/apps     # optional: default baseUrl/realms/<realm>
//!   team-b:                          # a backend for one team (docs/multi-tenancy.md)
//!     type: wacht
//!     baseUrl: https://api.wacht.dev
//!     deploymentId: dep_team_b
//!     pinned: true                   # resources cannot choose another deploymentId
//!     allowedNamespaces:             # default: every namespace
//!       names: [team-b]
//!       matchLabels: {oauth-operator.dev/tenant: team-b}
//!     adopt:                         # who may take over what no resource owns; default: nobody
//!       names: [team-b]
//!     apiKeyFile: /etc/oauth-operator/keys/team-b
//! ```

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use serde::Deserialize;

pub use crate::duration::parse_duration;

use crate::backend::{
    Backend, Endpoints, SecretString,
    applications::ApplicationsBackend,
    http::HttpConfig,
    hydra::HydraBackend,
    keycloak::{KeycloakBackend, KeycloakConfig},
    mcp::McpBackend,
    wacht::WachtBackend,
};

/// Flags of `oauth-operator run`.
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// The backends file.
    #[arg(long, env = "OAUTH_OPERATOR_CONFIG", default_value = "/etc/oauth-operator/config.yaml")]
    pub config: PathBuf,
    /// Watch only this namespace; all namespaces when not given.
    #[arg(long, env = "OAUTH_OPERATOR_NAMESPACE")]
    pub namespace: Option<String>,
    /// Reconcile only resources with these labels (a label selector), to shard the work.
    #[arg(long, env = "OAUTH_OPERATOR_SELECTOR")]
    pub selector: Option<String>,
    /// How often a settled resource is compared with the backend again (jittered by 10%).
    #[arg(long, env = "OAUTH_OPERATOR_RESYNC", default_value = "10m", value_parser = parse_duration)]
    pub resync: Duration,
    /// How old an unmanaged backend client must be before an OAuthApp with
    /// `pruneUnmanagedClients` deactivates it (younger ones may be mid-creation).
    #[arg(long, env = "OAUTH_OPERATOR_UNMANAGED_GRACE", default_value = "10m", value_parser = parse_duration)]
    pub unmanaged_grace: Duration,
    /// Reconciles running at once, per resource kind.
    #[arg(long, env = "OAUTH_OPERATOR_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, env = "OAUTH_OPERATOR_HTTP", default_value = "0.0.0.0:8080")]
    pub http: SocketAddr,
    /// Reconcile only while holding the Lease, so that one of several replicas works.
    #[arg(long, env = "OAUTH_OPERATOR_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Name of the Lease.
    #[arg(long, env = "OAUTH_OPERATOR_LEASE_NAME", default_value = "oauth-operator")]
    pub lease_name: String,
    /// Namespace of the Lease (the operator's own).
    #[arg(long, env = "POD_NAMESPACE", default_value = "oauth-operator-system")]
    pub lease_namespace: String,
    /// How long a Lease lasts without renewal; a new leader takes over within it.
    #[arg(long, env = "OAUTH_OPERATOR_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// Log format.
    #[arg(long, env = "OAUTH_OPERATOR_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct File {
    backends: BTreeMap<String, BackendEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BackendEntry {
    #[serde(rename = "type")]
    kind: BackendKind,
    base_url: String,
    api_key_file: Option<PathBuf>,
    /// Name of an environment variable holding the key.
    api_key_env: Option<String>,
    #[serde(default = "default_rps")]
    requests_per_second: u32,
    #[serde(default = "default_timeout")]
    timeout_seconds: u64,
    /// `wacht`: the deployment of OAuthApps that name none.
    deployment_id: Option<String>,
    /// `oauth-applications`: the owner of OAuthClients that name none.
    owner_org_id: Option<String>,
    /// `mcp-oauth-clients`: the customer and project the clients live in.
    customer_id: Option<String>,
    project_id: Option<String>,
    /// `hydra`, `keycloak`: the public issuer URL, for the `tokenUrl` and `issuer` keys of a
    /// Secret (Keycloak's default: `<baseUrl>/realms/<realm>`).
    issuer: Option<String>,
    /// `keycloak`: the realm of the clients, and where and as whom the operator signs in (the
    /// client's secret in `apiKeyFile`/`apiKeyEnv`).
    realm: Option<String>,
    admin_realm: Option<String>,
    admin_client_id: Option<String>,
    /// Which namespaces may use this backend; every namespace when not given.
    allowed_namespaces: Option<AllowedNamespaces>,
    /// Which namespaces may adopt a backend object that no resource owns; none when not given.
    adopt: Option<AllowedNamespaces>,
    /// Resources may not choose their own `deploymentId` or `ownerOrgId`: only the configured
    /// one (or none, when none is configured).
    #[serde(default)]
    pinned: bool,
    /// Allows a plain `http://` base URL for a host other than loopback (an in-cluster service):
    /// the API key then travels in clear text.
    #[serde(default)]
    insecure_http: bool,
    /// A PEM bundle of CAs to trust for this backend (a private CA), besides the public roots.
    ca_file: Option<PathBuf>,
}

/// Namespaces that may use a backend: those named, and those whose labels match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllowedNamespaces {
    #[serde(default)]
    pub names: Vec<String>,
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

/// Who may use a backend, and which backend-side scope they may choose.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// `None`: every namespace.
    pub namespaces: Option<AllowedNamespaces>,
    /// Namespaces that may adopt what no resource owns (made by hand, by another tool, or let
    /// go by an `Orphan` deletion). `None`: no namespace.
    pub adopt: Option<AllowedNamespaces>,
    /// `Some(configured)`: a spec's `deploymentId` / `ownerOrgId` must be unset or equal to it.
    pub pinned_deployment: Option<Option<String>>,
    pub pinned_owner_org: Option<Option<String>>,
}

/// A configured backend and the rules of its use.
#[derive(Clone)]
pub struct Configured {
    pub backend: Arc<dyn Backend>,
    pub access: Access,
    /// `wacht`: the deployment of apps that name none (part of what identifies an app).
    pub deployment_id: Option<String>,
    /// `hydra`, `keycloak`: the public issuer and token endpoint.
    pub endpoints: Option<Endpoints>,
    /// Signs what the operator records where namespace users can edit it (a Secret's
    /// annotations). Derived from the API key, which only the operator holds.
    pub record_key: ring::hmac::Key,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum BackendKind {
    Wacht,
    OauthApplications,
    McpOauthClients,
    Hydra,
    Keycloak,
}

fn default_rps() -> u32 {
    50
}

fn default_timeout() -> u64 {
    10
}

/// The configured backends by name.
pub type Backends = BTreeMap<String, Configured>;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: PathBuf, source: yaml_serde::Error },
    #[error("backend {name}: {message}")]
    Backend { name: String, message: String },
}

/// Reads the backends file and builds a client for each backend.
pub fn load_backends(path: &std::path::Path) -> Result<Backends, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
    parse_backends(&text).map_err(|e| match e {
        ConfigError::Parse { source, .. } => ConfigError::Parse { path: path.into(), source },
        other => other,
    })
}

fn parse_backends(text: &str) -> Result<Backends, ConfigError> {
    let file: File =
        yaml_serde::from_str(text).map_err(|source| ConfigError::Parse { path: PathBuf::new(), source })?;
    let mut backends = Backends::new();
    for (name, e) in file.backends {
        let fail = |message: String| ConfigError::Backend { name: name.clone(), message };
        let misplaced = [
            ("deploymentId", e.deployment_id.is_some(), BackendKind::Wacht),
            ("ownerOrgId", e.owner_org_id.is_some(), BackendKind::OauthApplications),
            ("customerId", e.customer_id.is_some(), BackendKind::McpOauthClients),
            ("projectId", e.project_id.is_some(), BackendKind::McpOauthClients),
            ("issuer", e.issuer.is_some() && e.kind != BackendKind::Keycloak, BackendKind::Hydra),
            ("realm", e.realm.is_some(), BackendKind::Keycloak),
            ("adminRealm", e.admin_realm.is_some(), BackendKind::Keycloak),
            ("adminClientId", e.admin_client_id.is_some(), BackendKind::Keycloak),
        ];
        if let Some((field, ..)) = misplaced.iter().find(|(_, set, kind)| *set && *kind != e.kind) {
            return Err(fail(format!("{field} does not apply to a backend of this type")));
        }
        let api_key = match (&e.api_key_file, &e.api_key_env) {
            (Some(file), None) => std::fs::read_to_string(file)
                .map(|k| k.trim().to_string())
                .map_err(|err| fail(format!("apiKeyFile {}: {err}", file.display())))?,
            (None, Some(var)) => std::env::var(var).map_err(|_| fail(format!("apiKeyEnv: {var} is not set")))?,
            // A self-hosted Hydra's admin port has no authentication.
            (None, None) if e.kind == BackendKind::Hydra => String::new(),
            _ => return Err(fail("set exactly one of apiKeyFile and apiKeyEnv".into())),
        };
        // Without an API key the records are signed with the base URL's digest, which does
        // not keep them secret: for Hydra the client's `owner` is what counts (docs/multi-tenancy.md).
        let record_key = record_key(if api_key.is_empty() { &e.base_url } else { &api_key });
        let base_url =
            reqwest::Url::parse(&e.base_url).map_err(|err| fail(format!("baseUrl {:?}: {err}", e.base_url)))?;
        check_scheme(&base_url, e.insecure_http).map_err(fail)?;
        let keycloak = match e.kind {
            BackendKind::Keycloak => Some(KeycloakConfig {
                realm: e.realm.clone().ok_or_else(|| fail("a keycloak backend needs realm".into()))?,
                admin_realm: e.admin_realm.clone().unwrap_or_else(|| "master".into()),
                admin_client_id: e
                    .admin_client_id
                    .clone()
                    .ok_or_else(|| fail("a keycloak backend needs adminClientId".into()))?,
            }),
            _ => None,
        };
        let issuer = match (&e.issuer, &keycloak) {
            (Some(text), _) => {
                let url = reqwest::Url::parse(text).map_err(|err| fail(format!("issuer {text:?}: {err}")))?;
                Some(url.as_str().trim_end_matches('/').to_string())
            }
            (None, Some(k)) => Some(KeycloakBackend::issuer(&base_url, &k.realm)),
            (None, None) => None,
        };
        let endpoints = issuer.map(|issuer| {
            let path = if keycloak.is_some() { "protocol/openid-connect/token" } else { "oauth2/token" };
            Endpoints { token_url: format!("{issuer}/{path}"), issuer }
        });
        let http = HttpConfig {
            base_url,
            api_key: SecretString::new(api_key),
            timeout: Duration::from_secs(e.timeout_seconds),
            requests_per_second: e.requests_per_second,
            ca_pem: match &e.ca_file {
                Some(file) => {
                    Some(std::fs::read(file).map_err(|err| fail(format!("caFile {}: {err}", file.display())))?)
                }
                None => None,
            },
        };
        let built = match e.kind {
            BackendKind::Wacht => {
                WachtBackend::new(http, e.deployment_id.clone()).map(|b| Arc::new(b) as Arc<dyn Backend>)
            }
            BackendKind::OauthApplications => {
                ApplicationsBackend::new(http, e.owner_org_id.clone()).map(|b| Arc::new(b) as Arc<dyn Backend>)
            }
            BackendKind::McpOauthClients => {
                McpBackend::new(http, e.customer_id, e.project_id).map(|b| Arc::new(b) as Arc<dyn Backend>)
            }
            BackendKind::Hydra => HydraBackend::new(http).map(|b| Arc::new(b) as Arc<dyn Backend>),
            BackendKind::Keycloak => {
                let config = keycloak.expect("a keycloak backend's settings");
                KeycloakBackend::new(http, config).map(|b| Arc::new(b) as Arc<dyn Backend>)
            }
        };
        let backend = built.map_err(|err| fail(err.to_string()))?;
        let access = Access {
            namespaces: e.allowed_namespaces,
            adopt: e.adopt,
            pinned_deployment: e.pinned.then(|| e.deployment_id.clone()),
            pinned_owner_org: e.pinned.then(|| e.owner_org_id.clone()),
        };
        backends.insert(name, Configured { backend, access, deployment_id: e.deployment_id, endpoints, record_key });
    }
    Ok(backends)
}

/// `https`, or `http` to a loopback host, or `http` anywhere with `insecureHttp: true` (logged).
fn check_scheme(url: &reqwest::Url, insecure_http: bool) -> Result<(), String> {
    let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" if insecure_http => {
            tracing::warn!(base_url = %url, "insecureHttp: the API key of this backend travels in clear text");
            Ok(())
        }
        "http" => Err(format!(
            "baseUrl {url}: plain http sends the API key in clear text; use https, or set insecureHttp: true for an in-cluster service"
        )),
        other => Err(format!("baseUrl {url}: scheme {other} is not http or https")),
    }
}

/// The HMAC key of a backend's records: a digest of its API key under a label of its own, so
/// the key itself is never used for anything but the backend.
fn record_key(api_key: &str) -> ring::hmac::Key {
    let mut input = b"oauth-operator.dev/record\0".to_vec();
    input.extend_from_slice(api_key.as_bytes());
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, ring::digest::digest(&ring::digest::SHA256, &input).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_file() {
        // PATH is set wherever tests run.
        let text = "backends:\n  default:\n    type: wacht\n    baseUrl: http://127.0.0.1:1\n    apiKeyEnv: PATH\n";
        let backends = parse_backends(text).expect("valid file");
        assert!(backends.contains_key("default"));
        let missing = "backends:\n  b:\n    type: wacht\n    baseUrl: https://x\n";
        let err = parse_backends(missing).err().expect("refused").to_string();
        assert!(err.contains("exactly one of apiKeyFile and apiKeyEnv"), "{err}");
        let unknown = "backends:\n  b:\n    type: other\n    baseUrl: https://x\n";
        assert!(parse_backends(unknown).err().is_some());
        let others = "backends:\n  a:\n    type: oauth-applications\n    baseUrl: https://x\n    ownerOrgId: o\n    apiKeyEnv: PATH\n  m:\n    type: mcp-oauth-clients\n    baseUrl: https://x\n    apiKeyEnv: PATH\n";
        assert_eq!(parse_backends(others).expect("valid file").len(), 2);
        let hydra = "backends:\n  h:\n    type: hydra\n    baseUrl: http://127.0.0.1:4445\n    issuer: http://127.0.0.1:4444/\n";
        let backends = parse_backends(hydra).expect("a self-hosted Hydra needs no API key");
        let endpoints = backends["h"].endpoints.clone().expect("endpoints");
        assert_eq!(endpoints.issuer, "http://127.0.0.1:4444");
        assert_eq!(endpoints.token_url, "http://127.0.0.1:4444/oauth2/token");
        let keycloak = "backends:\n  k:\n    type: keycloak\n    baseUrl: http://127.0.0.1:8080\n    realm: apps\n    adminClientId: op\n    apiKeyEnv: PATH\n";
        let endpoints = parse_backends(keycloak).expect("valid file")["k"].endpoints.clone().expect("endpoints");
        assert_eq!(endpoints.token_url, "http://127.0.0.1:8080/realms/apps/protocol/openid-connect/token");
        let err = parse_backends(&keycloak.replace("    realm: apps\n", "")).err().expect("refused").to_string();
        assert!(err.contains("needs realm"), "{err}");
        let err = parse_backends(&format!("{hydra}    realm: apps\n")).err().expect("refused").to_string();
        assert!(err.contains("realm does not apply"), "{err}");
        let misplaced = "backends:\n  m:\n    type: mcp-oauth-clients\n    baseUrl: https://x\n    deploymentId: d\n    apiKeyEnv: PATH\n";
        let err = parse_backends(misplaced).err().expect("refused").to_string();
        assert!(err.contains("deploymentId does not apply"), "{err}");
    }

    #[test]
    fn plain_http_only_to_loopback_unless_asked() {
        let file = |url: &str, insecure: bool| {
            format!(
                "backends:\n  b:\n    type: wacht\n    baseUrl: {url}\n    apiKeyEnv: PATH\n    insecureHttp: {insecure}\n"
            )
        };
        for url in ["https://api.example.com", "http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:2"] {
            assert!(parse_backends(&file(url, false)).is_ok(), "{url}");
        }
        let err = parse_backends(&file("http://api.example.com", false)).err().expect("refused").to_string();
        assert!(err.contains("clear text") && err.contains("insecureHttp"), "{err}");
        assert!(parse_backends(&file("http://emulator.svc:8080", true)).is_ok(), "opted in");
        assert!(parse_backends(&file("ftp://x", true)).is_err());
    }

    #[test]
    fn a_private_ca_is_read_and_checked_at_start() {
        let dir = tempfile::tempdir().expect("dir");
        let mut params = rcgen::CertificateParams::new(Vec::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&rcgen::KeyPair::generate().expect("key")).expect("CA");
        let (good, bad) = (dir.path().join("ca.pem"), dir.path().join("bad.pem"));
        std::fs::write(&good, ca.pem()).expect("write");
        std::fs::write(&bad, "not a certificate").expect("write");
        let file = |ca: &std::path::Path| {
            format!(
                "backends:\n  b:\n    type: wacht\n    baseUrl: https://id.internal\n    apiKeyEnv: PATH\n    caFile: {}\n",
                ca.display()
            )
        };
        assert!(parse_backends(&file(&good)).is_ok());
        let err = parse_backends(&file(&bad)).err().expect("refused").to_string();
        assert!(err.contains("caFile"), "{err}");
        let err = parse_backends(&file(&dir.path().join("missing.pem"))).err().expect("refused").to_string();
        assert!(err.contains("caFile") && err.contains("missing.pem"), "{err}");
    }

    #[test]
    fn access_rules() {
        let text = "backends:\n  open:\n    type: wacht\n    baseUrl: https://x\n    apiKeyEnv: PATH\n  team:\n    type: wacht\n    baseUrl: https://x\n    apiKeyEnv: PATH\n    deploymentId: dep_t\n    pinned: true\n    allowedNamespaces: {names: [team-b], matchLabels: {tenant: b}}\n    adopt: {names: [team-b]}\n";
        let backends = parse_backends(text).expect("valid file");
        assert_eq!(backends["open"].access, Access::default(), "every namespace, nothing pinned, no adoption");
        assert_eq!(backends["team"].access.adopt.as_ref().map(|a| a.names.clone()), Some(vec!["team-b".to_string()]));
        let team = &backends["team"].access;
        assert_eq!(team.pinned_deployment, Some(Some("dep_t".into())));
        let allowed = team.namespaces.as_ref().expect("restricted");
        assert_eq!(allowed.names, ["team-b"]);
        assert_eq!(allowed.match_labels["tenant"], "b");
        let typo = "backends:\n  b:\n    type: wacht\n    baseUrl: https://x\n    apiKeyEnv: PATH\n    allowedNamespaces: {name: [a]}\n";
        assert!(parse_backends(typo).is_err(), "unknown fields are refused");
    }
}
