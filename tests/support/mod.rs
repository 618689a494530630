//! Shared by the end-to-end tests and the demo.
#![allow(dead_code, unused_imports)] // each user takes what it needs

pub mod controlplane;
pub mod emulator;
pub mod env;
pub mod operator;
pub mod resources;
pub mod samples;
pub mod tools;

pub use controlplane::ControlPlane;
pub use env::Env;

/// A binary of this package. Test and example executables live one folder below the
/// profile folder (`target/debug/deps`, `target/debug/examples`), the binaries in it.
pub fn cargo_bin(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current executable");
    let profile = exe.parent().and_then(std::path::Path::parent).expect("target/<profile>/<folder>/<exe>");
    let path = profile.join(name);
    assert!(path.exists(), "{} is not built: run `cargo build --bins` first", path.display());
    path
}
