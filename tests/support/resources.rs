//! Helpers for tests that apply OAuthApps and OAuthClients and watch what the operator does.

use std::{
    collections::BTreeMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use k8s_openapi::{
    ByteString,
    api::{
        core::v1::{Namespace, Secret, ServiceAccount},
        rbac::v1::RoleBinding,
    },
};
use kube::{
    Api, Client, Resource,
    api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams},
    runtime::wait::await_condition,
};
use oauth_operator::{
    api::{OAuthApp, OAuthClient},
    backend::{
        AppKey, Backend, Client as BackendClient, SecretString, applications::ApplicationsBackend, mcp::McpBackend,
        wacht::WachtBackend,
    },
};
use serde_json::{Value, json};

use super::{Env, env::OPERATED, operator::API_KEY};

pub const REDIRECT: &str = "https://app.example.com/oauth/callback";
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Every secret the tests saw, for the final check that none reached the operator's log.
pub static SEEN_SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// A namespace of the test's own, so tests never see each other's objects.
pub async fn namespace(client: &Client, name: &str) -> String {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).expect("namespace");
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("create namespace {name}: {e}"),
    }
    name.to_string()
}

pub fn dynamic<K: Resource<DynamicType = ()>>(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &ApiResource::erase::<K>(&()))
}

/// Server-side apply as a user (field manager `e2e-user`) of an OAuthApp or OAuthClient, in
/// the shard of the suite's operator.
pub async fn apply<K: Resource<DynamicType = ()>>(client: &Client, ns: &str, doc: Value) {
    apply_in_shard::<K>(client, ns, doc, OPERATED.1).await;
}

/// As [`apply`], labelled for the operator whose selector is `e2e=<shard>`.
pub async fn apply_in_shard<K: Resource<DynamicType = ()>>(client: &Client, ns: &str, doc: Value, shard: &str) {
    let name = doc["metadata"]["name"].as_str().expect("name").to_string();
    let mut doc = doc;
    doc["apiVersion"] = K::api_version(&()).into();
    doc["kind"] = K::kind(&()).into();
    doc["metadata"]["labels"][OPERATED.0] = shard.into();
    dynamic::<K>(client, ns)
        .patch(&name, &PatchParams::apply("e2e-user").force(), &Patch::Apply(&doc))
        .await
        .unwrap_or_else(|e| panic!("apply {name}: {e}"));
}

pub fn app_doc(name: &str, slug: &str, spec: Value) -> Value {
    let mut doc = json!({"metadata": {"name": name}, "spec": {"slug": slug, "displayName": format!("App {slug}"),
        "scopes": [{"name": "mcp:invoke"}, {"name": "profile"}]}});
    crate::support::samples::merge_patch(&mut doc["spec"], &spec);
    doc
}

pub fn client_doc(name: &str, app: &str, spec: Value) -> Value {
    let mut doc = json!({"metadata": {"name": name}, "spec": {"appRef": {"name": app},
        "grantTypes": ["authorization_code", "refresh_token"], "redirectUris": [REDIRECT]}});
    crate::support::samples::merge_patch(&mut doc["spec"], &spec);
    doc
}

/// Waits until `check` holds for the object (or its absence), within [`TIMEOUT`].
pub async fn wait<K>(api: &Api<K>, name: &str, what: &str, check: impl Fn(Option<&K>) -> bool) -> Option<K>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let cond = move |obj: Option<&K>| check(obj);
    match tokio::time::timeout(TIMEOUT, await_condition(api.clone(), name, cond)).await {
        Ok(result) => result.expect("watch"),
        Err(_) => {
            let env = Env::get();
            panic!("{name}: not {what} within {TIMEOUT:?}; operator log:\n{}", env.operator.log_tail())
        }
    }
}

/// Ready=True for the current generation.
pub fn ready<K: Resource>(
    obj: Option<&K>,
    status: impl Fn(&K) -> Option<(Option<i64>, Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>)>,
) -> bool {
    obj.and_then(|o| status(o).map(|(observed, conditions)| (o.meta().generation, observed, conditions))).is_some_and(
        |(generation, observed, conditions)| {
            observed == generation && conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
        },
    )
}

pub async fn app_ready(client: &Client, ns: &str, name: &str) -> OAuthApp {
    let api: Api<OAuthApp> = Api::namespaced(client.clone(), ns);
    let check =
        |o: Option<&OAuthApp>| ready(o, |a| a.status.as_ref().map(|s| (s.observed_generation, s.conditions.clone())));
    wait(&api, name, "Ready", check).await.expect("app")
}

pub async fn client_ready(client: &Client, ns: &str, name: &str) -> OAuthClient {
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), ns);
    let check = |o: Option<&OAuthClient>| {
        ready(o, |c| c.status.as_ref().map(|s| (s.observed_generation, s.conditions.clone())))
    };
    wait(&api, name, "Ready", check).await.expect("client")
}

/// `(client_id, client_secret)` from the credentials Secret.
pub async fn credentials(client: &Client, ns: &str, secret: &str) -> (String, String) {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let found = api.get(secret).await.unwrap_or_else(|e| panic!("Secret {ns}/{secret}: {e}"));
    let data = found.data.expect("data");
    let text = |k: &str| String::from_utf8(data.get(k).unwrap_or_else(|| panic!("key {k}")).0.clone()).expect("utf-8");
    let pair = (text("client_id"), text("client_secret"));
    SEEN_SECRETS.lock().unwrap_or_else(|e| e.into_inner()).push(pair.1.clone());
    pair
}

/// The backend as a test sees it: the emulator, through the adapter.
pub fn backend() -> WachtBackend {
    backend_at(&Env::get().emu)
}

