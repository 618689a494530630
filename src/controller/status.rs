//! Status writes: `observedGeneration`, `Ready` and the kstatus conditions at the end of every
//! pass, by server-side apply and only when something changed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{
    Api, Resource, ResourceExt,
    api::{ApiResource, DynamicObject, Patch, PatchParams},
    core::{DeserializeGuard, error_boundary::InvalidObject},
    runtime::controller::Action,
};
use serde::Serialize;

use super::{Context, Error, MANAGER, conditions, held_off};
use crate::api::{OAuthAppStatus, OAuthClientStatus};

/// The status fields every resource has.
pub trait Conditioned {
    fn conditions(&mut self) -> &mut Vec<Condition>;
    fn observed_generation(&mut self) -> &mut Option<i64>;
}

impl Conditioned for OAuthAppStatus {
    fn conditions(&mut self) -> &mut Vec<Condition> {
        &mut self.conditions
    }
    fn observed_generation(&mut self) -> &mut Option<i64> {
        &mut self.observed_generation
    }
}

impl Conditioned for OAuthClientStatus {
    fn conditions(&mut self) -> &mut Vec<Condition> {
        &mut self.conditions
    }
    fn observed_generation(&mut self) -> &mut Option<i64> {
        &mut self.observed_generation
    }
}

/// Ends a pass: records `observedGeneration` and `Ready` from `result` (the Ready message, or
/// the error), announces a new failure with an event, and writes the status if it changed.
pub(super) async fn conclude<K, S>(
    ctx: &Context,
    api: &Api<K>,
    obj: &K,
    current: Option<&S>,
    mut status: S,
    result: Result<&str, &Error>,
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: Conditioned + Clone + Serialize + PartialEq,
{
    let generation = obj.meta().generation;
    *status.observed_generation() = generation;
    let (ok, why, message) = match result {
        Ok(message) => (true, conditions::reason::RECONCILED, message.to_string()),
        Err(e) => (false, e.reason(), e.message()),
    };
    let previous = current.cloned().map(|mut c| c.conditions().iter().find(|c| c.type_ == conditions::READY).cloned());
    let mut updated = conditions::set(status.conditions(), conditions::READY, ok, why, message.clone(), generation);
    let active = result.err().map(|e| if e.stalled() { conditions::STALLED } else { conditions::RECONCILING });
    for kind in [conditions::RECONCILING, conditions::STALLED] {
        if Some(kind) == active {
            updated = conditions::set(&updated, kind, true, why, message.clone(), generation);
        } else {
            updated.retain(|c| c.type_ != kind);
        }
    }
    *status.conditions() = updated;
    if let Err(e) = result
        && previous.flatten().is_none_or(|c| c.reason != why)
    {
        ctx.event(obj, e.event_type(), why, message).await;
    }
    if current == Some(&status) {
        return Ok(());
    }
    // A cache that lags this process's own last status write: that write said this already.
    let hash = super::watch::hash(&serde_json::to_string(&status).unwrap_or_default());
    if ctx.writes.wrote_status(obj, hash) {
        return Ok(());
    }
    let version = write_status(api, obj, current, &status).await?;
    ctx.writes.record_status(obj, hash, version.as_deref());
    Ok(())
}

/// An object the operator cannot even decode (an older CRD let it in): its status says why.
async fn report_undecodable<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    invalid: &InvalidObject,
) -> Result<Action, Error> {
    let meta = &invalid.metadata;
    let api: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        meta.namespace.as_deref().unwrap_or_default(),
        &ApiResource::erase::<K>(&()),
    );
    let ready = conditions::set(
        &[],
        conditions::READY,
        false,
        conditions::reason::INVALID_SPEC,
        invalid.error.clone(),
        meta.generation,
    );
    let patch = serde_json::json!({"status": {"observedGeneration": meta.generation, "conditions": ready}});
    api.patch_status(meta.name.as_deref().unwrap_or_default(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(Error::kube("write status"))?;
    Ok(Action::await_change())
}

/// Writes `status` by server-side apply when it differs from `current`.
pub(super) async fn write_status<K, S>(
    api: &Api<K>,
    obj: &K,
    current: Option<&S>,
    status: &S,
) -> Result<Option<String>, Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(None);
    }
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let written = api
        .patch_status(&obj.name_any(), &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch))
        .await
        .map_err(Error::kube("write status"))?;
    Ok(written.meta().resource_version.clone())
}

/// The object a pass starts from: the cached one, or (when the cache does not show this
/// process's last status write yet) the API server's, so that the status the pass writes
/// builds on the last one. `None`: it is gone.
pub(super) async fn current<'a, K>(
    ctx: &Context,
    api: &Api<K>,
    obj: &'a K,
) -> Result<Option<std::borrow::Cow<'a, K>>, Error>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    if !ctx.writes.status_is_stale(obj) {
        return Ok(Some(std::borrow::Cow::Borrowed(obj)));
    }
    let fresh = api.get_opt(&obj.name_any()).await.map_err(Error::kube("read the object again"))?;
    Ok(fresh.map(std::borrow::Cow::Owned))
}

/// The start of every pass: an object that cannot be decoded gets its condition, one that is
/// backing off waits. `Ok(obj)` goes on with the pass.
pub(super) async fn prelude<'a, K>(
    guard: &'a DeserializeGuard<K>,
    ctx: &Context,
) -> Result<&'a K, Result<Action, Error>>
where
    K: Resource<DynamicType = ()>,
{
    match &guard.0 {
        Err(invalid) => Err(report_undecodable::<K>(ctx, invalid).await),
        Ok(obj) => match held_off(&ctx.backoffs, obj) {
            Some(wait) => Err(Ok(wait)),
            None => Ok(obj),
        },
    }
}
