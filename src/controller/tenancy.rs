//! The trust rules of `docs/multi-tenancy.md`: which namespaces may use a backend and which
//! backend-side scope they may choose, and which resource holds a backend object that two
//! resources name. Namespace users write the resources; only the operator's configuration and
//! what users cannot forge decide what the operator touches.

use k8s_openapi::{api::core::v1::Namespace, jiff::Timestamp};
use kube::{Api, Resource, ResourceExt, api::PartialObjectMeta, core::DeserializeGuard, runtime::reflector::Store};

use super::{Context, Error, conditions::reason, lists::Listed};
use crate::{
    api::{OAuthApp, OAuthClient},
    backend::{Backend, http::shorten},
    config::{AllowedNamespaces, Configured},
};

/// The backend `name` (`default` when not given) as configured, whoever asks.
pub(super) fn configured(ctx: &Context, name: Option<&str>) -> Result<(String, Configured), Error> {
    let name = name.unwrap_or("default");
    let configured = ctx.backends.get(name).ok_or_else(|| Error::UnknownBackend(name.to_string()))?;
    Ok((name.to_string(), configured.clone()))
}

/// The backend `name` (`default` when not given) for a resource of `namespace`, if the
/// operator's configuration lets that namespace use it.
pub(super) async fn backend(ctx: &Context, name: Option<&str>, namespace: &str) -> Result<(String, Configured), Error> {
    let (name, configured) = configured(ctx, name)?;
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
/// a registered client's provider, or the id the spec names (`adoptId`, or a chosen id: a UID
/// is nobody else's).
fn client_identity(client: &OAuthClient) -> Option<(String, String)> {
    let backend = client.spec.backend.clone().unwrap_or_else(|| "default".into());
    if let Some(registered) = &client.spec.registered {
        return Some((backend, format!("the {} client", registered.provider)));
    }
    let named = client.spec.adopt_id.as_deref().or_else(|| super::desired::spec_chosen_id(client))?;
    Some((backend, format!("backend client {named}")))
}

/// Refuses a `client` that names a backend client (a provider, an id) when an older OAuthClient
/// names the same one.
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

/// Who holds a backend object that a resource names, as far as the operator can tell from what
/// users cannot forge: the backend's own owner record, or a status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Owner {
    /// This resource: the backend records its UID, or its status names the object.
    This,
    /// Another resource (its `namespace/name`, or the UID the backend records).
    Another(String),
    /// Nobody: made by hand, by another tool that keeps no record, by an earlier install, or let
    /// go by an `Orphan` deletion. The platform's, until its configuration hands it over.
    Nobody,
    /// Another tool's record that names this resource's own namespace (hydra-maester's
    /// `<name>/<namespace>`): that namespace's object in that tool's model.
    ToolOfThisNamespace(String),
}

impl Owner {
    /// From the owner a backend records (`None` or empty: none); whether this resource's status
    /// names the object (its own also where an edit in the backend cleared the record, or where
    /// it was registered before owners were recorded); and the namespace another tool's record
    /// names, as the adapter reads it (hydra-maester's `<name>/<namespace>`).
    pub(super) fn recorded(
        record: Option<&str>,
        obj: &OAuthClient,
        in_status: bool,
        tool_namespace: Option<&str>,
    ) -> Owner {
        match record.filter(|o| !o.is_empty()) {
            Some(o) if Some(o) == obj.metadata.uid.as_deref() => Owner::This,
            // A backend's record reaches conditions and events: bounded, as all it sends.
            Some(o) if tool_namespace.is_some() && tool_namespace == obj.metadata.namespace.as_deref() => {
                Owner::ToolOfThisNamespace(shorten(o))
            }
            Some(o) => Owner::Another(format!("{:?}", shorten(o))),
            None if in_status => Owner::This,
            None => Owner::Nobody,
        }
    }
}

/// What a resource may do with a backend object it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Claim {
    /// Manage it: it is this resource's.
    Manage,
    /// Take it over, recording this resource as its owner from now on (`from`: the record it had).
    TakeOver { from: String },
}

