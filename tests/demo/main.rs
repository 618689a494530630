//! The demo: a local control plane, the backend emulator, Ory Hydra, Keycloak and the operator
//! (its own process, with the RBAC of `deploy/`), the samples of `deploy/samples/` applied,
//! credentials written, and a rotation on each backend (Hydra's and Keycloak's proven by their
//! own token endpoints).
//!
//! `cargo run --example demo` runs it through and stops; with `-- --keep` it stays up until
//! Ctrl-C and prints a KUBECONFIG to explore with kubectl.

#[path = "../support/mod.rs"]
mod support;

use std::{process::Command, time::Duration};

use kube::{Api, runtime::wait::await_condition};
use oauth_operator::api::{OAuthApp, OAuthClient};
use support::{
    ControlPlane,
    emulator::Emulator,
    hydra::Hydra,
    keycloak::Keycloak,
    operator::{API_KEY, Operator},
};

#[tokio::main]
async fn main() {
    let keep = std::env::args().any(|a| a == "--keep");
    // The demo runs the operator and the emulator binaries: built if needed.
    support::build_binaries(false);

    // Keycloak takes longest to start: it starts first, and is waited for after the rest.
    let mut keycloak = Keycloak::launch();
    step("starting etcd and kube-apiserver (built from Go modules on first run)");
    let cp = ControlPlane::start().await;
    let client = cp.client().await;
    let version = client.apiserver_version().await.expect("GET /version");
    println!("kube-apiserver {} is ready", version.git_version);
    for crd in cp.install_crds().await {
        println!("{} is Established", crd.metadata.name.unwrap_or_default());
    }

    step(
        "starting the backend emulator, Ory Hydra (built from Go modules on first run), Keycloak (from Maven Central on first run) and the operator (ServiceAccount token, deploy/operator/rbac.yaml)",
    );
    let emu = Emulator::start(&[API_KEY]);
    println!("emulator at {}", emu.url);
    let hydra = Hydra::start().await;
    println!("hydra admin API at {} (backend \"hydra\" of the operator)", hydra.admin);
    println!("hydra token endpoint: {}/oauth2/token", hydra.public);
    keycloak.wait_ready().await;
    println!("keycloak admin API at {} (backend \"keycloak\" of the operator)", keycloak.url);
    println!("keycloak token endpoint: {}", keycloak.token_url());
    let operator = Operator::start(&cp, &client, &emu, &["--resync", "30s", "--leader-elect"]).await;
    println!("oauth-operator is ready (health on http://{}/readyz)", operator.http);

    step("kubectl apply -f deploy/samples/");
    kubectl(&cp, &["apply", "--server-side", "-f", concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/samples/")]);
    let apps: Api<OAuthApp> = Api::namespaced(client.clone(), "default");
    let clients: Api<OAuthClient> = Api::namespaced(client.clone(), "default");
    let started = std::time::Instant::now();
    wait_ready(&apps, "mcp-auth").await;
    wait_ready(&clients, "web").await;
    println!("both Ready {:?} after the apply", started.elapsed());
    kubectl(&cp, &["get", "oauth", "-o", "wide"]);

    step("the Secret web-oauth: its keys (never its values)");
    kubectl(
        &cp,
        &["get", "secret", "web-oauth", "-o", "go-template={{range $k, $v := .data}}{{$k}}{{\"\\n\"}}{{end}}"],
    );
    let (id, secret) = credentials(&cp, "web-oauth").await;
    let redirect = "https://app.example.com/oauth/callback";
    println!(
        "the emulator's token endpoint accepts these credentials: HTTP {}",
        emu.token_status(&id, &secret, true, redirect).await
    );

    step("rotating: kubectl annotate oauthclient web oauth-operator.dev/rotate=demo --overwrite");
    kubectl(&cp, &["annotate", "oauthclient", "web", "oauth-operator.dev/rotate=demo", "--overwrite"]);
    let handled = |c: Option<&OAuthClient>| {
        c.and_then(|c| c.status.as_ref()).and_then(|s| s.last_handled_rotate_request.as_deref()) == Some("demo")
    };
    tokio::time::timeout(Duration::from_secs(30), await_condition(clients.clone(), "web", handled))
        .await
        .expect("rotated within 30s")
        .expect("watch");
    let (_, rotated) = credentials(&cp, "web-oauth").await;
    println!("secret changed: {}", if rotated != secret { "yes" } else { "no" });
    println!("old secret at the token endpoint: HTTP {}", emu.token_status(&id, &secret, true, redirect).await);
    println!("new secret at the token endpoint: HTTP {}", emu.token_status(&id, &rotated, true, redirect).await);
    kubectl(
        &cp,
        &[
            "get",
            "oauthclient",
            "web",
            "-o",
            "jsonpath={.status.lastHandledRotateRequest} {.status.lastRotatedAt}{\"\\n\"}",
        ],
    );

    let hydra_token = async |id: &str, secret: &str| hydra.token_status(id, secret, true).await;
    let sample = ("orders-worker", "orders-worker-hydra", "oauthclient-hydra.yaml");
    server_step(&cp, &clients, "Ory Hydra", sample, hydra_token).await;
    let keycloak_token = async |id: &str, secret: &str| keycloak.token_status(id, secret, true).await;
    let sample = ("billing", "billing-keycloak", "oauthclient-keycloak.yaml");
    server_step(&cp, &clients, "Keycloak", sample, keycloak_token).await;

    step("a secret the platform brings: orders-api (deploy/samples/oauthclient-secret-ref.yaml) waits for its Secret");
    kubectl(&cp, &["get", "oauthclient", "orders-api", "-o", "jsonpath={.status.conditions[0].message}{\"\\n\"}"]);
    println!("creating the Secret orders-api-credentials, as External Secrets would");
    let brought = "brought-by-the-platform-0123456789";
    let literal = format!("--from-literal=client_secret={brought}");
    kubectl(&cp, &["create", "secret", "generic", "orders-api-credentials", &literal]);
    wait_ready(&clients, "orders-api").await;
    let id = client_id(&cp, "orders-api-keycloak").await;
    println!(
        "client_credentials token from Keycloak with the platform's secret: HTTP {}",
        keycloak.token_status(&id, brought, true).await
    );

    step("the app's domain: DomainVerified until the CNAME exists");
    kubectl(&cp, &["get", "oauthapp", "mcp-auth", "-o", "jsonpath={.status.cnameTarget}{\"\\n\"}"]);
    kubectl(&cp, &["describe", "oauthclient", "web"]);

    if keep {
        println!("\nexport KUBECONFIG={}\nPress Ctrl-C to stop.", cp.kubeconfig.display());
        tokio::signal::ctrl_c().await.expect("wait for Ctrl-C");
    }
    drop(operator);
    drop(keycloak);
    drop(hydra);
    drop(emu);
    drop(cp);
}

/// A sample's client on a real server: its Secret's keys, a token with its credentials, and
/// a rotation (the old secret refused, the new one accepted), each at the server's own token
/// endpoint.
async fn server_step(
    cp: &ControlPlane,
    clients: &Api<OAuthClient>,
    server: &str,
    (name, secret, file): (&str, &str, &str),
    token: impl AsyncFn(&str, &str) -> u16,
) {
    step(&format!("{server}: the client {name} (deploy/samples/{file})"));
    wait_ready(clients, name).await;
    kubectl(cp, &["get", "secret", secret, "-o", "go-template={{range $k, $v := .data}}{{$k}}{{\"\\n\"}}{{end}}"]);
    let (id, old) = credentials(cp, secret).await;
    println!("client_credentials token from {server} with the Secret's credentials: HTTP {}", token(&id, &old).await);
    kubectl(cp, &["annotate", "oauthclient", name, "oauth-operator.dev/rotate=demo", "--overwrite"]);
    let handled = |c: Option<&OAuthClient>| {
        c.and_then(|c| c.status.as_ref()).and_then(|s| s.last_handled_rotate_request.as_deref()) == Some("demo")
    };
    tokio::time::timeout(Duration::from_secs(30), await_condition(clients.clone(), name, handled))
        .await
        .expect("rotated within 30s")
        .expect("watch");
    let (_, new) = credentials(cp, secret).await;
    println!("after the rotation, old secret at {server}: HTTP {}", token(&id, &old).await);
    println!("after the rotation, new secret at {server}: HTTP {}", token(&id, &new).await);
}

async fn wait_ready<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + serde::Serialize + 'static,
{
    let ready = |obj: Option<&K>| {
        let value = obj.map(|o| serde_json::to_value(o).expect("json")).unwrap_or_default();
        value["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
    };
    tokio::time::timeout(Duration::from_secs(30), await_condition(api.clone(), name, ready))
        .await
        .unwrap_or_else(|_| panic!("{name} not Ready within 30s"))
        .expect("watch");
}

/// The client id of a credentials Secret.
async fn client_id(cp: &ControlPlane, name: &str) -> String {
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(cp.client().await, "default");
    let data = secrets.get(name).await.unwrap_or_else(|e| panic!("Secret {name}: {e}")).data.expect("data");
    String::from_utf8(data["client_id"].0.clone()).expect("utf-8")
}

async fn credentials(cp: &ControlPlane, name: &str) -> (String, String) {
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(cp.client().await, "default");
    let data = secrets.get(name).await.unwrap_or_else(|e| panic!("Secret {name}: {e}")).data.expect("data");
    let text = |k: &str| String::from_utf8(data[k].0.clone()).expect("utf-8");
    (text("client_id"), text("client_secret"))
}

fn step(text: &str) {
    println!("\n== {text}");
}

fn kubectl(cp: &ControlPlane, args: &[&str]) {
    let status =
        Command::new(cp.bin("kubectl")).env("KUBECONFIG", &cp.kubeconfig).args(args).status().expect("run kubectl");
    assert!(status.success(), "kubectl {args:?} failed");
}
