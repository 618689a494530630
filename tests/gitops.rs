//! GitOps integrations checked without a cluster: the Argo CD health check and rotate action
//! against their test cases, in the engine Argo CD runs them in (gopher-lua, with the
//! libraries Argo CD opens), built from the Go module in `tests/argocd/`.

use std::process::Command;

#[path = "support/tools.rs"]
mod tools;

const CASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/argocd/cases.json");

#[test]
fn argocd_health_checks_and_actions_pass_their_cases() {
    let engine = tools::go_tool("argocd", ".", "argocd-lua");
    let out = Command::new(engine).args(["test", CASES]).output().expect("run argocd-lua");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "Lua test cases failed:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

/// Every reason the operator sets on `Ready` has a health case (the DomainVerified reasons
/// aside), so a new reason cannot reach Argo CD untested.
#[test]
fn every_ready_reason_has_a_health_case() {
    let source = include_str!("../src/controller/conditions.rs");
    let module = source.split("pub mod reason {").nth(1).and_then(|s| s.split('}').next()).expect("mod reason");
    let cases = std::fs::read_to_string(CASES).expect("cases");
    let reasons: Vec<&str> = module
        .lines()
        .filter_map(|line| line.trim().strip_prefix("pub const ")?.split('"').nth(1))
        .filter(|reason| !["Verified", "Pending"].contains(reason))
        .collect();
    assert!(reasons.len() > 10, "read the reasons: {reasons:?}");
    for reason in reasons {
        assert!(cases.contains(&format!("\"reason\": \"{reason}\"")), "no health case for reason {reason}");
    }
}
