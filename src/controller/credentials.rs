//! What a pass does about a client's credentials, decided without I/O from what the pass read:
//! create a client, write credentials held from an earlier pass, deactivate, rotate (to answer
//! a rotate request, on the schedule of `spec.rotation.every`, or to regenerate a Secret that
//! was lost or edited; in place, or by a new client that replaces the current one), retire the
//! client a `NewClient` rotation replaced, or keep. The rules
//! that make "rotate exactly once, never lose a shown secret" hold are the rows of the table
//! tested below; `client::sync` reads, plans, acts, then writes the status.

/// The backend client the pass found for the resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientState {
    /// None recorded, or the recorded one is gone.
    Missing,
    Active,
    Inactive,
}

/// The credentials Secret as the pass found it (one that is not this resource's own never
/// reaches the plan: it is a conflict before any backend call).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretState {
    Missing,
    /// Emptied or edited since the operator wrote it.
    Damaged,
    /// As the operator wrote it. `answers_request`: it records the pending rotate request as
    /// answered (a crash came between the Secret write and the status write).
    Intact {
        answers_request: bool,
    },
}

/// What the pass read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts {
    pub client: ClientState,
    /// `spec.active`.
    pub want_active: bool,
    pub secret: SecretState,
    /// Credentials of this client that the backend showed on an earlier pass and that were not
    /// written yet; `Some(answers_request)` as for an intact Secret.
    pub held: Option<bool>,
    /// The rotate annotation holds a value the status has not recorded as handled.
    pub requested: bool,
    /// `spec.rotation.every` has passed since the Secret's secret was issued (and the spread of
    /// rotations after a start has reached this resource).
    pub due: bool,
    /// `spec.rotation.strategy` is `NewClient`.
    pub new_client: bool,
    pub previous: Previous,
}

/// The client an earlier `NewClient` rotation replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Previous {
    /// None, or retired already.
    None,
    /// Still working: its overlap has not ended.
    Serving,
    /// Its overlap has ended.
    Expired,
}

/// Why a secret is rotated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The rotate annotation asks for it.
    Requested,
    /// The Secret is missing or edited: the backend never shows a secret twice.
    Regenerate,
    /// The secret is older than `spec.rotation.every`.
    Scheduled,
}

/// What the pass does, in this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// No client exists and the spec wants none.
    Nothing,
    /// Create a client and write its credentials, which answer any rotate request.
    /// `replaces`: the recorded client is inactive or gone.
    Create { replaces: bool },
    /// Keep the client: write the held credentials first (`deliver_held`), then deactivate it
    /// (`deactivate`) or rotate its secret (`rotate`), in place or, with `new_client`, by a new
    /// client that takes over the Secret while this one serves out the overlap.
    Keep { deliver_held: bool, deactivate: bool, rotate: Option<Rotation>, new_client: bool },
}

pub fn plan(facts: &Facts) -> Plan {
    match (facts.client, facts.want_active) {
        (ClientState::Missing, false) => return Plan::Nothing,
        (ClientState::Missing, true) => return Plan::Create { replaces: false },
        // Backends cannot reactivate a client: a new one replaces it.
        (ClientState::Inactive, true) => return Plan::Create { replaces: true },
        _ => {}
    }
    // Held credentials are written before anything else, and then stand for the Secret.
    let secret = facts.held.map_or(facts.secret, |answers_request| SecretState::Intact { answers_request });
    let rotate = match secret {
        // An inactive client needs no working secret.
        _ if !facts.want_active => None,
        SecretState::Missing | SecretState::Damaged => Some(Rotation::Regenerate),
        SecretState::Intact { answers_request } if facts.requested && !answers_request => Some(Rotation::Requested),
        // Held credentials were just issued: their age starts now.
        SecretState::Intact { .. } if facts.due && facts.held.is_none() => Some(Rotation::Scheduled),
        SecretState::Intact { .. } => None,
    };
    Plan::Keep {
        deliver_held: facts.held.is_some(),
        deactivate: !facts.want_active && facts.client == ClientState::Active,
        rotate,
        // A lost or edited Secret may have leaked: its secret is revoked at once.
        new_client: facts.new_client && matches!(rotate, Some(Rotation::Requested | Rotation::Scheduled)),
    }
}