/// The adoption rule (docs/multi-tenancy.md): a resource manages what is its own, takes over
/// what its own namespace's tool made, and adopts what nobody owns only where the operator's
/// configuration lets its namespace adopt on that backend. Checked before any backend write.
pub(super) async fn claim(
    ctx: &Context,
    backend: &str,
    namespace: &str,
    owner: Owner,
    what: &str,
) -> Result<Claim, Error> {
    let may_adopt = match &owner {
        Owner::Nobody => match &configured(ctx, Some(backend))?.1.access.adopt {
            Some(allowed) => namespace_allowed(ctx, allowed, namespace).await?,
            None => false,
        },
        _ => false,
    };
    decide(owner, may_adopt, backend, namespace, what)
}

/// Whether `obj` may manage `client`, found on `backend` (name, adapter) by `recorded` (its own
/// record, if any) or by an id or provider its spec names: `Some(from)` when it takes the
/// client over from that owner record. Where the backend records owners, only its record and
/// the status (`in_status`) count; elsewhere this resource's records, then other resources'.
pub(super) async fn claim_found(
    ctx: &Context,
    obj: &OAuthClient,
    (name, backend): (&str, &dyn Backend),
    client: &Listed,
    recorded: Option<&str>,
    in_status: bool,
) -> Result<Option<String>, Error> {
    let owner = match client.owner.as_deref() {
        Some(owner) => Owner::recorded(Some(owner), obj, in_status, backend.owner_namespace(owner)),
        None if in_status || recorded == Some(client.id.as_str()) => Owner::This,
        None => recorded_elsewhere(ctx, obj, &client.id).map_or(Owner::Nobody, Owner::Another),
    };
    let (client_id, id) = (shorten(&client.client_id), shorten(&client.id));
    let what = match client_id == id {
        true => format!("backend client {id}"),
        false => format!("backend client {client_id} (id {id})"),
    };
    match claim(ctx, name, &obj.namespace().unwrap_or_default(), owner, &what).await? {
        Claim::Manage => Ok(None),
        Claim::TakeOver { from } => Ok(Some(from)),
    }
}

/// [`claim`] once the configuration is read: `may_adopt` says whether `namespace` may adopt on
/// `backend`.
fn decide(owner: Owner, may_adopt: bool, backend: &str, namespace: &str, what: &str) -> Result<Claim, Error> {
    match owner {
        Owner::This => Ok(Claim::Manage),
        Owner::ToolOfThisNamespace(from) => Ok(Claim::TakeOver { from }),
        Owner::Nobody if may_adopt => Ok(Claim::TakeOver { from: String::new() }),
        Owner::Nobody => Err(Error::Conflict {
            reason: reason::ADOPTION_NOT_ALLOWED,
            message: format!(
                "{what} exists in backend {backend:?} and no resource owns it; namespace {namespace} may not adopt it \
                 (adopt in the operator's configuration)"
            ),
        }),
        Owner::Another(holder) => {
            Err(already_claimed(format!("{what} is owned by another resource ({holder}) in the backend")))
        }
    }
}

/// `namespace/name` of another OAuthClient whose status names backend client `id` as its
/// current or (not yet retired) previous client. Ids are compared whatever the backend entry:
/// two entries may reach one backend, and a false match only refuses.
pub(super) fn recorded_elsewhere(ctx: &Context, obj: &OAuthClient, id: &str) -> Option<String> {
    let store = ctx.clients.get()?;
    let names = |c: &OAuthClient| {
        c.status.as_ref().is_some_and(|s| {
            s.backend_id.as_deref() == Some(id)
                || s.previous_client.as_ref().is_some_and(|p| !p.retired && p.backend_id == id)
        })
    };
    other_with(&store.state(), obj, names)
}

/// `namespace/name` of another OAuthApp whose status names backend app `id`.
pub(super) fn app_recorded_elsewhere(ctx: &Context, obj: &OAuthApp, id: &str) -> Option<String> {
    let store = ctx.apps.get()?;
    other_with(&store.state(), obj, |a: &OAuthApp| a.status.as_ref().is_some_and(|s| s.app_id.as_deref() == Some(id)))
}

