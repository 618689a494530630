//! The clients of each backend app, listed at most once per resync period and shared by all
//! reconciles: the Wacht API has no GET of one client, and listing once per client would
//! make a pass cost O(clients²) in transfer. One list at a time per app: passes that find the
//! copy stale while a list is under way wait for it instead of listing too.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::Instant;

use crate::backend::{AppKey, Backend, Client, Result};

type Key = (String, AppKey);
/// When a list was fetched, and the list.
type Entry = Option<(Instant, Arc<Vec<Client>>)>;

pub struct ClientLists {
    max_age: Duration,
    lists: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<Entry>>>>,
}

impl ClientLists {
    pub fn new(max_age: Duration) -> Self {
        Self { max_age, lists: Mutex::default() }
    }

    /// The clients of `app` on backend `name`, listed again when the copy is older than
    /// `max_age` or when `fresh` is asked for (unless a list began while this call waited).
    pub async fn get(&self, name: &str, backend: &dyn Backend, app: &AppKey, fresh: bool) -> Result<Arc<Vec<Client>>> {
        let asked = Instant::now();
        let slot = self.slot(name, app);
        let mut entry = slot.lock().await;
        if let Some((at, list)) = entry.as_ref()
            && at.elapsed() < self.max_age
            && (!fresh || *at >= asked)
        {
            return Ok(list.clone());
        }
        let started = Instant::now();
        let list = Arc::new(backend.list_clients(app).await?);
        *entry = Some((started, list.clone()));
        Ok(list)
    }

    /// Records a client the operator just created or changed, so the next pass sees it
    /// without listing again.
    pub async fn put(&self, name: &str, app: &AppKey, client: Client) {
        let slot = self.slot(name, app);
        if let Some((_, list)) = slot.lock().await.as_mut() {
            let list = Arc::make_mut(list);
            list.retain(|c| c.id != client.id);
            list.insert(0, client);
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

    use super::*;
    use crate::backend::{Capabilities, ClientSettings, Credentials, SecretString};

    /// Counts lists; each takes 50 ms so that callers overlap.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    #[async_trait]
    impl Backend for Counting {
        fn capabilities(&self) -> Capabilities {
            Capabilities {
                apps: true,
                scopes: false,
                grants: false,
                domain_verification: false,
                issued_secrets: true,
                list_clients: true,
            }
        }
        async fn list_clients(&self, _: &AppKey) -> Result<Vec<Client>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
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
        let (lists, backend, app) = (ClientLists::new(Duration::from_secs(60)), Counting::default(), AppKey::none());
        let gets = (0..16).map(|_| lists.get("b", &backend, &app, false));
        assert!(futures::future::join_all(gets).await.iter().all(|r| r.is_ok()));
        assert_eq!(backend.0.load(Ordering::SeqCst), 1, "16 concurrent passes, one list");

        // A fresh list is one begun after the asking: of three asks 5 ms apart, the first two
        // list (the second asked while the first was under way) and the third takes the second.
        let ask = |delay: u64| {
            let lists = &lists;
            let (backend, app) = (&backend, &app);
            async move {
                tokio::time::sleep(Duration::from_millis(delay)).await;
                lists.get("b", backend, app, true).await.is_ok()
            }
        };
        assert_eq!(tokio::join!(ask(0), ask(5), ask(10)), (true, true, true));
        assert_eq!(backend.0.load(Ordering::SeqCst), 3);

        tokio::time::advance(Duration::from_secs(61)).await;
        lists.get("b", &backend, &app, false).await.expect("list");
        assert_eq!(backend.0.load(Ordering::SeqCst), 4, "listed again once stale");
    }
}
