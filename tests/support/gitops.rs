//! How GitOps tools read a live resource: kstatus (Flux) and the Argo CD health check, each
//! computed by the real library or engine, built from the Go modules under `tests/`.

use std::{io::Write, process::Command};

use serde_json::Value;

use super::{ControlPlane, tools::go_tool};

/// The kstatus status of an object of this operator (`Current`, `InProgress`, `Failed`, ...).
pub fn kstatus(cp: &ControlPlane, resource: &str, ns: &str, name: &str) -> String {
    let tool = go_tool("kstatus", ".", "kstatus");
    let kubeconfig = cp.kubeconfig.to_str().expect("utf-8");
    let out = Command::new(&tool)
        .args([kubeconfig, "oauth-operator.dev", "v1alpha1", resource, ns, name])
        .output()
        .expect("run kstatus");
    assert!(out.status.success(), "kstatus {name}: {}", String::from_utf8_lossy(&out.stderr));
    let result: Value = serde_json::from_slice(&out.stdout).expect("kstatus JSON");
    result["status"].as_str().expect("a status").to_string()
}

/// `(status, message)` of `deploy/argocd/`'s health check for a live object (as JSON), run in
/// Argo CD's Lua engine.
pub fn argocd_health(obj: &Value) -> (String, String) {
    let engine = go_tool("argocd", ".", "argocd-lua");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/argocd/oauth-operator.dev/health/health.lua");
    let mut child = Command::new(engine)
        .args(["run", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run argocd-lua");
    child.stdin.take().expect("stdin").write_all(obj.to_string().as_bytes()).expect("write the object");
    let out = child.wait_with_output().expect("argocd-lua");
    assert!(out.status.success(), "argocd-lua: {}", String::from_utf8_lossy(&out.stderr));
    let health: Value = serde_json::from_slice(&out.stdout).expect("health JSON");
    let text = |key: &str| health[key].as_str().unwrap_or_default().to_string();
    (text("status"), text("message"))
}