fn other_with<K: Resource>(
    all: &[std::sync::Arc<DeserializeGuard<K>>],
    obj: &K,
    names: impl Fn(&K) -> bool,
) -> Option<String> {
    all.iter()
        .filter_map(|guard| guard.0.as_ref().ok())
        .find(|other| other.meta().uid != obj.meta().uid && names(other))
        .map(|other| format!("{}/{}", other.meta().namespace.clone().unwrap_or_default(), other.name_any()))
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

    fn client() -> OAuthClient {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "oauth-operator.dev/v1alpha1", "kind": "OAuthClient",
            "metadata": {"name": "web", "namespace": "team-b", "uid": "u1"},
            "spec": {"hydra": {"grantTypes": ["client_credentials"]}}
        }))
        .expect("client")
    }

    /// An owner record, read as an [`Owner`], as each backend's adapter hands it over.
    #[test]
    fn owners_as_backends_record_them() {
        let obj = client();
        let maester = |owner: &'static str| owner.rsplit_once('/').map(|(_, ns)| ns);
        // Hydra: the client's `owner`, and hydra-maester's `<name>/<namespace>`.
        assert_eq!(Owner::recorded(Some("u1"), &obj, false, None), Owner::This);
        assert_eq!(Owner::recorded(Some(""), &obj, false, None), Owner::Nobody, "made with Hydra's admin API");
        assert_eq!(Owner::recorded(Some(""), &obj, true, None), Owner::This, "its own, the owner cleared by an edit");
        let ours = Owner::recorded(Some("web/team-b"), &obj, false, maester("web/team-b"));
        assert_eq!(ours, Owner::ToolOfThisNamespace("web/team-b".into()));
        for foreign in ["u2", "web/team-c"] {
            let owner = Owner::recorded(Some(foreign), &obj, true, maester(foreign));
            assert!(matches!(owner, Owner::Another(_)), "{foreign}");
        }
        // MCP: the owner in the client's metadata, or (before owners were recorded) the status.
        assert_eq!(Owner::recorded(None, &obj, true, None), Owner::This, "registered by an earlier release");
        assert_eq!(Owner::recorded(None, &obj, false, None), Owner::Nobody);
        assert!(matches!(Owner::recorded(Some("u2"), &obj, true, None), Owner::Another(_)), "the record wins");
        let huge = "x".repeat(100_000);
        let Owner::Another(said) = Owner::recorded(Some(&huge), &obj, false, None) else { panic!("another") };
        assert!(said.len() < 400, "a backend's record is bounded before it reaches a condition");
    }

    /// The adoption rule: owner × whether the namespace may adopt on the backend.
    #[test]
    fn adoption_truth_table() {
        use Owner::*;
        let table: [(Owner, bool, Result<Claim, &str>); 8] = [
            (This, false, Ok(Claim::Manage)),
            (This, true, Ok(Claim::Manage)),
            (Another("team-c/web".into()), false, Err(reason::ALREADY_CLAIMED)),
            (Another("team-c/web".into()), true, Err(reason::ALREADY_CLAIMED)),
            (Nobody, false, Err(reason::ADOPTION_NOT_ALLOWED)),
            (Nobody, true, Ok(Claim::TakeOver { from: String::new() })),
            (ToolOfThisNamespace("web/team-b".into()), false, Ok(Claim::TakeOver { from: "web/team-b".into() })),
            (ToolOfThisNamespace("web/team-b".into()), true, Ok(Claim::TakeOver { from: "web/team-b".into() })),
        ];
        for (owner, may_adopt, want) in table {
            let got = decide(owner.clone(), may_adopt, "hydra", "team-b", "backend client c");
            match (got, want) {
                (Ok(claim), Ok(wanted)) => assert_eq!(claim, wanted, "{owner:?} {may_adopt}"),
                (Err(e), Err(wanted)) => {
                    assert_eq!(e.reason(), wanted, "{owner:?} {may_adopt}");
                    assert!(e.stalled(), "waits for the platform: Stalled");
                    assert!(e.message().contains("backend client c"), "names the object: {}", e.message());
                }
                (got, want) => panic!("{owner:?} {may_adopt}: got {got:?}, want {want:?}"),
            }
        }
        let refused = decide(Nobody, false, "hydra", "team-b", "backend client c").expect_err("refused");
        assert!(refused.message().contains("namespace team-b may not adopt"), "{}", refused.message());
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
