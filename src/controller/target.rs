//! Where a client lives: its backend (checked against the namespace's access), the app that
//! holds it, and the key that signs its records; and the lookups both kinds of client use.

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::{Api, ResourceExt, runtime::reflector::ObjectRef};

use super::{Context, Error, Waiting, conditions::reason, lists::Listed, tenancy};
use crate::{
    api::{BackendRef, InvalidSpec, OAuthApp, OAuthClient},
    backend::{self, AppKey, Backend},
    config::Configured,
};

/// Where the backend client lives.
pub(super) struct Target {
    pub name: String,
    pub backend: Arc<dyn Backend>,
    pub app: AppKey,
    /// Signs the records of this backend's clients in their Secrets.
    pub key: ring::hmac::Key,
    /// The backend's public endpoints, where it has them.
    pub endpoints: Option<backend::Endpoints>,
}

impl Target {
    fn new(name: String, configured: Configured, app: AppKey) -> Target {
        Target { name, backend: configured.backend, app, key: configured.record_key, endpoints: configured.endpoints }
    }

    /// What the status records of it.
    pub(super) fn record(&self) -> BackendRef {
        let slug = (!self.app.slug.is_empty()).then(|| self.app.slug.clone());
        BackendRef { name: self.name.clone(), deployment_id: self.app.deployment.clone(), app_slug: slug }
    }

    /// The target a status recorded (it was allowed when recorded; the app may be gone).
    pub(super) fn recorded(ctx: &Context, r: &BackendRef) -> Result<Target, Error> {
        let (name, configured) = tenancy::configured(ctx, Some(&r.name))?;
        let app = AppKey { deployment: r.deployment_id.clone(), slug: r.app_slug.clone().unwrap_or_default() };
        Ok(Target::new(name, configured, app))
    }
}

pub(super) async fn target(obj: &OAuthClient, ctx: &Context) -> Result<Target, Error> {
    let Some((app_ns, app_name)) = obj.app_ref() else {
        return appless_target(obj, ctx).await;
    };
    let own_ns = obj.namespace().unwrap_or_default();
    let app_name = &app_name;
    let cached = ctx
        .apps
        .get()
        .and_then(|store| store.get(&ObjectRef::new(app_name).within(&app_ns)))
        .and_then(|guard| guard.0.as_ref().ok().cloned())
        .filter(app_ready);
    // Not seen yet (just created, or the watch is starting), or not in the backend yet in
    // this copy, which can lag the event that brought this pass (each controller watches the
    // apps): ask the API server. A waiting client gets no retry but the app's next change.
    let app = match cached {
        Some(app) => Some(app),
        None => {
            let apps: Api<OAuthApp> = Api::namespaced(ctx.client.clone(), &app_ns);
            apps.get_opt(app_name).await.map_err(Error::kube("read the OAuthApp"))?
        }
    };
    let Some(app) = app else {
        return Err(Error::Waiting(Waiting {
            reason: reason::APP_NOT_FOUND,
            message: format!("OAuthApp {app_ns}/{app_name} does not exist"),
        }));
    };
    if app_ns != own_ns {
        let allowed = app.spec.client_namespaces.as_ref().is_some_and(|n| n.all || n.names.contains(&own_ns));
        if !allowed {
            return Err(Error::Waiting(Waiting {
                reason: reason::NAMESPACE_NOT_ALLOWED,
                message: format!(
                    "OAuthApp {app_ns}/{app_name} does not allow clients from namespace {own_ns} (spec.clientNamespaces)"
                ),
            }));
        }
    }
    if !app_ready(&app) {
        return Err(Error::Waiting(Waiting {
            reason: reason::APP_NOT_READY,
            message: format!("OAuthApp {app_ns}/{app_name} is not in the backend yet"),
        }));
    }
    // The app's namespace names the backend; checked again here, as the configuration may
    // have changed since the app was reconciled.
    let (name, configured) = tenancy::backend(ctx, app.spec.backend.as_deref(), &app_ns).await?;
    let pinned = &configured.access.pinned_deployment;
    tenancy::check_pinned(&name, pinned, "the OAuthApp's spec.deploymentId", app.spec.deployment_id.as_deref())?;
    let key = AppKey { deployment: app.spec.deployment_id.clone(), slug: app.spec.slug.clone() };
    Ok(Target::new(name, configured, key))
}

