//! Who owns which backend client, for the apps' count of unmanaged clients, in O(clients) per
//! resync period rather than O(apps × clients): the OAuthClients' statuses come from the watch
//! cache (no request), and the credentials Secrets' signed records (which name a client a crash
//! left between the Secret write and the status write) are listed once per period and backend,
//! shared by every app pass; kept are only the ids a status does not name, so the census holds
//! next to nothing once things are settled.

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    sync::Arc,
    time::Duration,
};

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, ResourceExt,
    api::{ListParams, ObjectList, PartialObjectMeta},
    core::DeserializeGuard,
};
use tokio::time::Instant;

use super::{Context, secret};
use crate::api::OAuthClient;

/// The backend ids a census found, and when it was taken.
type Taken = (Instant, Arc<HashSet<String>>);

/// The census of each backend's Secret records.
pub(super) struct Census {
    max_age: Duration,
    taken: tokio::sync::Mutex<HashMap<String, Taken>>,
}

impl Census {
    pub fn new(max_age: Duration) -> Self {
        Self { max_age, taken: tokio::sync::Mutex::default() }
    }
}

/// The backend ids the OAuthClients of app `(namespace, name)` own by their statuses: the
/// current client and a previous one that has not retired (it works until it does). From the
/// watch cache; listed (in pages) where this operator's watch is one shard's.
pub(super) async fn owned_by_app(ctx: &Context, app: &(String, String)) -> kube::Result<HashSet<String>> {
    let mut owned = HashSet::new();
    let of_app = |c: &OAuthClient| c.app_ref().as_ref() == Some(app);
    match ctx.clients.get().filter(|_| ctx.all_clients_watched) {
        Some(store) => {
            for guard in store.state() {
                owned.extend(guard.0.as_ref().ok().filter(|c| of_app(c)).into_iter().flat_map(status_ids));
            }
        }
        None => {
            let clients: &Api<DeserializeGuard<OAuthClient>> = &super::scoped(&ctx.client, ctx.namespace.as_deref());
            paged(
                |lp| async move { clients.list(&lp).await },
                |guard| {
                    owned.extend(
                        guard.0.ok().filter(of_app).into_iter().flat_map(|c| status_ids(&c).collect::<Vec<_>>()),
                    )
                },
            )
            .await?;
        }
    }
    Ok(owned)
}

fn status_ids(client: &OAuthClient) -> impl Iterator<Item = String> + '_ {
    let status = client.status.as_ref();
    let current = status.and_then(|s| s.backend_id.clone());
    let previous = status.and_then(|s| s.previous_client.as_ref()).filter(|p| !p.retired).map(|p| p.backend_id.clone());
    current.into_iter().chain(previous)
}

/// The backend ids that credentials Secrets record, signed with backend `name`'s `key` for
/// the OAuthClient that controls them, and that no status names. One census at a time; one
/// younger than the resync period serves, unless `fresh` (before a prune deactivates anything).
pub(super) async fn unrecorded(
    ctx: &Context,
    name: &str,
    key: &ring::hmac::Key,
    fresh: bool,
) -> kube::Result<Arc<HashSet<String>>> {
    let mut taken = ctx.census.taken.lock().await;
    if !fresh
        && let Some((at, ids)) = taken.get(name)
        && at.elapsed() < ctx.census.max_age
    {
        return Ok(ids.clone());
    }
    let recorded: HashMap<String, HashSet<String>> = match ctx.clients.get() {
        Some(store) => store
            .state()
            .iter()
            .filter_map(|g| g.0.as_ref().ok())
            .filter_map(|c| Some((c.metadata.uid.clone()?, status_ids(c).collect())))
            .collect(),
        None => HashMap::new(),
    };
    let mut ids = HashSet::new();
    let secrets: &Api<PartialObjectMeta<Secret>> = &super::scoped(&ctx.client, ctx.namespace.as_deref());
    let managed = &format!("{}={}", secret::MANAGED_BY.0, secret::MANAGED_BY.1);
    paged(
        |lp| async move { secrets.list_metadata(&lp.labels(managed)).await },
        |meta| {
            let Some(controller) = meta.owner_references().iter().find(|r| r.controller == Some(true)) else {
                return;
            };
            let known = recorded.get(&controller.uid);
            for pair in [
                (secret::BACKEND_ID, secret::BACKEND_ID_SIGNATURE),
                (secret::PREVIOUS_BACKEND_ID, secret::PREVIOUS_BACKEND_ID_SIGNATURE),
            ] {
                let id = secret::signed(meta.annotations(), pair, key, &controller.uid);
                ids.extend(id.filter(|id| known.is_none_or(|k| !k.contains(id))));
            }
        },
    )
    .await?;
    let ids = Arc::new(ids);
    taken.insert(name.to_string(), (Instant::now(), ids.clone()));
    Ok(ids)
}

/// Every object of a list, a page of 100 at a time: a list of thousands is never held whole.
async fn paged<T: Clone, F: Future<Output = kube::Result<ObjectList<T>>>>(
    fetch: impl Fn(ListParams) -> F,
    mut each: impl FnMut(T),
) -> kube::Result<()> {
    let mut params = ListParams::default().limit(100);
    loop {
        let page = fetch(params.clone()).await?;
        let next = page.metadata.continue_.clone().filter(|t| !t.is_empty());
        page.items.into_iter().for_each(&mut each);
        match next {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(()),
        }
    }
}
