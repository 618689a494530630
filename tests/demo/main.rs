//! The demo: a local control plane with the CRDs installed and the samples applied.
//!
//! `cargo run --example demo` runs it through and stops; with `-- --keep` it stays up until
//! Ctrl-C and prints a KUBECONFIG to explore with kubectl.

#[path = "../support/mod.rs"]
mod support;

use std::process::Command;

use kube::{
    Api,
    api::{Patch, PatchParams},
};
use oauth_operator::api::{OAuthApp, OAuthClient};
use support::{ControlPlane, samples::sample};

#[tokio::main]
async fn main() {
    let keep = std::env::args().any(|a| a == "--keep");

    step("starting etcd and kube-apiserver (built from Go modules on first run)");
    let cp = ControlPlane::start().await;
    let client = cp.client().await;
    let version = client.apiserver_version().await.expect("GET /version");
    println!("kube-apiserver {} is ready", version.git_version);

    step("installing the CRDs from crds/");
    for crd in cp.install_crds().await {
        println!("{} is Established", crd.metadata.name.unwrap_or_default());
    }

    step("applying deploy/samples/");
    let ssa = PatchParams::apply("oauth-operator-demo");
    let app = sample("oauthapp.yaml");
    Api::<OAuthApp>::namespaced(client.clone(), "default")
        .patch("mcp-auth", &ssa, &Patch::Apply(&app))
        .await
        .expect("apply the OAuthApp sample");
    let web = sample("oauthclient.yaml");
    Api::<OAuthClient>::namespaced(client.clone(), "default")
        .patch("web", &ssa, &Patch::Apply(&web))
        .await
        .expect("apply the OAuthClient sample");

    step("kubectl get oauth");
    kubectl(&cp, &["get", "oauth", "-o", "wide"]);
    step("kubectl explain oauthclient.spec.redirectUris");
    kubectl(&cp, &["explain", "oauthclient.spec.redirectUris"]);
    step("an invalid client is refused by the CRD's CEL rules");
    kubectl_stdin(&cp, &["apply", "-f", "-"], INVALID_CLIENT);

    println!("\nThe controllers come with the reconciler work; until then resources stay unreconciled.");
    if keep {
        println!("\nexport KUBECONFIG={}\nPress Ctrl-C to stop.", cp.kubeconfig.display());
        tokio::signal::ctrl_c().await.expect("wait for Ctrl-C");
    }
    drop(cp);
}

const INVALID_CLIENT: &str = "apiVersion: oauth-operator.dev/v1alpha1
kind: OAuthClient
metadata: {name: insecure}
spec:
  appRef: {name: mcp-auth}
  grantTypes: [authorization_code]
  redirectUris: ['http://app.example.com/callback#frag']
";

fn step(text: &str) {
    println!("\n== {text}");
}

fn kubectl(cp: &ControlPlane, args: &[&str]) {
    kubectl_stdin(cp, args, "");
}

fn kubectl_stdin(cp: &ControlPlane, args: &[&str], input: &str) {
    use std::io::Write;
    let mut child = Command::new(cp.bin("kubectl"))
        .env("KUBECONFIG", &cp.kubeconfig)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("run kubectl");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    child.wait().expect("wait for kubectl");
}
