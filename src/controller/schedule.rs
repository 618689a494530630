//! When a secret with `spec.rotation.every` is due: `every` after it was issued, but after the
//! operator starts no sooner than the resource's turn in a spread, so that an operator back
//! from a long outage does not rotate every overdue secret at once.

use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// The longest spread of overdue rotations after a start.
pub const SPREAD_MAX: Duration = Duration::from_secs(300);

/// When the secret issued at `issued` rotates: `every` later, or at the resource's turn after
/// the operator's `start` if that is later. The turn is fixed by `uid`: a point in the first
/// `min(every / 2, 5 min)` after the start.
pub fn due_at(issued: Timestamp, every: Duration, start: Timestamp, uid: &str) -> Timestamp {
    let window = (every / 2).min(SPREAD_MAX);
    let turn = after(start, offset(uid, window));
    after(issued, every).max(turn)
}

/// `at + d`, the latest representable time past it.
fn after(at: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d).ok().and_then(|d| at.checked_add(d).ok()).unwrap_or(Timestamp::MAX)
}

/// A point in `[0, window)` fixed by `uid`.
fn offset(uid: &str, window: Duration) -> Duration {
    let digest = ring::digest::digest(&ring::digest::SHA256, uid.as_bytes());
    let n = u64::from_le_bytes(digest.as_ref()[..8].try_into().expect("8 bytes"));
    let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
    Duration::from_millis(n % window_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).expect("time")
    }

    #[test]
    fn a_secret_rotates_every_period_after_it_was_issued() {
        let every = Duration::from_secs(3600);
        // Issued well after the start: the spread is long over.
        assert_eq!(due_at(at(7200), every, at(0), "u1"), at(10_800));
    }

    #[test]
    fn overdue_secrets_after_a_long_outage_are_spread_over_five_minutes() {
        let (every, start) = (Duration::from_secs(30 * 24 * 3600), at(100 * 24 * 3600));
        let turns: Vec<Timestamp> = (0..1000).map(|i| due_at(at(0), every, start, &format!("uid-{i}"))).collect();
        assert!(turns.iter().all(|t| *t >= start && *t < after(start, SPREAD_MAX)), "within the spread");
        let first_minute = turns.iter().filter(|t| **t < after(start, Duration::from_secs(60))).count();
        assert!((100..=300).contains(&first_minute), "about a fifth in the first minute, not all: {first_minute}");
        assert_eq!(due_at(at(0), every, start, "uid-7"), turns[7], "a resource keeps its turn");
    }

    #[test]
    fn a_short_period_spreads_over_half_of_it() {
        let every = Duration::from_secs(60);
        let turn = due_at(at(-600), every, at(0), "u1");
        assert!(turn >= at(0) && turn < at(30), "{turn}");
        // Created after the start: one period, whatever its turn.
        assert_eq!(due_at(at(5), every, at(0), "u1"), at(65));
    }
}
