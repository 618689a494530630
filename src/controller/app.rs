//! The OAuthApp reconciler: the backend app, its scopes and mappings, domain verification, and
//! the count of clients no OAuthClient owns. The backend cannot delete apps, so deleting an
//! OAuthApp leaves the backend app as it is (no finalizer).

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, ResourceExt,
    core::DeserializeGuard,
    runtime::{
        WatchStreamExt,
        controller::Action,
        events::EventType,
        reflector,
        watcher::{self, watcher},
    },
};

use super::{
    Context, Error, census, conclude,
    conditions::{self, reason},
    desired, error_policy, key_of,
    lists::Listed,
    prelude, tenancy, watch,
};
use crate::{
    api::{OAuthApp, OAuthAppSpec, OAuthAppStatus, Validate},
    backend::{App, AppKey, Backend, ErrorCategory, Logo, ScopeMapping},
};

/// How soon an unverified domain is checked again.
const DOMAIN_RECHECK: Duration = Duration::from_secs(60);

/// Runs the OAuthApp controller until `shutdown` resolves.
pub async fn run(
    ctx: Arc<Context>,
    apps: Api<DeserializeGuard<OAuthApp>>,
    wc: watcher::Config,
    concurrency: u16,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (store, writer) = reflector::store();
    let _ = ctx.apps.set(store.clone());
    let changes = watch::changed(writer, watcher(apps, wc).default_backoff().modify(watch::slim), watch::user_changes);
    watch::controller(changes, store, concurrency)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy::<OAuthApp>, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "oauthapp reconcile failed");
            }
        })
        .await;
}

async fn reconcile(guard: Arc<DeserializeGuard<OAuthApp>>, ctx: Arc<Context>) -> Result<Action, Error> {
    crate::metrics::reconcile("oauthapp", Error::label, pass(guard, ctx)).await
}

async fn pass(guard: Arc<DeserializeGuard<OAuthApp>>, ctx: Arc<Context>) -> Result<Action, Error> {
    let obj = match prelude(&guard, &ctx).await {
        Ok(obj) => obj,
        Err(done) => return done,
    };
    let api: Api<OAuthApp> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let Some(obj) = super::current(&ctx, &api, obj).await? else { return Ok(Action::await_change()) };
    let obj = obj.as_ref();
    let mut status = obj.status.clone().unwrap_or_default();
    let result = sync(obj, &ctx, &api, &mut status).await;
    conclude(&ctx, &api, obj, obj.status.as_ref(), status, result.as_ref().map(|_| conditions::settled::APP)).await?;
    let recheck = result?;
    let settled = ctx.settled(&key_of(obj));
    Ok(if recheck { Action::requeue(DOMAIN_RECHECK.min(ctx.resync)) } else { settled })
}

/// Brings the backend app to the spec. Returns whether the domain wants an early recheck.
async fn sync(obj: &OAuthApp, ctx: &Context, api: &Api<OAuthApp>, status: &mut OAuthAppStatus) -> Result<bool, Error> {
    obj.validate()?;
    let spec = &obj.spec;
    let ns = obj.namespace().unwrap_or_default();
    let (backend_name, configured) = tenancy::backend(ctx, spec.backend.as_deref(), &ns).await?;
    let pinned = &configured.access.pinned_deployment;
    tenancy::check_pinned(&backend_name, pinned, "spec.deploymentId", spec.deployment_id.as_deref())?;
    tenancy::claim_app(ctx, obj).await?;
    let (backend, record_key) = (configured.backend, configured.record_key);
    let key = AppKey { deployment: spec.deployment_id.clone(), slug: spec.slug.clone() };
    let existing = backend.list_apps(spec.deployment_id.as_deref()).await.map_err(Error::backend("list apps"))?;
    let mut app = match existing.into_iter().find(|a| a.slug == spec.slug) {
        Some(app) => {
            claim_found(obj, ctx, &backend_name, status, &app).await?;
            app
        }
        None => create(obj, ctx, api, backend.as_ref(), status).await?,
    };
    status.app_id = Some(app.id.clone());
    status.create_requested = false;

    if let Some(update) = desired::app_update(spec, &app) {
        app = backend.update_app(&key, &update).await.map_err(Error::backend("update app"))?;
        ctx.event(obj, EventType::Normal, "Updated", "backend app updated to the spec".into()).await;
    }
    sync_scopes(spec, &key, backend.as_ref(), app).await?;

    let recheck = verify_domain(obj, backend.as_ref(), &key, status).await?;

    count_unmanaged(obj, ctx, (&backend_name, backend.as_ref()), &key, &record_key, status).await?;
    Ok(recheck)
}

