//! GitOps integrations checked without a cluster: the Argo CD health check and rotate action
//! against their test cases, with a real Lua interpreter.

use std::process::Command;

#[test]
fn argocd_health_checks_and_actions_pass_their_cases() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/argocd/health_test.lua");
    let out = Command::new("lua5.4")
        .arg(script)
        .output()
        .expect("lua5.4 runs the Argo CD Lua tests: install it (Debian: apt-get install lua5.4)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "Lua test cases failed:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
