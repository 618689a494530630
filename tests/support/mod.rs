//! Shared by the end-to-end tests and the demo.
#![allow(dead_code, unused_imports)] // each user takes what it needs

pub mod controlplane;
pub mod emulator;
pub mod env;
pub mod gitops;
pub mod hydra;
pub mod keycloak;
pub mod operator;
pub mod resources;
pub mod samples;
pub mod servers;
pub mod tools;

pub use controlplane::ControlPlane;
pub use env::Env;

/// Builds this package's binaries (with `release`, the release profile) as a plain `cargo
/// build` would: without the variables `cargo run` sets for the example that calls this
/// (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, ...), which build scripts watch (ring's): with them,
/// ring and every crate above it would build again here, and again at the next plain build.
pub fn build_binaries(release: bool) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    command.args(["build", "--quiet", "--bins", "--manifest-path", manifest]);
    if release {
        command.arg("--release");
    }
    let set_by_cargo_run =
        ["CARGO_MANIFEST_DIR", "CARGO_MANIFEST_PATH", "CARGO_CRATE_NAME", "CARGO_BIN_NAME", "CARGO_PRIMARY_PACKAGE"];
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("CARGO_PKG_") || set_by_cargo_run.contains(&key.as_str()) {
            command.env_remove(key);
        }
    }
    assert!(command.status().expect("run cargo build").success(), "cargo build --bins failed");
}

/// A binary of this package. Test and example executables live one folder below the
/// profile folder (`target/debug/deps`, `target/debug/examples`), the binaries in it;
/// `E2E_BIN_DIR` names another folder (say, of a build with symbols, to profile).
pub fn cargo_bin(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current executable");
    let profile = match std::env::var_os("E2E_BIN_DIR") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => exe.parent().and_then(std::path::Path::parent).expect("target/<profile>/<folder>/<exe>").to_path_buf(),
    };
    let path = profile.join(name);
    assert!(path.exists(), "{} is not built: run `cargo build --bins` first", path.display());
    path
}