/// Whether the pass retires the previous client (before anything else): when its overlap has
/// ended, when a new rotation replaces the current client (one previous client at a time), or
/// when the spec wants no working client.
pub fn retire_previous(facts: &Facts, plan: &Plan) -> bool {
    let replacing = matches!(plan, Plan::Keep { new_client: true, .. });
    match facts.previous {
        Previous::None => false,
        Previous::Expired => true,
        Previous::Serving => replacing || !facts.want_active,
    }
}

#[cfg(test)]
mod tests {
    use super::{ClientState as C, Plan, Rotation as R, SecretState as S, *};

    const INTACT: S = S::Intact { answers_request: false };
    const ANSWERED: S = S::Intact { answers_request: true };

    fn facts(client: C, want_active: bool, secret: S, held: Option<bool>, requested: bool) -> Facts {
        Facts { client, want_active, secret, held, requested, due: false, new_client: false, previous: Previous::None }
    }

    fn new_client(f: Facts) -> Facts {
        Facts { new_client: true, ..f }
    }

    fn due(f: Facts) -> Facts {
        Facts { due: true, ..f }
    }

    fn keep(deliver_held: bool, deactivate: bool, rotate: Option<R>) -> Plan {
        Plan::Keep { deliver_held, deactivate, rotate, new_client: false }
    }

    fn replace(rotate: R) -> Plan {
        Plan::Keep { deliver_held: false, deactivate: false, rotate: Some(rotate), new_client: true }
    }

    /// The rows that matter, each with why: creation, requests, lost Secrets, held credentials.
    #[test]
    fn truth_table() {
        let rows: &[(&str, Facts, Plan)] = &[
            (
                "a new resource gets a client",
                facts(C::Missing, true, S::Missing, None, false),
                Plan::Create { replaces: false },
            ),
            (
                "a rotate request on a new resource is answered by the creation",
                facts(C::Missing, true, S::Missing, None, true),
                Plan::Create { replaces: false },
            ),
            (
                "a client deleted in the backend is replaced",
                facts(C::Missing, true, INTACT, None, false),
                Plan::Create { replaces: false },
            ),
            (
                "an inactive client cannot be reactivated: a new one replaces it",
                facts(C::Inactive, true, INTACT, None, false),
                Plan::Create { replaces: true },
            ),
            (
                "inactive and nothing exists: nothing to do",
                facts(C::Missing, false, S::Missing, None, true),
                Plan::Nothing,
            ),
            ("settled: nothing to do", facts(C::Active, true, INTACT, None, false), keep(false, false, None)),
            (
                "a rotate request rotates once",
                facts(C::Active, true, INTACT, None, true),
                keep(false, false, Some(R::Requested)),
            ),
            (
                "a request the Secret already answers (crash before the status write) is not rotated again",
                facts(C::Active, true, ANSWERED, None, true),
                keep(false, false, None),
            ),
            (
                "a deleted Secret is regenerated",
                facts(C::Active, true, S::Missing, None, false),
                keep(false, false, Some(R::Regenerate)),
            ),
            (
                "an edited Secret is regenerated",
                facts(C::Active, true, S::Damaged, None, false),
                keep(false, false, Some(R::Regenerate)),
            ),
            (
                "an edited Secret with a request pending: one rotation serves both",
                facts(C::Active, true, S::Damaged, None, true),
                keep(false, false, Some(R::Regenerate)),
            ),
            (
                "held credentials are written, not rotated again",
                facts(C::Active, true, S::Missing, Some(false), false),
                keep(true, false, None),
            ),
            (
                "held credentials that answer the request are written, not rotated again",
                facts(C::Active, true, INTACT, Some(true), true),
                keep(true, false, None),
            ),
            (
                "held credentials older than a new request: written, then rotated once",
                facts(C::Active, true, S::Damaged, Some(false), true),
                keep(true, false, Some(R::Requested)),
            ),
        ];
        check_rows(rows);
    }

