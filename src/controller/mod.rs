//! The two reconcilers and what they share. `client` and `app` are the passes; `credentials`
//! and `desired` decide, without I/O, what a pass does; `target` resolves where a client lives;
//! `secret`, `status` and `tenancy` keep the rules of what is written, and for whom.

mod app;
mod backoff;
mod brought;
mod census;
mod client;
pub mod conditions;
mod context;
mod credentials;
mod deletion;
pub mod desired;
mod error;
mod fields;
mod lists;
mod managed;
mod names;
mod registered;
mod rotation;
mod schedule;
pub mod secret;
mod status;
mod target;
mod tenancy;
mod watch;
mod writes;

pub use app::run as run_apps;
use backoff::{held_off, trigger};
pub use client::run as run_clients;
pub use context::Context;
use error::error_policy;
pub use error::{Error, Waiting};
use status::{conclude, current, prelude, write_status};
pub use watch::{config as watch_config, scoped};

/// The field manager of every write.
pub const MANAGER: &str = "oauth-operator";

/// `namespace/name`, the key of per-object state.
fn key_of<K: kube::Resource>(obj: &K) -> String {
    format!(
        "{}/{}",
        obj.meta().namespace.as_deref().unwrap_or_default(),
        obj.meta().name.as_deref().unwrap_or_default()
    )
}
