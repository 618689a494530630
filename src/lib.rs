//! oauth-operator: OAuthApp and OAuthClient resources reconciled against an identity
//! platform's management API.
#![forbid(unsafe_code)]

pub mod api;
pub mod backend;
pub mod config;
pub mod controller;
pub mod duration;
pub mod keys;
pub mod leader;
pub mod metrics;
pub mod run;
pub mod telemetry;
