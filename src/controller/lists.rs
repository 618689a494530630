//! The clients of each backend app, listed at most once per resync period and shared by all
//! reconciles: the Wacht API has no GET of one client, and listing once per client would
//! make a pass cost O(clients²) in transfer. One list at a time per app: passes that find the
//! copy stale while a list is under way wait for it instead of listing too. A listed client
//! is kept as a [`Listed`]: its identity and a fingerprint of its settings, not the settings.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use k8s_openapi::jiff::Timestamp;
use tokio::time::Instant;

use super::desired::Fingerprint;
use crate::backend::{AppKey, Backend, Client, Mode, RegisteredStatus, Result};

type Key = (String, AppKey);
/// When a list was fetched, and the list.
type Entry = Option<(Instant, Vec<Listed>)>;

/// A backend client as passes read it: who it is, a fingerprint of its settings rather than
/// the settings, and the little more of them that passes decide on.
#[derive(Clone, Debug, PartialEq)]
pub struct Listed {
    /// The backend's handle for the client in its API paths.
    pub id: String,
    /// The public OAuth client id.
    pub client_id: String,
    pub active: bool,
    pub created_at: Option<Timestamp>,
    pub settings: Fingerprint,
    /// The owner the backend records (`None`: it keeps none; empty: none is set).
    pub owner: Option<String>,
    /// A registered client's provider and state.
    pub registration: Option<Box<Registration>>,
}

/// A registered client (the MCP OAuth clients API) as passes read it.
#[derive(Clone, Debug, PartialEq)]
pub struct Registration {
    pub provider: String,
    pub revoked: bool,
}

impl Listed {
    pub fn registration(&self) -> Option<&Registration> {
        self.registration.as_deref()
    }
}

impl From<Client> for Listed {
    fn from(client: Client) -> Self {
        let registration = match &client.settings.mode {
            Mode::Registered(r) => Some(Box::new(Registration {
                provider: r.provider.clone(),
                revoked: r.status == RegisteredStatus::Revoked,
            })),
            _ => None,
        };
        Listed {
            settings: Fingerprint::of(&client.settings),
            owner: client.settings.owner().map(str::to_string),
            id: client.id,
            client_id: client.client_id,
            active: client.active,
            created_at: client.created_at,
            registration,
        }
    }
}

pub struct ClientLists {
    max_age: Duration,
    lists: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<Entry>>>>,
}

impl ClientLists {
    pub fn new(max_age: Duration) -> Self {
        Self { max_age, lists: Mutex::default() }
    }

    /// Reads the clients of `app` on backend `name` with `read`, listed again when the copy is
    /// older than `max_age` or when `fresh` is asked for (unless a list began while this call
    /// waited). The copy is read in place, under its lock: a list of thousands is never copied.
    pub async fn with<R>(
        &self,
        name: &str,
        backend: &dyn Backend,
        app: &AppKey,
        fresh: bool,
        read: impl FnOnce(&[Listed]) -> R,
    ) -> Result<R> {
        let asked = Instant::now();
        let slot = self.slot(name, app);
        let mut entry = slot.lock().await;
        if let Some((at, list)) = entry.as_ref()
            && at.elapsed() < self.max_age
            && (!fresh || *at >= asked)
        {
            return Ok(read(list));
        }
        let started = Instant::now();
        let list = backend.list_clients(app).await?.into_iter().map(Listed::from).collect();
        let (_, list) = entry.insert((started, list));
        Ok(read(list))
    }

    /// Records a client the operator just created or changed, so the next pass sees it
    /// without listing again.
    pub async fn put(&self, name: &str, app: &AppKey, client: Listed) {
        let slot = self.slot(name, app);
        if let Some((_, list)) = slot.lock().await.as_mut() {
            match list.iter_mut().find(|c| c.id == client.id) {
                Some(known) => *known = client,
                None => list.push(client),
            }
        }
    }

    fn slot(&self, name: &str, app: &AppKey) -> Arc<tokio::sync::Mutex<Entry>> {
        let mut lists = self.lists.lock().unwrap_or_else(|e| e.into_inner());
        lists.entry((name.to_string(), app.clone())).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use tokio::sync::Semaphore;

    use super::*;
    use crate::backend::{Capabilities, ClientSettings, Credentials, SecretString};

    /// Counts lists; each waits for the test to let it finish.
    struct Gated {
        lists: AtomicUsize,
        gate: Semaphore,
    }

    impl Gated {
        /// Yields until `n` lists have begun.
        async fn begun(&self, n: usize) {
            while self.lists.load(Ordering::SeqCst) < n {
                tokio::task::yield_now().await;
            }
        }
    }

    #[async_trait]
    impl Backend for Gated {
        fn capabilities(&self) -> Capabilities {
            Capabilities {
                kind: crate::backend::Kind::Wacht,
                list_clients: true,
                chosen_client_ids: false,
                records_owner: false,
            }
        }
        async fn list_clients(&self, _: &AppKey) -> Result<Vec<Client>> {
            self.lists.fetch_add(1, Ordering::SeqCst);
            self.gate.acquire().await.expect("gate").forget();
            Ok(Vec::new())
        }
        async fn create_client(&self, _: &AppKey, _: &ClientSettings) -> Result<(Client, Credentials)> {
            unreachable!()
        }
        async fn update_client(&self, _: &AppKey, _: &str, _: &ClientSettings) -> Result<Client> {
            unreachable!()
        }
        async fn deactivate_client(&self, _: &AppKey, _: &str) -> Result<()> {
            unreachable!()
        }
        async fn rotate_secret(&self, _: &AppKey, _: &str) -> Result<SecretString> {
            unreachable!()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_passes_share_one_list_until_it_is_stale() {
        let lists = Arc::new(ClientLists::new(Duration::from_secs(60)));
        let backend = Arc::new(Gated { lists: AtomicUsize::new(0), gate: Semaphore::new(0) });
        let get = |fresh: bool| {
            let (lists, backend) = (lists.clone(), backend.clone());
            tokio::spawn(async move { lists.with("b", &*backend, &AppKey::none(), fresh, |_| ()).await.is_ok() })
        };
        let count = || backend.lists.load(Ordering::SeqCst);

        let passes: Vec<_> = (0..16).map(|_| get(false)).collect();
        backend.begun(1).await;
        backend.gate.add_permits(1);
        for pass in passes {
            assert!(pass.await.expect("pass"));
        }
        assert_eq!(count(), 1, "16 concurrent passes, one list");

        // A fresh list is one begun after the asking. `first` lists; `second` and `third` ask
        // while it is under way, so `second` lists again and `third` takes that list.
        tokio::time::advance(Duration::from_millis(1)).await;
        let first = get(true);
        backend.begun(2).await;
        tokio::time::advance(Duration::from_millis(1)).await;
        let (second, third) = (get(true), get(true));
        tokio::task::yield_now().await;
        tokio::time::advance(Duration::from_millis(1)).await;
        backend.gate.add_permits(2);
        for ask in [first, second, third] {
            assert!(ask.await.expect("ask"));
        }
        assert_eq!(count(), 3);

        tokio::time::advance(Duration::from_secs(61)).await;
        backend.gate.add_permits(1);
        lists.with("b", &*backend, &AppKey::none(), false, |_| ()).await.expect("list");
        assert_eq!(count(), 4, "listed again once stale");
    }
}
