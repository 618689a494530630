//! The clients of each backend app, listed at most once per resync period and shared by all
//! reconciles: the Wacht API has no GET of one client, and listing once per client would
//! make a pass cost O(clients²) in transfer.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::Instant;

use crate::backend::{AppKey, Backend, Client, Result};

type Key = (String, AppKey);
/// When a list was fetched, and the list.
type Entry = (Instant, Arc<Vec<Client>>);

pub struct ClientLists {
    max_age: Duration,
    lists: Mutex<HashMap<Key, Entry>>,
}

impl ClientLists {
    pub fn new(max_age: Duration) -> Self {
        Self { max_age, lists: Mutex::default() }
    }

    /// The clients of `app` on backend `name`, listed again when the copy is older than the
    /// resync period (or `fresh` is asked for).
    pub async fn get(&self, name: &str, backend: &dyn Backend, app: &AppKey, fresh: bool) -> Result<Arc<Vec<Client>>> {
        let key = (name.to_string(), app.clone());
        if !fresh
            && let Some((at, list)) = self.lock().get(&key)
            && at.elapsed() < self.max_age
        {
            return Ok(list.clone());
        }
        let list = Arc::new(backend.list_clients(app).await?);
        self.lock().insert(key, (Instant::now(), list.clone()));
        Ok(list)
    }

    /// Records a client the operator just created or changed, so the next pass sees it
    /// without listing again.
    pub fn put(&self, name: &str, app: &AppKey, client: Client) {
        let key = (name.to_string(), app.clone());
        if let Some((_, list)) = self.lock().get_mut(&key) {
            let list = Arc::make_mut(list);
            list.retain(|c| c.id != client.id);
            list.insert(0, client);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.lists.lock().unwrap_or_else(|e| e.into_inner())
    }
}
