//! End-to-end tests against a real kube-apiserver and etcd (`docs/design.md`, test control plane).
//!
//! One control plane serves the whole binary: it starts with the first test that needs it
//! and stops after the last one, whether tests pass or fail.

#[path = "../support/mod.rs"]
mod support;

mod adoption;
mod backends;
mod brought;
mod crd;
mod gitops;
mod hydra;
mod install;
mod keycloak;
mod keys;
mod quiet;
mod reconcile;
mod rotation;
mod tenancy;

fn main() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let mut trials = crd::trials();
    trials.extend(reconcile::trials());
    trials.extend(install::trials());
    trials.extend(backends::trials());
    trials.extend(tenancy::trials());
    trials.extend(adoption::trials());
    trials.extend(gitops::trials());
    trials.extend(hydra::trials());
    trials.extend(keycloak::trials());
    trials.extend(brought::trials());
    trials.extend(keys::trials());
    trials.extend(rotation::trials());
    if !args.list {
        // Started here, not in a test thread: the processes die with the thread that spawned them.
        support::Env::get();
    }
    let conclusion = libtest_mimic::run(&args, trials);
    // Then the tests that need the cluster to themselves, one at a time.
    let quiet = libtest_mimic::run(&libtest_mimic::Arguments { test_threads: Some(1), ..args }, quiet::trials());
    support::Env::shutdown();
    if conclusion.has_failed() { conclusion.exit_code() } else { quiet.exit_code() }
}