/// With `verifyDomain`, asks the backend whether the domain is verified and says so in the
/// `DomainVerified` condition. Returns whether to check again soon.
async fn verify_domain(
    obj: &OAuthApp,
    backend: &dyn Backend,
    key: &AppKey,
    status: &mut OAuthAppStatus,
) -> Result<bool, Error> {
    let recheck = match (&obj.spec.fqdn, obj.spec.verify_domain) {
        (Some(_), true) => {
            let domain = backend.verify_domain(key).await.map_err(Error::backend("verify domain"))?;
            status.cname_target = Some(domain.cname_target.clone());
            let (why, message) = if domain.verified {
                (reason::VERIFIED, format!("{} is verified", domain.domain))
            } else {
                (reason::PENDING, format!("create a CNAME record from {} to {}", domain.domain, domain.cname_target))
            };
            status.conditions = conditions::set(
                &status.conditions,
                conditions::DOMAIN_VERIFIED,
                domain.verified,
                why,
                message,
                obj.metadata.generation,
            );
            !domain.verified
        }
        _ => {
            status.cname_target = None;
            status.conditions.retain(|c| c.type_ != conditions::DOMAIN_VERIFIED);
            false
        }
    };
    Ok(recheck)
}

/// Counts the app's active clients that no OAuthClient owns (`status.unmanagedClients`), and
/// with `pruneUnmanagedClients` deactivates those older than the grace period.
async fn count_unmanaged(
    obj: &OAuthApp,
    ctx: &Context,
    (backend_name, backend): (&str, &dyn Backend),
    key: &AppKey,
    record_key: &ring::hmac::Key,
    status: &mut OAuthAppStatus,
) -> Result<(), Error> {
    let spec = &obj.spec;
    let mut unmanaged = unmanaged_clients(obj, ctx, (backend_name, backend), key, record_key, false).await?;
    if !unmanaged.is_empty() {
        // What is reported or deactivated goes by a census taken now, not one up to a resync
        // period old (a client made since would look unmanaged).
        unmanaged = unmanaged_clients(obj, ctx, (backend_name, backend), key, record_key, true).await?;
    }
    if spec.prune_unmanaged_clients && !unmanaged.is_empty() {
        let now = k8s_openapi::jiff::Timestamp::now();
        let grace = k8s_openapi::jiff::SignedDuration::try_from(ctx.unmanaged_grace).unwrap_or_default();
        // Only clients older than the grace period: a younger one may be mid-creation.
        let (old, young): (Vec<_>, Vec<_>) = unmanaged
            .into_iter()
            .partition(|c| c.created_at.and_then(|t| t.checked_add(grace).ok()).is_some_and(|t| t < now));
        for client in &old {
            match backend.deactivate_client(key, &client.id).await {
                Ok(()) | Err(crate::backend::Error::NotFound { .. }) => {}
                Err(e) => return Err(Error::backend("deactivate an unmanaged client")(e)),
            }
            let note = format!("deactivated backend client {}, which no OAuthClient owns", client.client_id);
            ctx.event(obj, EventType::Normal, "PrunedUnmanagedClient", note).await;
        }
        if !old.is_empty() {
            let listed = ctx.lists.with(backend_name, backend, key, true, |_| ());
            listed.await.map_err(Error::backend("list clients"))?;
        }
        unmanaged = young;
    }
    let unmanaged = unmanaged.len() as u32;
    if unmanaged > 0 && status.unmanaged_clients != Some(unmanaged) {
        let note = format!("{unmanaged} active client(s) of this app in the backend belong to no OAuthClient");
        ctx.event(obj, EventType::Warning, "UnmanagedClients", note).await;
    }
    status.unmanaged_clients = Some(unmanaged);
    Ok(())
}

/// Whether this resource may manage the backend app with its slug that exists already: its own
/// (its status names it, or asked for its creation), another OAuthApp's, or nobody's, which
/// it adopts only where the configuration lets its namespace.
async fn claim_found(
    obj: &OAuthApp,
    ctx: &Context,
    backend: &str,
    status: &OAuthAppStatus,
    app: &App,
) -> Result<(), Error> {
    let owner = if status.app_id.as_deref() == Some(app.id.as_str()) || status.create_requested {
        tenancy::Owner::This
    } else {
        tenancy::app_recorded_elsewhere(ctx, obj, &app.id).map_or(tenancy::Owner::Nobody, tenancy::Owner::Another)
    };
    let what = format!("backend app {}", app.slug);
    if let tenancy::Claim::TakeOver { .. } =
        tenancy::claim(ctx, backend, &obj.namespace().unwrap_or_default(), owner, &what).await?
    {
        ctx.event(obj, EventType::Normal, "Adopted", format!("adopted {what}, which no resource owned")).await;
    }
    Ok(())
}

/// Creates the backend app, having recorded first in the status that it asked to (so that a
/// crash before the status names the app still finds it as this resource's).
async fn create(
    obj: &OAuthApp,
    ctx: &Context,
    api: &Api<OAuthApp>,
    backend: &dyn Backend,
    status: &mut OAuthAppStatus,
) -> Result<App, Error> {
    let spec = &obj.spec;
    let mut new = desired::new_app(spec);
    new.logo = logo(obj, ctx).await?;
    if !status.create_requested {
        status.create_requested = true;
        super::write_status(api, obj, obj.status.as_ref(), status).await?;
    }
    let app = match backend.create_app(spec.deployment_id.as_deref(), &new).await {
        Ok(app) => app,
        Err(e) => {
            status.create_requested = !nothing_made(e.category());
            return Err(Error::backend("create app")(e));
        }
    };
    ctx.event(obj, EventType::Normal, "Created", format!("created backend app {}", app.slug)).await;
    Ok(app)
}