    /// The rows of an inactive spec, a schedule, and the NewClient strategy.
    #[test]
    fn truth_table_of_schedules_and_strategies() {
        let rows: &[(&str, Facts, Plan)] = &[
            (
                "spec inactive: the client is deactivated, its secret left alone",
                facts(C::Active, false, S::Damaged, None, true),
                keep(false, true, None),
            ),
            (
                "spec inactive, held credentials: written first, then deactivated",
                facts(C::Active, false, S::Missing, Some(false), false),
                keep(true, true, None),
            ),
            (
                "inactive as the spec wants: nothing to do",
                facts(C::Inactive, false, S::Missing, None, true),
                keep(false, false, None),
            ),
            (
                "a secret past spec.rotation.every is rotated",
                due(facts(C::Active, true, INTACT, None, false)),
                keep(false, false, Some(R::Scheduled)),
            ),
            (
                "due and requested: one rotation answers both (the age restarts)",
                due(facts(C::Active, true, INTACT, None, true)),
                keep(false, false, Some(R::Requested)),
            ),
            (
                "due, but the Secret is lost: one regeneration serves both",
                due(facts(C::Active, true, S::Missing, None, false)),
                keep(false, false, Some(R::Regenerate)),
            ),
            (
                "due, but held credentials were just issued: written, not rotated again",
                due(facts(C::Active, true, INTACT, Some(false), false)),
                keep(true, false, None),
            ),
            (
                "due, but inactive: an inactive client is not rotated",
                due(facts(C::Active, false, INTACT, None, false)),
                keep(false, true, None),
            ),
            (
                "due with no client: the creation issues a fresh secret",
                due(facts(C::Missing, true, INTACT, None, false)),
                Plan::Create { replaces: false },
            ),
            (
                "NewClient: a request makes a new client",
                new_client(facts(C::Active, true, INTACT, None, true)),
                replace(R::Requested),
            ),
            (
                "NewClient: a due secret makes a new client",
                new_client(due(facts(C::Active, true, INTACT, None, false))),
                replace(R::Scheduled),
            ),
            (
                "NewClient: a lost Secret is regenerated in place (it may have leaked)",
                new_client(facts(C::Active, true, S::Damaged, None, true)),
                keep(false, false, Some(R::Regenerate)),
            ),
            (
                "NewClient: held credentials of the new client are written, not replaced again",
                new_client(facts(C::Active, true, INTACT, Some(true), true)),
                keep(true, false, None),
            ),
        ];
        check_rows(rows);
    }

    fn check_rows(rows: &[(&str, Facts, Plan)]) {
        for (why, facts, want) in rows {
            assert_eq!(plan(facts), *want, "{why}: {facts:?}");
        }
    }

    #[test]
    fn retirement_table() {
        let serving = |f: Facts| Facts { previous: Previous::Serving, ..f };
        let expired = |f: Facts| Facts { previous: Previous::Expired, ..f };
        let settled = facts(C::Active, true, INTACT, None, false);
        let rows: &[(&str, Facts, bool)] = &[
            ("no previous client: nothing to retire", new_client(facts(C::Active, true, INTACT, None, true)), false),
            ("within its overlap it keeps working", new_client(serving(settled)), false),
            ("its overlap has ended", new_client(expired(settled)), true),
            (
                "ended, while the current client is replaced anyway",
                expired(facts(C::Inactive, true, INTACT, None, false)),
                true,
            ),
            ("a new rotation replaces it: one previous client at a time", new_client(serving(due(settled))), true),
            (
                "an in-place regeneration keeps it serving",
                new_client(serving(facts(C::Active, true, S::Missing, None, false))),
                false,
            ),
            ("the spec wants no working client", serving(facts(C::Active, false, INTACT, None, false)), true),
            (
                "the current client is recreated: the previous one serves on",
                serving(facts(C::Missing, true, S::Missing, None, false)),
                false,
            ),
        ];
        for (why, facts, want) in rows {
            assert_eq!(retire_previous(facts, &plan(facts)), *want, "{why}: {facts:?}");
        }
    }

