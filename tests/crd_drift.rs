//! `crds/` must hold exactly what `oauth-operator crd` prints.

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