/// Whether a create that failed this way surely made nothing, so that its request is withdrawn.
/// A timeout or a 409 (an earlier create whose answer was lost may have made the app) may have.
fn nothing_made(category: ErrorCategory) -> bool {
    use ErrorCategory::*;
    match category {
        Invalid | Unauthorized | RateLimited | Unsupported => true,
        Transient | Conflict | NotFound => false,
    }
}

/// Archives, unarchives and maps scopes one by one where the app still differs. A mapping
/// that is set differently in the backend is refused: the backend cannot change it.
async fn sync_scopes(spec: &OAuthAppSpec, key: &AppKey, backend: &dyn Backend, mut app: App) -> Result<(), Error> {
    for wanted in desired::scopes(spec) {
        let Some(have) = app.scopes.iter().find(|s| s.name == wanted.name).cloned() else {
            continue;
        };
        if have.archived != wanted.archived {
            app = backend
                .set_scope_archived(key, &wanted.name, wanted.archived)
                .await
                .map_err(Error::backend("archive scope"))?;
        }
        match (&have.mapping, &wanted.mapping) {
            (None, Some(mapping)) => {
                app = backend
                    .set_scope_mapping(key, &wanted.name, mapping)
                    .await
                    .map_err(Error::backend("set scope mapping"))?;
            }
            (Some(set), Some(mapping)) if set != mapping => {
                return Err(Error::Refused {
                    reason: reason::SCOPE_MAPPING_IMMUTABLE,
                    message: format!(
                        "scope {} is mapped to {} in the backend, which cannot change it to {}",
                        wanted.name,
                        describe(set),
                        describe(mapping)
                    ),
                });
            }
            _ => {}
        }
    }
    Ok(())
}

fn describe(mapping: &ScopeMapping) -> String {
    match mapping {
        ScopeMapping::Personal => "personal".into(),
        ScopeMapping::Organization(p) => format!("organization permission {p}"),
        ScopeMapping::Workspace(p) => format!("workspace permission {p}"),
    }
}

/// The logo image of `spec.logo`, read from its ConfigMap.
async fn logo(obj: &OAuthApp, ctx: &Context) -> Result<Option<Logo>, Error> {
    let Some(source) = &obj.spec.logo else {
        return Ok(None);
    };
    let maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let r = &source.config_map_key_ref;
    let map = maps.get_opt(&r.name).await.map_err(Error::kube("read the logo ConfigMap"))?;
    let bytes = map.and_then(|m| {
        let binary = m.binary_data.and_then(|d| d.get(&r.key).map(|b| b.0.clone()));
        binary.or_else(|| m.data.and_then(|d| d.get(&r.key).map(|t| t.clone().into_bytes())))
    });
    let Some(bytes) = bytes else {
        return Err(Error::Waiting(super::Waiting {
            reason: reason::LOGO_NOT_READY,
            message: format!("spec.logo: ConfigMap {} has no key {}", r.name, r.key),
        }));
    };
    Ok(Some(Logo { bytes, content_type: source.content_type.clone(), filename: r.key.clone() }))
}

/// The app's active backend clients that no OAuthClient owns, by the statuses of its
/// OAuthClients and the census of Secret records (`fresh`: taken anew, before a prune).
async fn unmanaged_clients(
    obj: &OAuthApp,
    ctx: &Context,
    (name, backend): (&str, &dyn Backend),
    key: &AppKey,
    record_key: &ring::hmac::Key,
    fresh: bool,
) -> Result<Vec<Listed>, Error> {
    let app = (obj.namespace().unwrap_or_default(), obj.name_any());
    let mut owned = census::owned_by_app(ctx, &app, fresh).await.map_err(Error::kube("list OAuthClients"))?;
    let recorded =
        census::unrecorded(ctx, name, record_key, fresh).await.map_err(Error::kube("list credentials Secrets"))?;
    owned.extend(recorded.iter().cloned());
    let unmanaged = |list: &[Listed]| list.iter().filter(|c| c.active && !owned.contains(&c.id)).cloned().collect();
    ctx.lists.with(name, backend, key, false, unmanaged).await.map_err(Error::backend("list clients"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_create_keeps_its_request_unless_nothing_was_made() {
        use ErrorCategory::*;
        for category in [Invalid, Unauthorized, RateLimited, Unsupported] {
            assert!(nothing_made(category), "{category:?}");
        }
        for category in [Transient, Conflict, NotFound] {
            assert!(!nothing_made(category), "{category:?}: the app may exist and is this resource's");
        }
    }
}
