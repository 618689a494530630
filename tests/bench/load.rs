//! The latency runs' samples, and what loaded the API server during them, second by second:
//! the create → Secret times of the clients created in each second beside the API requests of
//! that second (by user, the operator's by verb and resource) and the slowest of them as the
//! audit log times them. A tail that only one run has then shows with what came with it.

use std::{
    collections::BTreeMap,
    ops::Range,
    time::{Duration, SystemTime},
};

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use crate::support::{ControlPlane, operator::USER};

/// One client of a latency run: when it was created, and from then until the bench's watches
/// saw it, its finalizer, its Secret with credentials.
pub struct Sample {
    pub created: SystemTime,
    pub seen: Duration,
    pub finalizer: Duration,
    pub secret: Duration,
}

/// One round of a latency run: its clients, and the audit events made during it.
pub struct Round {
    pub started: SystemTime,
    pub audit: Range<usize>,
    pub samples: Vec<Sample>,
}

/// The rounds of one side (operator or limit) of the latency rows, and how long each waited
/// for a quiet machine.
#[derive(Default)]
pub struct Run {
    pub rounds: Vec<Round>,
    pub waited: Vec<Duration>,
}

impl Run {
    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.rounds.iter().flat_map(|r| &r.samples)
    }

    /// API requests during the rounds by user (watches aside), busiest first.
    pub fn requests_by_user(&self, cp: &ControlPlane) -> String {
        let mut counts = BTreeMap::<String, usize>::new();
        for round in &self.rounds {
            for r in requests(cp, round.audit.clone()) {
                *counts.entry(r.user).or_default() += 1;
            }
        }
        let mut counts: Vec<(String, usize)> = counts.into_iter().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        counts.iter().take(4).map(|(user, n)| format!("{user} {n}")).collect::<Vec<_>>().join(", ")
    }

    /// [`per_second`] of each round.
    pub fn seconds(&self, cp: &ControlPlane) -> Vec<Vec<String>> {
        self.rounds.iter().map(|r| per_second(cp, r)).collect()
    }
}

/// A request in the audit log: when the API server received it, how long it took, by whom.
struct Request {
    at: SystemTime,
    took: Duration,
    user: String,
    what: String,
}

/// The requests of the audit events in `range` (watches aside).
fn requests(cp: &ControlPlane, range: Range<usize>) -> Vec<Request> {
    let time = |v: &Value| v.as_str()?.parse::<Timestamp>().ok().map(SystemTime::from);
    cp.audit()
        .skip(range.start)
        .take(range.len())
        .filter(|e| e["stage"] == "ResponseComplete" && e["verb"] != "watch")
        .filter_map(|e| {
            let (at, done) = (time(&e["requestReceivedTimestamp"])?, time(&e["stageTimestamp"])?);
            let user = e["user"]["username"].as_str().unwrap_or_default();
            let user = if user == USER { "operator" } else { user.rsplit(':').next().unwrap_or(user) };
            let o = &e["objectRef"];
            let sub = o["subresource"].as_str().map(|s| format!("/{s}")).unwrap_or_default();
            let what = format!("{} {}{sub}", e["verb"].as_str()?, o["resource"].as_str().unwrap_or_default());
            Some(Request { at, took: done.duration_since(at).unwrap_or_default(), user: user.to_string(), what })
        })
        .collect()
}

/// One row per second of `round`: the p50 and worst create → Secret of the clients created in
/// it, the API requests received in it by user (the operator's split by verb and resource)
/// and the slowest request.
fn per_second(cp: &ControlPlane, round: &Round) -> Vec<String> {
    let second = |t: SystemTime| t.duration_since(round.started).unwrap_or_default().as_secs();
    let mut tails = BTreeMap::<u64, Vec<Duration>>::new();
    for s in &round.samples {
        tails.entry(second(s.created)).or_default().push(s.secret);
    }
    let mut load = BTreeMap::<u64, Vec<Request>>::new();
    for r in requests(cp, round.audit.clone()) {
        load.entry(second(r.at)).or_default().push(r);
    }
    let last = tails.keys().chain(load.keys()).copied().max().unwrap_or(0);
    (0..=last)
        .map(|s| {
            let mut tail = tails.remove(&s).unwrap_or_default();
            tail.sort();
            let tail = match (tail.get(tail.len() / 2), tail.last()) {
                (Some(p50), Some(max)) => format!("{} created, p50 {p50:.0?}, max {max:.0?}", tail.len()),
                _ => "none created".into(),
            };
            let requests = load.remove(&s).unwrap_or_default();
            let mut users = BTreeMap::<&str, usize>::new();
            let mut ops = BTreeMap::<&str, usize>::new();
            for r in &requests {
                *users.entry(&r.user).or_default() += 1;
                if r.user == "operator" {
                    *ops.entry(&r.what).or_default() += 1;
                }
            }
            let join =
                |m: &BTreeMap<&str, usize>| m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
            let slowest = requests
                .iter()
                .max_by_key(|r| r.took)
                .map_or(String::new(), |r| format!("; slowest {:.0?} ({} {})", r.took, r.user, r.what));
            format!("s{s}: {tail}; requests {} ({}); operator: {}{slowest}", requests.len(), join(&users), join(&ops))
        })
        .collect()
}
