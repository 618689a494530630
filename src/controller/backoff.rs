//! Backoff per object after a failed pass: how long to wait, and which watch events may not
//! cut the wait short.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use kube::{Resource, runtime::controller::Action};

use super::key_of;
use crate::backend;

/// Consecutive failures and when to try again, per object (`namespace/name`).
#[derive(Default)]
pub(super) struct Backoffs(Mutex<HashMap<String, Backoff>>);

impl Backoffs {
    /// A pass succeeded: the next failure starts over.
    pub(super) fn forget(&self, key: &str) {
        self.lock().remove(key);
    }

    /// The wait after a failure: exponential per object from 1 s to 5 min, jittered, or
    /// what the backend asked for (`Retry-After`).
    pub(super) fn next(&self, key: &str, trigger: String, asked: Option<Duration>) -> Duration {
        let mut failures = self.lock();
        let entry = failures.entry(key.to_string()).or_insert(Backoff {
            failures: 0,
            not_before: Instant::now(),
            trigger: String::new(),
        });
        entry.failures = entry.failures.saturating_add(1);
        let exponential = Duration::from_secs(1).saturating_mul(1u32 << (entry.failures - 1).min(9));
        let wait = match asked {
            Some(asked) => asked.clamp(backend::MIN_WAIT, backend::MAX_WAIT),
            None => jitter(exponential.min(Duration::from_secs(300)), 0.2),
        };
        entry.not_before = Instant::now().checked_add(wait).unwrap_or_else(Instant::now);
        entry.trigger = trigger;
        wait
    }

    /// How long a pass must still wait: watch events (our own status write, an app's status
    /// fanning out to its clients) must not cut a backoff short. A change by a user (spec,
    /// rotate request, deletion) ends the wait.
    fn hold_off(&self, key: &str, trigger: &str) -> Option<Duration> {
        let failures = self.lock();
        let entry = failures.get(key).filter(|b| b.trigger == trigger)?;
        entry.not_before.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Backoff>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Backoff state of one object.
struct Backoff {
    failures: u32,
    not_before: Instant,
    /// What the user had asked for when it failed (see [`trigger`]).
    trigger: String,
}

/// What a user changes to ask for a new attempt: the spec, the rotate request, a deletion.
pub(super) fn trigger<K: Resource>(obj: &K) -> String {
    let meta = obj.meta();
    let rotate = meta.annotations.as_ref().and_then(|a| a.get(crate::api::ROTATE_ANNOTATION));
    format!("{:?}/{rotate:?}/{}", meta.generation, meta.deletion_timestamp.is_some())
}

/// `d` plus a random share of up to `fraction` of it.
pub(super) fn jitter(d: Duration, fraction: f64) -> Duration {
    let mut byte = [0u8; 2];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut byte);
    let share = f64::from(u16::from_le_bytes(byte)) / f64::from(u16::MAX);
    d.mul_f64(1.0 + fraction * share)
}

/// The requeue for a pass that arrives while its object is backing off, if it does.
pub(super) fn held_off<K: Resource>(backoffs: &Backoffs, obj: &K) -> Option<Action> {
    backoffs.hold_off(&key_of(obj), &trigger(obj)).map(Action::requeue)
}