/// The emulator through the adapter, as the operator's `default` backend sees it.
pub fn backend_at(emu: &super::emulator::Emulator) -> WachtBackend {
    WachtBackend::new(emu.http(API_KEY, 5), Some("dep_e2e".into())).expect("backend")
}

/// The emulator's OAuth Applications API, as the operator's `apps` backend sees it.
pub fn applications() -> ApplicationsBackend {
    ApplicationsBackend::new(Env::get().emu.http(API_KEY, 5), None).expect("backend")
}

/// The emulator's MCP OAuth clients API, as the operator's `mcp` backend sees it.
pub fn mcp() -> McpBackend {
    McpBackend::new(Env::get().emu.http(API_KEY, 5), Some("cust_e2e".into()), None).expect("backend")
}

pub async fn backend_client(slug: &str, id: &str) -> BackendClient {
    let list = backend().list_clients(&AppKey { deployment: None, slug: slug.into() }).await.expect("list clients");
    list.into_iter().find(|c| c.id == id).unwrap_or_else(|| panic!("backend client {id} of {slug}"))
}

pub async fn token_status(client_id: &str, secret: &str) -> u16 {
    Env::get().emu.token_status(client_id, secret, true, REDIRECT).await
}

/// An app and a client in a fresh namespace, both Ready; returns the client as it stands.
pub async fn app_and_client(client: &Client, ns: &str, client_spec: Value) -> OAuthClient {
    namespace(client, ns).await;
    apply::<OAuthApp>(client, ns, app_doc("app", ns, json!({}))).await;
    apply::<OAuthClient>(client, ns, client_doc("web", "app", client_spec)).await;
    app_ready(client, ns, "app").await;
    client_ready(client, ns, "web").await
}

/// A namespace user: the ServiceAccount `dev` of `ns` (created with the namespace), bound
/// there to the built-in `edit` role; a client with its token.
pub async fn namespace_user(admin: &Client, ns: &str) -> Client {
    namespace(admin, ns).await;
    let apply = PatchParams::apply("e2e-admin").force();
    let account: ServiceAccount = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "dev", "namespace": ns}
    }))
    .expect("service account");
    Api::<ServiceAccount>::namespaced(admin.clone(), ns)
        .patch("dev", &apply, &Patch::Apply(&account))
        .await
        .expect("apply ServiceAccount");
    let binding: RoleBinding = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "dev-edit", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "ServiceAccount", "name": "dev", "namespace": ns}]
    }))
    .expect("role binding");
    Api::<RoleBinding>::namespaced(admin.clone(), ns)
        .patch("dev-edit", &apply, &Patch::Apply(&binding))
        .await
        .expect("apply RoleBinding");
    let token = super::operator::service_account_token(admin, ns, "dev").await;
    Env::get().cp.token_client(&token).await
}

/// Waits for `Ready=False` with this reason on an OAuthApp or OAuthClient; returns its message.
pub async fn not_ready<K: Resource<DynamicType = ()>>(client: &Client, ns: &str, name: &str, reason: &str) -> String {
    let ready = |o: Option<&DynamicObject>| {
        let conditions = o.and_then(|o| o.data["status"]["conditions"].as_array().cloned()).unwrap_or_default();
        conditions.into_iter().find(|c| c["type"] == "Ready" && c["status"] == "False" && c["reason"] == reason)
    };
    let obj = wait(&dynamic::<K>(client, ns), name, reason, |o| ready(o).is_some()).await;
    ready(obj.as_ref()).and_then(|c| c["message"].as_str().map(String::from)).expect("a message")
}

/// A registered (MCP) client of `provider` that reads its credentials from `<name>-upstream`.
pub fn registered_doc(name: &str, provider: &str, spec: Value) -> Value {
    let mut doc = json!({"metadata": {"name": name}, "spec": {"backend": "mcp",
        "registered": {"provider": provider, "providerName": "GitHub",
            "authorizationUrl": "https://github.com/login/oauth/authorize",
            "tokenUrl": "https://github.com/login/oauth/access_token",
            "scopes": ["read:user"], "metadata": {"token_auth_method": "client_secret_post"},
            "credentialsSecret": {"name": format!("{name}-upstream")}}}});
    crate::support::samples::merge_patch(&mut doc["spec"], &spec);
    doc
}

/// The user's Secret with upstream credentials; the secret is remembered for the log check.
pub async fn upstream_secret(client: &Client, ns: &str, name: &str, client_id: &str, secret: &str) {
    SEEN_SECRETS.lock().unwrap_or_else(|e| e.into_inner()).push(secret.to_string());
    let data = BTreeMap::from([
        ("client_id".to_string(), ByteString(client_id.as_bytes().to_vec())),
        ("client_secret".to_string(), ByteString(secret.as_bytes().to_vec())),
    ]);
    let doc = Secret {
        metadata: kube::api::ObjectMeta { name: Some(name.into()), ..Default::default() },
        data: Some(data),
        ..Default::default()
    };
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    api.patch(name, &PatchParams::apply("e2e-user").force(), &Patch::Apply(&doc)).await.expect("apply Secret");
}

/// Waits until `done`, within [`TIMEOUT`].
pub async fn until(what: &str, done: impl AsyncFnMut() -> bool) {
    until_within(what, TIMEOUT, done).await;
}

/// Waits until `done`, within `timeout`.
pub async fn until_within(what: &str, timeout: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done().await {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {timeout:?}; operator log:\n{}",
            Env::operator_log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The Secret's key, as text.
pub async fn secret_key(client: &Client, ns: &str, secret: &str, key: &str) -> Option<String> {
    let found = Api::<Secret>::namespaced(client.clone(), ns).get_opt(secret).await.expect("get Secret")?;
    found.data?.get(key).map(|v| String::from_utf8_lossy(&v.0).into_owned())
}
