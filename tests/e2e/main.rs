//! End-to-end tests against a real kube-apiserver and etcd (DESIGN.md section 6).
//!
//! One control plane serves the whole binary: it starts with the first test that needs it
//! and stops after the last one, whether tests pass or fail.

#[path = "../support/mod.rs"]
mod support;

mod crd;

fn main() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let trials = crd::trials();
    if !args.list {
        // Started here, not in a test thread: the processes die with the thread that spawned them.
        support::Env::get();
    }
    let conclusion = libtest_mimic::run(&args, trials);
    support::Env::shutdown();
    conclusion.exit_code()
}
