//! One control plane for a whole test binary, started on first use and stopped at the end.

use std::{
    future::Future,
    panic::{AssertUnwindSafe, catch_unwind},
    sync::{Arc, Mutex},
};

use kube::Client;
use tokio::runtime::Runtime;

use super::{
    ControlPlane,
    emulator::Emulator,
    hydra::Hydra,
    keycloak::Keycloak,
    operator::{API_KEY, Operator},
};

/// The runtime, the control plane with the CRDs installed, an admin client, the backend
/// emulator, Ory Hydra, Keycloak and the operator (which reconciles only resources labelled [`OPERATED`]).
pub struct Env {
    pub rt: Runtime,
    pub operator: Operator,
    pub emu: Emulator,
    pub hydra: Hydra,
    pub keycloak: Keycloak,
    pub cp: ControlPlane,
    pub client: Client,
}

/// The label that puts a resource in the operator's shard.
pub const OPERATED: (&str, &str) = ("e2e", "operated");
/// The operator's resync period in tests.
pub const RESYNC: std::time::Duration = std::time::Duration::from_secs(4);

/// Not started, started, or failed to start (every later test fails fast with the reason).
static ENV: Mutex<Option<Result<Arc<Env>, String>>> = Mutex::new(None);

impl Env {
    /// The shared environment, started by the first caller.
    pub fn get() -> Arc<Env> {
        let mut slot = ENV.lock().unwrap_or_else(|e| e.into_inner());
        let started = slot.get_or_insert_with(|| {
            catch_unwind(AssertUnwindSafe(Env::start)).map(Arc::new).map_err(|panic| {
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            })
        });
        match started {
            Ok(env) => env.clone(),
            Err(reason) => {
                let short: String = reason.chars().take(600).collect();
                panic!("the test control plane did not start: {short}")
            }
        }
    }

    fn start() -> Env {
        let rt =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
        // Keycloak starts slowest: it starts while the rest does.
        let mut keycloak = Keycloak::launch();
        let (cp, client, emu, hydra, operator) = rt.block_on(async {
            let cp = ControlPlane::start().await;
            cp.install_crds().await;
            let client = cp.client().await;
            let version = client.apiserver_version().await.expect("GET /version");
            println!("e2e: kube-apiserver {} with etcd, binaries from {}", version.git_version, cp.assets.display());
            let emu = Emulator::start(&[API_KEY]);
            let hydra = Hydra::start().await;
            keycloak.wait_ready().await;
            let selector = format!("{}={}", OPERATED.0, OPERATED.1);
            let resync = format!("{}s", RESYNC.as_secs());
            let args = ["--resync", &resync, "--selector", &selector, "--leader-elect"];
            let operator = Operator::start(&cp, &client, &emu, &args).await;
            // After the operator's install (its tenant roles): namespace users act through `edit`.
            cp.start_controller_manager(("oauth-operator.dev", "oauthclients")).await;
            (cp, client, emu, hydra, operator)
        });
        Env { rt, operator, emu, hydra, keycloak, cp, client }
    }

    /// The last lines of the shared operator's log, if this binary started the environment
    /// (failure messages of helpers that the benchmark shares).
    pub fn operator_log_tail() -> String {
        match &*ENV.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(Ok(env)) => env.operator.log_tail(),
            _ => String::new(),
        }
    }

    /// Runs a future on the shared runtime.
    pub fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.rt.block_on(fut)
    }

    /// Stops the control plane if it was started. Call once, after the last test.
    pub fn shutdown() {
        let taken = ENV.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(Ok(env)) = taken {
            match Arc::try_unwrap(env) {
                Ok(env) => drop(env),
                Err(_) => eprintln!("e2e: environment still in use at shutdown"),
            }
        }
    }
}

/// A test that runs `body` on the shared environment with an admin client.
pub fn trial<F, Fut>(name: impl Into<String>, body: F) -> libtest_mimic::Trial
where
    F: FnOnce(Client) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    libtest_mimic::Trial::test(name, move || {
        let env = Env::get();
        env.block_on(body(env.client.clone()));
        Ok(())
    })
}
