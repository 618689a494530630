//! Shared by the end-to-end tests and the demo.
#![allow(dead_code, unused_imports)] // each user takes what it needs

pub mod controlplane;
pub mod emulator;
pub mod env;
pub mod samples;

pub use controlplane::ControlPlane;
pub use env::Env;
