//! Which Secrets exist, by namespace and name, as the client controller's two Secret watches
//! see them (the operator's own, labelled, and every other): a pass that finds no Secret of
//! its name here does not read it (a new client's first pass, above all). Only a 64-bit digest
//! of each name is kept, nothing of the Secret. What the operator creates is added at once, so
//! its own Secret is never missed; a Secret someone else created a moment ago may be, and then
//! the create fails (409) as it does for any name taken meanwhile, so a stale view costs a
//! request, never a write into another's Secret.

use std::{
    collections::HashSet,
    hash::{BuildHasher, RandomState},
    sync::Mutex,
};

use kube::{Resource, ResourceExt, runtime::watcher::Event};

/// One watch's names: those it has seen, and those of a relist under way.
#[derive(Default)]
struct Seen {
    names: HashSet<u64>,
    relist: Option<HashSet<u64>>,
    synced: bool,
}

/// The Secrets of the two watches ([`OWN`] and [`OTHERS`]), by a digest keyed at random per
/// process, so that no namespace user can choose a name that shares another's digest.
#[derive(Default)]
pub struct SecretNames {
    seen: [Mutex<Seen>; 2],
    keys: RandomState,
}

/// The watch of the operator's own (labelled) Secrets.
pub const OWN: usize = 0;
/// The watch of every other Secret.
pub const OTHERS: usize = 1;

impl SecretNames {
    /// Takes in an event of watch `which` (a relist replaces its names once complete); an
    /// error changes nothing (the watch lists again).
    pub fn observe<K: Resource, E>(&self, which: usize, event: &Result<Event<K>, E>) {
        let Ok(event) = event else { return };
        let mut seen = self.lock(which);
        match event {
            Event::Init => seen.relist = Some(HashSet::new()),
            Event::InitApply(obj) => {
                let name = self.digest_of(obj);
                seen.relist.get_or_insert_default().insert(name);
            }
            Event::InitDone => {
                seen.names = seen.relist.take().unwrap_or_default();
                seen.synced = true;
            }
            Event::Apply(obj) => {
                seen.names.insert(self.digest_of(obj));
            }
            Event::Delete(obj) => {
                seen.names.remove(&self.digest_of(obj));
            }
        }
    }

    /// The operator has just created this Secret.
    pub fn created(&self, namespace: &str, name: &str) {
        let mut seen = self.lock(OWN);
        let name = self.digest(namespace, name);
        seen.names.insert(name);
        if let Some(relist) = seen.relist.as_mut() {
            relist.insert(name);
        }
    }

    /// Whether both watches have listed every Secret and neither has one of this name.
    pub fn surely_absent(&self, namespace: &str, name: &str) -> bool {
        let name = self.digest(namespace, name);
        [OWN, OTHERS].iter().all(|&which| {
            let seen = self.lock(which);
            seen.synced && !seen.names.contains(&name)
        })
    }

    fn lock(&self, which: usize) -> std::sync::MutexGuard<'_, Seen> {
        self.seen[which].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn digest_of<K: Resource>(&self, obj: &K) -> u64 {
        self.digest(&obj.namespace().unwrap_or_default(), &obj.name_any())
    }

    /// A digest two names share is as likely as two equal random 64-bit numbers; a Secret
    /// taken for absent that way is caught by the create, as with a stale view.
    fn digest(&self, namespace: &str, name: &str) -> u64 {
        self.keys.hash_one((namespace, name))
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::ObjectMeta;

    use super::*;

    fn secret(name: &str) -> Secret {
        Secret {
            metadata: ObjectMeta { name: Some(name.into()), namespace: Some("ns".into()), ..Default::default() },
            ..Default::default()
        }
    }

    fn ok(event: Event<Secret>) -> Result<Event<Secret>, ()> {
        Ok(event)
    }

    #[test]
    fn absent_only_once_both_watches_listed_and_neither_has_it() {
        let names = SecretNames::default();
        assert!(!names.surely_absent("ns", "a"), "nothing listed yet");
        for which in [OWN, OTHERS] {
            names.observe(which, &ok(Event::Init));
        }
        names.observe(OTHERS, &ok(Event::InitApply(secret("theirs"))));
        names.observe(OWN, &ok(Event::InitDone));
        assert!(!names.surely_absent("ns", "a"), "one watch still lists");
        names.observe(OTHERS, &ok(Event::InitDone));
        assert!(names.surely_absent("ns", "a"));
        assert!(!names.surely_absent("ns", "theirs"));
        assert!(names.surely_absent("other-ns", "theirs"), "names are per namespace");

        names.created("ns", "a");
        assert!(!names.surely_absent("ns", "a"), "the operator's own create counts at once");
        names.observe(OTHERS, &ok(Event::Delete(secret("theirs"))));
        assert!(names.surely_absent("ns", "theirs"));

        // A relist replaces the names once complete, and keeps a create made meanwhile.
        names.observe(OWN, &ok(Event::Init));
        names.created("ns", "b");
        names.observe(OWN, &ok(Event::InitDone));
        assert!(!names.surely_absent("ns", "b"));
        assert!(names.surely_absent("ns", "a"), "gone from the relist");
    }
}
