//! Generated files must match their sources: `crds/` what `oauth-operator crd` prints,
//! `deploy/argocd/actions.yaml` the Lua files of the actions.

use std::process::Command;

#[test]
fn committed_crds_match_the_generated_ones() {
    let out = Command::new(env!("CARGO_BIN_EXE_oauth-operator")).arg("crd").output().expect("run oauth-operator crd");
    assert!(out.status.success(), "oauth-operator crd failed");
    let generated = String::from_utf8(out.stdout).expect("utf-8 YAML");
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/crds.yaml")).expect("read crds/crds.yaml");
    assert!(
        generated == committed,
        "crds/crds.yaml is stale: run `cargo run -q -- crd > crds/crds.yaml` and commit it"
    );
}

/// The Argo CD actions entry of argocd-cm, built from the Lua files it embeds.
fn argocd_actions() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/argocd/oauth-operator.dev/actions");
    let indent = |file: &str, by: &str| {
        let text = std::fs::read_to_string(dir.join(file)).expect("read Lua");
        text.lines()
            .map(|l| if l.is_empty() { String::new() } else { format!("{by}{l}") })
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!(
        "# Generated from oauth-operator.dev/actions/*.lua (tests/drift.rs checks it).\ndiscovery.lua: |\n{}\ndefinitions:\n  - name: rotate\n    action.lua: |\n{}\n",
        indent("discovery.lua", "  "),
        indent("rotate/action.lua", "      ")
    )
}

#[test]
fn argocd_actions_match_their_lua() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/argocd/actions.yaml");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    if std::env::var_os("UPDATE_GENERATED").is_some() {
        std::fs::write(path, argocd_actions()).expect("write actions.yaml");
        return;
    }
    assert!(
        committed == argocd_actions(),
        "deploy/argocd/actions.yaml is stale: run `UPDATE_GENERATED=1 cargo test --test drift` and commit it"
    );
}

#[test]
fn helm_chart_carries_the_committed_crds() {
    let root = env!("CARGO_MANIFEST_DIR");
    let read = |p: &str| std::fs::read_to_string(format!("{root}/{p}")).expect(p);
    assert!(
        read("deploy/helm/oauth-operator/crds/crds.yaml") == read("crds/crds.yaml"),
        "the chart's CRDs are stale: cp crds/crds.yaml deploy/helm/oauth-operator/crds/crds.yaml"
    );
}

/// The example alerts of `deploy/prometheus/` name only metrics the operator exports.
#[tokio::test]
async fn example_alerts_name_exported_metrics() {
    let rules = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus/alerts.yaml"))
        .expect("read deploy/prometheus/alerts.yaml");
    let issued = k8s_openapi::jiff::Timestamp::now();
    oauth_operator::metrics::secret_age("ns/name", Some(issued), Some(std::time::Duration::from_secs(60)));
    let _ = oauth_operator::metrics::reconcile("drift_check", |_: &()| "failed", async { Err::<(), ()>(()) }).await;
    let exported = oauth_operator::metrics::render();
    let names: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("oauth_operator_"))
        .collect();
    assert!(names.len() >= 3, "{names:?}");
    for name in names {
        assert!(exported.contains(name), "{name} is not exported:\n{exported}");
    }
}
