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
pub mod tools;

pub use controlplane::ControlPlane;
pub use env::Env;

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
