//! Go tools the tests run (kstatus, helm), built from the modules pinned under `tests/` into
//! `target/tools/`; Go's build cache makes a second build nearly free.

use std::{path::PathBuf, process::Command};

/// Builds `package` of the Go module in `tests/<module>` into `target/tools/<name>`.
pub fn go_tool(module: &str, package: &str, name: &str) -> PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = root.join("target/tools").join(name);
    let status = Command::new("go")
        .args(["build", "-trimpath", "-o", out.to_str().expect("utf-8"), package])
        .current_dir(root.join("tests").join(module))
        .env("GOFLAGS", "-mod=readonly")
        .status()
        .unwrap_or_else(|e| panic!("go build {package}: {e}"));
    assert!(status.success(), "go build {package} failed");
    out
}
