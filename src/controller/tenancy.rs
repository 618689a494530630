//! The trust rules of `docs/multi-tenancy.md`: which namespaces may use a backend and which
//! backend-side scope they may choose, and which resource holds a backend object that two
//! resources name. Namespace users write the resources; only the operator's configuration and
//! what users cannot forge decide what the operator touches.

use k8s_openapi::{api::core::v1::Namespace, jiff::Timestamp};
use kube::{Api, Resource, ResourceExt, api::PartialObjectMeta, core::DeserializeGuard, runtime::reflector::Store};

use super::{Context, Error, conditions::reason};
use crate::{
    api::{OAuthApp, OAuthClient},
    config::{AllowedNamespaces, Configured},
};

/// The key of a registered client's metadata in the backend that names the resource (UID)
/// that owns it, where the backend keeps free-form metadata.
pub const OWNER_METADATA: &str = "oauth-operator.dev/owner";

/// The backend `name` (`default` when not given) for a resource of `namespace`, if the
/// operator's configuration lets that namespace use it.
pub(super) async fn backend(ctx: &Context, name: Option<&str>, namespace: &str) -> Result<(String, Configured), Error> {
    let (name, configured) = ctx.configured(name)?;
    if let Some(allowed) = &configured.access.namespaces
        && !namespace_allowed(ctx, allowed, namespace).await?
    {
        return Err(not_allowed(format!(
            "namespace {namespace} may not use backend {name:?} (allowedNamespaces in the operator's configuration)"
        )));
    }
    Ok((name, configured))
}

/// Named, or labelled as the configuration asks. Users cannot label their namespace: the
/// Namespace object is cluster-scoped.
async fn namespace_allowed(ctx: &Context, allowed: &AllowedNamespaces, namespace: &str) -> Result<bool, Error> {
    if allowed.names.iter().any(|n| n == namespace) {
        return Ok(true);
    }
    if allowed.match_labels.is_empty() {
        return Ok(false);
    }
    let api: Api<PartialObjectMeta<Namespace>> = Api::all(ctx.client.clone());
    let meta = api.get_metadata_opt(namespace).await.map_err(Error::kube("read the Namespace"))?;
    Ok(meta.is_some_and(|m| allowed.match_labels.iter().all(|(k, v)| m.labels().get(k) == Some(v))))
}

/// Refuses a choice (`field`, such as `spec.deploymentId`) that the backend's configuration
/// pins to another value. `pinned`: `None` when not pinned, else the configured value.
pub(super) fn check_pinned(
    backend: &str,
    pinned: &Option<Option<String>>,
    field: &str,
    chosen: Option<&str>,
) -> Result<(), Error> {
    let Some(configured) = pinned else { return Ok(()) };
    if chosen.is_none() || chosen == configured.as_deref() {
        return Ok(());
    }
    let value = configured.as_deref().map_or("the one of its API key".to_string(), |v| format!("{v:?}"));
    Err(not_allowed(format!("{field}: backend {backend:?} pins it to {value}; leave it unset")))
}

fn not_allowed(message: String) -> Error {
    Error::Refused { reason: reason::BACKEND_NOT_ALLOWED, message }
}

/// What identifies an app in the backend: backend name, deployment, slug.
fn app_identity(ctx: &Context, app: &OAuthApp) -> Option<(String, Option<String>, String)> {
    let name = app.spec.backend.as_deref().unwrap_or("default");
    let deployment = app.spec.deployment_id.clone().or_else(|| ctx.backends.get(name)?.deployment_id.clone());
    Some((name.to_string(), deployment, app.spec.slug.clone()))
}

/// Refuses `app` when an older OAuthApp manages the same backend app.
pub(super) async fn claim_app(ctx: &Context, app: &OAuthApp) -> Result<(), Error> {
    let Some(store) = ctx.apps.get() else { return Ok(()) };
    let mine = app_identity(ctx, app);
    let holder = older_holder(store, app, |other| app_identity(ctx, other) == mine).await;
    match holder {
        Some(holder) => Err(already_claimed(format!(
            "backend app {} is managed by OAuthApp {holder}, which claimed it first",
            app.spec.slug
        ))),
        None => Ok(()),
    }
}

/// What identifies a client in the backend that two resources could name: backend name, and
/// a registered client's provider or a hydra client's chosen id (a UID is nobody else's).
fn client_identity(client: &OAuthClient) -> Option<(String, String)> {
    let backend = client.spec.backend.clone().unwrap_or_else(|| "default".into());
    if let Some(registered) = &client.spec.registered {
        return Some((backend, format!("the {} client", registered.provider)));
    }
    let chosen = client.spec.hydra.as_ref()?.client_id.as_ref()?;
    Some((backend, format!("Hydra client {chosen}")))
}

/// Refuses a registered or hydra `client` when an older OAuthClient names the same backend
/// client.
pub(super) async fn claim_client(ctx: &Context, client: &OAuthClient) -> Result<(), Error> {
    let Some(store) = ctx.clients.get() else { return Ok(()) };
    let mine = client_identity(client);
    if mine.is_none() {
        return Ok(());
    }
    let holder = older_holder(store, client, |other| client_identity(other) == mine).await;
    match (holder, mine) {
        (Some(holder), Some((backend, what))) => Err(already_claimed(format!(
            "{what} of backend {backend:?} is managed by OAuthClient {holder}, which claimed it first"
        ))),
        _ => Ok(()),
    }
}