/// Whether an app exists in the backend (its status has the backend's id).
pub(super) fn app_ready(app: &OAuthApp) -> bool {
    app.status.as_ref().is_some_and(|s| s.app_id.is_some())
}

/// The backend of an `application` or `registered` client, if it is of the kind the spec needs.
async fn appless_target(obj: &OAuthClient, ctx: &Context) -> Result<Target, Error> {
    let ns = obj.namespace().unwrap_or_default();
    let (name, configured) = tenancy::backend(ctx, obj.spec.backend.as_deref(), &ns).await?;
    let owner_org = obj.spec.application.as_ref().and_then(|a| a.owner_org_id.as_deref());
    tenancy::check_pinned(&name, &configured.access.pinned_owner_org, "spec.application.ownerOrgId", owner_org)?;
    let (kind, needs) = super::desired::backend_kind(&obj.spec);
    if configured.backend.capabilities().kind != kind {
        return Err(Error::InvalidSpec(InvalidSpec(format!(
            "spec.backend: backend {name:?} is not {needs}, which this client's spec needs"
        ))));
    }
    Ok(Target::new(name, configured, AppKey::none()))
}

/// The backend client with this id, listing again once if the shared copy lacks it (or
/// reading it alone where the backend cannot list, or where it can and the id is one the
/// operator chose: a list read by offsets may skip a client while others come and go).
pub(super) async fn find(ctx: &Context, t: &Target, id: &str) -> Result<Option<Listed>, Error> {
    let caps = t.backend.capabilities();
    let read_alone = async || {
        let read = t.backend.get_client(&t.app, id).await.map_err(Error::backend("read client"))?;
        Ok(read.map(Listed::from))
    };
    if !caps.list_clients {
        return read_alone().await;
    }
    // A chosen id is read alone once the shared copy lacks it: no list per new client.
    let refreshes: &[bool] = if caps.chosen_client_ids { &[false] } else { &[false, true] };
    for &fresh in refreshes {
        let found = ctx
            .lists
            .with(&t.name, t.backend.as_ref(), &t.app, fresh, |list| list.iter().find(|c| c.id == id).cloned());
        if let Some(client) = found.await.map_err(Error::backend("list clients"))? {
            return Ok(Some(client));
        }
    }
    if caps.chosen_client_ids {
        return read_alone().await;
    }
    Ok(None)
}

/// Deactivates; a client the backend no longer knows counts as done.
pub(super) async fn deactivate(ctx: &Context, t: &Target, id: &str) -> Result<(), Error> {
    match t.backend.deactivate_client(&t.app, id).await {
        Ok(()) | Err(backend::Error::NotFound { .. }) => {
            if let Some(mut client) = find(ctx, t, id).await? {
                client.active = false;
                ctx.lists.put(&t.name, &t.app, client).await;
            }
            Ok(())
        }
        Err(e) => Err(Error::backend("deactivate client")(e)),
    }
}

/// Now, as the status records times (RFC 3339, seconds).
pub(super) fn now() -> String {
    rfc3339(Timestamp::now())
}

/// A time as the status records it.
pub(super) fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// With `deletionPolicy: Orphan` the backend client stays, let go: where the backend records
/// an owner and it is this resource, the record is cleared, so that the client is nobody's
/// (the platform's, to hand over with `adopt`). A failure is logged and leaves the record,
/// which an administrator can clear in the backend.
pub(super) async fn release(obj: &OAuthClient, ctx: &Context) {
    let Some(status) = &obj.status else { return };
    let (Some(recorded), Some(id), Some(uid)) = (&status.backend_ref, &status.backend_id, &obj.metadata.uid) else {
        return;
    };
    let result = async {
        let t = Target::recorded(ctx, recorded)?;
        if !t.backend.capabilities().records_owner {
            return Ok(());
        }
        // The full settings go back with the owner removed: read alone, not from the list.
        let read = t.backend.get_client(&t.app, id).await.map_err(Error::backend("read client"))?;
        let Some(mut current) = read.filter(|c| c.settings.owner() == Some(uid.as_str())) else { return Ok(()) };
        current.settings.set_owner("");
        let released =
            t.backend.update_client(&t.app, id, &current.settings).await.map_err(Error::backend("release client"))?;
        ctx.lists.put(&t.name, &t.app, released.into()).await;
        Ok::<_, Error>(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not release the orphaned client in the backend");
    }
}
