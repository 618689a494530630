//! Who owns which backend client, for the apps' count of unmanaged clients, in O(clients) per
//! resync period rather than O(apps × clients): the OAuthClients' statuses come from the watch
//! cache (no request; where the watch is one shard's, the other shards' are listed once per
//! period, shared by every app pass), and the credentials Secrets' signed records (which name a
//! client a crash left between the Secret write and the status write) are listed once per
//! period and backend, shared likewise; kept are only the ids a status does not name, and the
//! other shards' ids of the apps this operator reconciles, so the census holds next to nothing
//! once things are settled.

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

/// An app, by namespace and name.
type AppRef = (String, String);

/// The backend ids of the OAuthClients outside this operator's shard, by app.
type Others = (Instant, Arc<HashMap<AppRef, HashSet<String>>>);

/// The census of each backend's Secret records, and of the other shards' OAuthClients.
pub(super) struct Census {
    max_age: Duration,
    taken: tokio::sync::Mutex<HashMap<String, Taken>>,
    others: tokio::sync::Mutex<Option<Others>>,
}

impl Census {
    pub fn new(max_age: Duration) -> Self {
        Self { max_age, taken: tokio::sync::Mutex::default(), others: tokio::sync::Mutex::default() }
    }
}

/// The backend ids the OAuthClients of `app` own by their statuses: the current client and a
/// previous one that has not retired (it works until it does). This operator's own from the
/// watch cache; where its watch is one shard's, the others' from a census of every OAuthClient
/// (one per resync period shared by all apps, unless `fresh`).
pub(super) async fn owned_by_app(ctx: &Context, app: &AppRef, fresh: bool) -> kube::Result<HashSet<String>> {
    // A cache that has not listed everything yet would make its clients look unmanaged (and
    // prunable): until it has, or if it never does, every client is listed instead.
    let synced = match ctx.clients.get() {
        Some(store) => tokio::time::timeout(SYNC_WAIT, store.wait_until_ready()).await.is_ok_and(|r| r.is_ok()),
        None => false,
    };
    let mut owned = HashSet::new();
    for guard in ctx.clients.get().filter(|_| synced).map(|store| store.state()).unwrap_or_default() {
        let of_app = |c: &&OAuthClient| c.app_ref().as_ref() == Some(app);
        owned.extend(guard.0.as_ref().ok().filter(of_app).into_iter().flat_map(status_ids));
    }
    if !synced || !ctx.all_clients_watched {
        owned.extend(other_shards(ctx, app, synced, fresh).await?.get(app).into_iter().flatten().cloned());
    }
    Ok(owned)
}

/// How long an app pass waits for the OAuthClient watch's first list.
const SYNC_WAIT: Duration = Duration::from_secs(30);

/// The backend ids of the OAuthClients this operator does not watch (another shard's, or all
/// while its watch is not `synced`), kept only for the apps it reconciles: listed in pages once
/// per resync period, or anew if `fresh` or unsynced.
async fn other_shards(
    ctx: &Context,
    app: &AppRef,
    synced: bool,
    fresh: bool,
) -> kube::Result<Arc<HashMap<AppRef, HashSet<String>>>> {
    let mut taken = ctx.census.others.lock().await;
    if synced
        && !fresh
        && let Some((at, owned)) = taken.as_ref()
        && at.elapsed() < ctx.census.max_age
    {
        return Ok(owned.clone());
    }
    let cached = ctx.clients.get().filter(|_| synced).map(|s| s.state()).unwrap_or_default();
    let watched: HashSet<String> = cached.iter().filter_map(|g| g.uid()).collect();
    let apps = ctx.apps.get().map(|s| s.state()).unwrap_or_default();
    let mut apps: HashSet<AppRef> = apps.iter().map(|a| (a.namespace().unwrap_or_default(), a.name_any())).collect();
    // The app asking, even if the app watch has not shown it yet.
    apps.insert(app.clone());
    let mut owned = HashMap::<AppRef, HashSet<String>>::new();
    let clients: &Api<DeserializeGuard<OAuthClient>> = &super::scoped(&ctx.client, ctx.namespace.as_deref());
    paged(
        |lp| async move { clients.list(&lp).await },
        |guard| {
            let Ok(c) = guard.0 else { return };
            let theirs = c.uid().is_none_or(|uid| !watched.contains(&uid));
            if let Some(app) = c.app_ref().filter(|app| theirs && apps.contains(app)) {
                owned.entry(app).or_default().extend(status_ids(&c));
            }
        },
    )
    .await?;
    let owned = Arc::new(owned);
    // One taken before the watch listed everything holds this shard's clients too: not kept.
    if synced {
        *taken = Some((Instant::now(), owned.clone()));
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