/// Whether `obj` may manage the Hydra client with this `owner`: its own, one without an owner,
/// or one of hydra-maester's (`<name>/<namespace>`) in `obj`'s namespace. `Ok(Some(owner))`:
/// it takes the client over from that owner.
pub(super) fn claim_hydra_owner(obj: &OAuthClient, id: &str, owner: &str) -> Result<Option<String>, Error> {
    let uid = obj.metadata.uid.as_deref().unwrap_or_default();
    if owner == uid {
        return Ok(None);
    }
    let namespace = obj.namespace().unwrap_or_default();
    let maester_here = owner.rsplit_once('/').is_some_and(|(name, ns)| !name.is_empty() && ns == namespace);
    if owner.is_empty() || maester_here {
        return Ok(Some(owner.to_string()));
    }
    Err(already_claimed(format!(
        "Hydra client {id} is owned by {owner:?}, not by this OAuthClient; only a client without an owner or a hydra-maester client of namespace {namespace} is taken over"
    )))
}

/// Refuses a backend object whose recorded owner is another resource.
pub(super) fn check_owner(recorded: Option<&str>, obj_uid: Option<&str>, what: &str) -> Result<(), Error> {
    match recorded {
        Some(owner) if Some(owner) != obj_uid => {
            Err(already_claimed(format!("{what} is owned by another resource (UID {owner}) in the backend")))
        }
        _ => Ok(()),
    }
}

pub(super) fn already_claimed(message: String) -> Error {
    Error::Conflict { reason: reason::ALREADY_CLAIMED, message }
}

/// `namespace/name` of the oldest other object of the store that `same` accepts, if it is
/// older than `obj`: the first claimant keeps what both name.
async fn older_holder<K>(store: &Store<DeserializeGuard<K>>, obj: &K, same: impl Fn(&K) -> bool) -> Option<String>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    // A store still loading would miss the holder.
    store.wait_until_ready().await.ok()?;
    store
        .state()
        .iter()
        .filter_map(|guard| guard.0.as_ref().ok())
        .filter(|other| other.meta().uid != obj.meta().uid && other.meta().deletion_timestamp.is_none())
        .filter(|other| same(other) && seniority(*other) < seniority(obj))
        .min_by_key(|other| seniority(*other))
        .map(|other| format!("{}/{}", other.namespace().unwrap_or_default(), other.name_any()))
}

/// Who came first: the older, then by namespace and name (creation times have seconds only).
fn seniority<K: Resource>(obj: &K) -> (Option<Timestamp>, String, String) {
    let meta = obj.meta();
    (meta.creation_timestamp.as_ref().map(|t| t.0), meta.namespace.clone().unwrap_or_default(), obj.name_any())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_choices() {
        let pinned = Some(Some("dep_b".to_string()));
        assert!(check_pinned("b", &pinned, "spec.deploymentId", None).is_ok(), "unset takes the pinned value");
        assert!(check_pinned("b", &pinned, "spec.deploymentId", Some("dep_b")).is_ok());
        let err = check_pinned("b", &pinned, "spec.deploymentId", Some("dep_c")).expect_err("refused");
        assert_eq!(err.reason(), reason::BACKEND_NOT_ALLOWED);
        assert!(err.to_string().contains("spec.deploymentId") && err.to_string().contains("dep_b"), "{err}");
        assert!(check_pinned("b", &Some(None), "spec.deploymentId", Some("dep_c")).is_err(), "pinned to the key's");
        assert!(check_pinned("b", &None, "spec.deploymentId", Some("dep_c")).is_ok(), "not pinned");
    }

    #[test]
    fn hydra_owners() {
        let client: OAuthClient = serde_json::from_value(serde_json::json!({
            "apiVersion": "oauth-operator.dev/v1alpha1", "kind": "OAuthClient",
            "metadata": {"name": "web", "namespace": "team-b", "uid": "u1"},
            "spec": {"hydra": {"grantTypes": ["client_credentials"]}}
        }))
        .expect("client");
        assert_eq!(claim_hydra_owner(&client, "c", "u1").ok(), Some(None), "its own");
        assert_eq!(claim_hydra_owner(&client, "c", "").ok(), Some(Some(String::new())), "no owner: taken over");
        assert_eq!(claim_hydra_owner(&client, "c", "web/team-b").ok(), Some(Some("web/team-b".into())), "maester's");
        for foreign in ["u2", "web/team-c", "/team-b", "team-b"] {
            let err = claim_hydra_owner(&client, "c", foreign).expect_err(foreign);
            assert_eq!(err.reason(), reason::ALREADY_CLAIMED);
        }
    }

    #[test]
    fn recorded_owner() {
        assert!(check_owner(None, Some("u1"), "client").is_ok());
        assert!(check_owner(Some("u1"), Some("u1"), "client").is_ok());
        let err = check_owner(Some("u2"), Some("u1"), "client").expect_err("refused");
        assert_eq!(err.reason(), reason::ALREADY_CLAIMED);
    }

    #[test]
    fn the_older_comes_first() {
        let at = |secs: i64, ns: &str, name: &str| {
            let mut app: OAuthApp = serde_json::from_value(serde_json::json!({
                "apiVersion": "oauth-operator.dev/v1alpha1", "kind": "OAuthApp",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"slug": "s", "displayName": "S"}
            }))
            .expect("app");
            app.metadata.creation_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::from_second(secs).expect("t")));
            app
        };
        assert!(seniority(&at(1, "team-c", "a")) < seniority(&at(2, "team-b", "a")));
        assert!(seniority(&at(1, "team-b", "a")) < seniority(&at(1, "team-c", "a")), "same second: by namespace");
    }
}