    /// Every combination of facts, against the guarantees.
    #[test]
    fn guarantees_hold_for_every_combination() {
        let secrets = [S::Missing, S::Damaged, INTACT, ANSWERED];
        let mut rows = 0;
        for client in [C::Missing, C::Active, C::Inactive] {
            for want_active in [false, true] {
                for secret in secrets {
                    for held in [None, Some(false), Some(true)] {
                        for requested in [false, true] {
                            for due in [false, true] {
                                for new_client in [false, true] {
                                    for previous in [Previous::None, Previous::Serving, Previous::Expired] {
                                        let base = facts(client, want_active, secret, held, requested);
                                        let f = Facts { due, new_client, previous, ..base };
                                        check(&f, plan(&f));
                                        rows += 1;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(rows, 1728);
    }

    fn check(f: &Facts, plan: Plan) {
        let retire = retire_previous(f, &plan);
        assert!(!(retire && f.previous == Previous::None), "retires only a previous client: {f:?}");
        if f.previous == Previous::Expired {
            assert!(retire, "an ended overlap retires the previous client: {f:?}");
        }
        if f.previous == Previous::Serving && f.want_active && !matches!(plan, Plan::Keep { new_client: true, .. }) {
            assert!(!retire, "a previous client serves out its overlap: {f:?}");
        }
        match plan {
            Plan::Nothing => assert!(f.client == C::Missing && !f.want_active, "{f:?}"),
            Plan::Create { replaces } => {
                assert!(f.want_active && f.client != C::Active, "creates only when no active client: {f:?}");
                assert_eq!(replaces, f.client == C::Inactive, "{f:?}");
            }
            Plan::Keep { deliver_held, deactivate, rotate, new_client } => {
                assert_eq!(
                    new_client,
                    f.new_client && matches!(rotate, Some(R::Requested | R::Scheduled)),
                    "NewClient replaces the client for requested and scheduled rotations only: {f:?}"
                );
                assert_ne!(f.client, C::Missing, "keeps only what exists: {f:?}");
                assert_eq!(deliver_held, f.held.is_some(), "shown credentials are never dropped: {f:?}");
                assert_eq!(deactivate, !f.want_active && f.client == C::Active, "{f:?}");
                let answered = matches!(f.held, Some(true)) || (f.held.is_none() && f.secret == ANSWERED);
                if rotate == Some(R::Requested) {
                    assert!(f.requested && !answered, "a request is rotated once: {f:?}");
                }
                if f.want_active && f.requested && !answered && f.held.is_some() {
                    assert_eq!(rotate, Some(R::Requested), "a request newer than held credentials: {f:?}");
                }
                let lost = f.held.is_none() && matches!(f.secret, S::Missing | S::Damaged);
                assert_eq!(rotate == Some(R::Regenerate), f.want_active && lost, "regenerates a lost Secret: {f:?}");
                if !f.want_active {
                    assert_eq!(rotate, None, "an inactive client is not rotated: {f:?}");
                }
                let intact = f.held.is_none() && matches!(f.secret, S::Intact { .. });
                let pending = f.requested && f.secret != ANSWERED;
                assert_eq!(
                    rotate == Some(R::Scheduled),
                    f.want_active && f.due && intact && !pending,
                    "a due secret rotates once, and only when nothing else issues one: {f:?}"
                );
            }
        }
    }
}
