//! The install paths against the real API server: the kustomize base and the Helm chart apply
//! (server-side dry run), and render the same thing in substance.

use std::process::{Command, Stdio};

use libtest_mimic::Trial;
use serde_json::Value;

use crate::support::{Env, tools::go_tool};

pub fn trials() -> Vec<Trial> {
    vec![
        Trial::test("install::kustomize_base_applies_server_side", || {
            let docs = render_kustomize();
            server_side_dry_run(&docs);
            Ok(())
        }),
        Trial::test("install::helm_chart_applies_and_matches_kustomize", || {
            helm_matches_kustomize();
            Ok(())
        }),
        Trial::test("install::namespaced_mode_grants_a_role_only", || {
            namespaced_mode_grants_a_role_only();
            Ok(())
        }),
    ]
}

fn kubectl(args: &[&str], input: Option<&str>) -> String {
    let env = Env::get();
    let mut child = Command::new(env.cp.bin("kubectl"))
        .env("KUBECONFIG", &env.cp.kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    if let Some(input) = input {
        use std::io::Write;
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("kubectl");
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

fn render_kustomize() -> String {
    render_overlay("deploy")
}

fn render_overlay(dir: &str) -> String {
    kubectl(&["kustomize", &format!("{}/{dir}", env!("CARGO_MANIFEST_DIR"))], None)
}

fn render_helm() -> String {
    render_helm_with(&[])
}

fn render_helm_with(values: &[&str]) -> String {
    let helm = go_tool("helm", "helm.sh/helm/v3/cmd/helm", "helm");
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/helm/oauth-operator");
    let out = Command::new(helm)
        .args(["template", "oauth-operator", chart, "--namespace", "oauth-operator-system", "--include-crds"])
        .args(values)
        .output()
        .expect("helm template");
    assert!(out.status.success(), "helm template: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

fn server_side_dry_run(docs: &str) {
    let applied = kubectl(&["apply", "--server-side", "--dry-run=server", "--force-conflicts", "-f", "-"], Some(docs));
    for kind in
        ["customresourcedefinition", "clusterrole", "deployment.apps/oauth-operator", "service/oauth-operator-metrics"]
    {
        assert!(applied.contains(kind), "{kind} not applied:\n{applied}");
    }
}

fn parse(docs: &str) -> Vec<Value> {
    yaml_serde::Deserializer::from_str(docs)
        .map(|d| serde::Deserialize::deserialize(d).expect("YAML"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind}/{name} missing"))
}

fn helm_matches_kustomize() {
    let helm_docs = render_helm();
    server_side_dry_run(&helm_docs);
    let (helm, kustomize) = (parse(&helm_docs), parse(&render_kustomize()));
    let names = |docs: &[Value]| {
        let mut v: Vec<String> = docs
            .iter()
            .filter(|d| d["kind"] != "Namespace") // helm install --create-namespace makes it
            .map(|d| format!("{}/{}", d["kind"].as_str().unwrap_or(""), d["metadata"]["name"].as_str().unwrap_or("")))
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&helm), names(&kustomize), "the same objects");
    for (kind, name) in [
        ("ClusterRole", "oauth-operator"),
        ("Role", "oauth-operator-leader"),
        ("ClusterRole", "oauth-operator-edit"),
        ("ClusterRole", "oauth-operator-view"),
    ] {
        assert_eq!(find(&helm, kind, name)["rules"], find(&kustomize, kind, name)["rules"], "{kind} rules");
    }
    // Numbers as floats: kustomize writes the schema's `60.0` as `60`.
    let crd = |docs: &[Value]| {
        numbers_as_floats(&find(docs, "CustomResourceDefinition", "oauthclients.oauth-operator.dev")["spec"])
    };
    assert_eq!(crd(&helm), crd(&kustomize), "the chart carries the same CRDs");
    let pod = |docs: &[Value]| find(docs, "Deployment", "oauth-operator")["spec"]["template"]["spec"].clone();
    let (h, k) = (pod(&helm), pod(&kustomize));
    assert_eq!(h["securityContext"], k["securityContext"]);
    assert_eq!(h["serviceAccountName"], k["serviceAccountName"]);
    let (hc, kc) = (&h["containers"][0], &k["containers"][0]);
    for field in ["securityContext", "resources", "livenessProbe", "readinessProbe", "ports", "env", "volumeMounts"] {
        assert_eq!(hc[field], kc[field], "container {field}");
    }
    for flag in ["--leader-elect", "--log-format=json", "--config=/etc/oauth-operator/config/config.yaml"] {
        assert!(hc["args"].as_array().expect("args").iter().any(|a| a == flag), "helm args lack {flag}");
        assert!(kc["args"].as_array().expect("args").iter().any(|a| a == flag), "kustomize args lack {flag}");
    }
    let config = |docs: &[Value]| {
        let text = find(docs, "ConfigMap", "oauth-operator-config")["data"]["config.yaml"]
            .as_str()
            .expect("config")
            .to_string();
        yaml_serde::from_str::<Value>(&text).expect("config YAML")
    };
    assert_eq!(config(&helm), config(&kustomize), "the same default backends file");
}

/// `deploy/namespaced/` and the chart with `watchNamespace` give the operator a Role in that
/// namespace with the ClusterRole's rules (less the Namespace reads a Role cannot grant), and
/// nothing cluster-wide but the CRDs and the tenant roles.
fn namespaced_mode_grants_a_role_only() {
    let env = Env::get();
    env.block_on(crate::support::resources::namespace(&env.client, "apps"));
    let (overlay_docs, helm_docs) =
        (render_overlay("deploy/namespaced"), render_helm_with(&["--set", "watchNamespace=apps"]));
    server_side_dry_run(&overlay_docs);
    let (overlay, helm, base) = (parse(&overlay_docs), parse(&helm_docs), parse(&render_kustomize()));
    let mut cluster_rules = find(&base, "ClusterRole", "oauth-operator")["rules"].clone();
    cluster_rules.as_array_mut().expect("rules").retain(|r| r["resources"] != serde_json::json!(["namespaces"]));
    for docs in [&overlay, &helm] {
        let role = find(docs, "Role", "oauth-operator");
        assert_eq!(role["metadata"]["namespace"], "apps");
        assert_eq!(role["rules"], cluster_rules, "the ClusterRole's rules, in one namespace");
        assert_eq!(find(docs, "RoleBinding", "oauth-operator")["roleRef"]["kind"], "Role");
        let cluster_scoped: Vec<String> = docs
            .iter()
            .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "ClusterRoleBinding")
            .map(|d| d["metadata"]["name"].as_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(cluster_scoped, ["oauth-operator-edit", "oauth-operator-view"], "no cluster-wide rights");
        let args = &find(docs, "Deployment", "oauth-operator")["spec"]["template"]["spec"]["containers"][0]["args"];
        assert!(args.as_array().expect("args").iter().any(|a| a == "--namespace=apps"), "{args}");
    }
}

fn numbers_as_floats(value: &Value) -> Value {
    match value {
        Value::Number(n) => n.as_f64().map(Value::from).unwrap_or(Value::Null),
        Value::Array(items) => items.iter().map(numbers_as_floats).collect(),
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), numbers_as_floats(v))).collect(),
        other => other.clone(),
    }
}
