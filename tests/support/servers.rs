//! The real OAuth servers of the suites (Ory Hydra, Keycloak), where the operator chooses each
//! client's id and secret: what the tests ask of either.

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams},
};
use oauth_operator::api::OAuthClient;
use serde_json::{Value, json};

use super::{
    Env,
    resources::{credentials, until, wait},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    Hydra,
    Keycloak,
}

impl Server {
    /// The operator's backend for it in the suites, and the name of its spec block.
    pub fn name(self) -> &'static str {
        match self {
            Server::Hydra => "hydra",
            Server::Keycloak => "keycloak",
        }
    }

    /// The sample of a machine-to-machine client on it.
    pub fn sample(self) -> &'static str {
        match self {
            Server::Hydra => "oauthclient-hydra.yaml",
            Server::Keycloak => "oauthclient-keycloak.yaml",
        }
    }

    /// The token endpoint's status for these credentials (`client_credentials`, HTTP Basic).
    pub async fn token(self, id: &str, secret: &str) -> u16 {
        match self {
            Server::Hydra => Env::get().hydra.token_status(id, secret, true).await,
            Server::Keycloak => Env::get().keycloak.token_status(id, secret, true).await,
        }
    }

    /// The client as the admin API shows it, its lists sorted (Keycloak lists sets in no fixed
    /// order), so that "untouched" can compare two reads; `None` when there is none.
    pub async fn client(self, id: &str) -> Option<Value> {
        fn sort(value: &mut Value) {
            match value {
                Value::Array(items) => {
                    items.iter_mut().for_each(sort);
                    items.sort_by_key(|v| v.to_string());
                }
                Value::Object(map) => map.values_mut().for_each(sort),
                _ => {}
            }
        }
        let mut found = match self {
            Server::Hydra => Env::get().hydra.client(id).await,
            Server::Keycloak => Env::get().keycloak.client(id).await,
        }?;
        sort(&mut found);
        Some(found)
    }

    /// The token endpoint.
    pub fn token_url(self) -> String {
        match self {
            Server::Hydra => format!("{}/oauth2/token", Env::get().hydra.public),
            Server::Keycloak => Env::get().keycloak.token_url(),
        }
    }

    /// The token endpoint's status for a `client_credentials` request authenticated by a
    /// signed client assertion (RFC 7523, `private_key_jwt`).
    pub async fn token_with_assertion(self, assertion: &str) -> u16 {
        let form = [
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", assertion),
        ];
        let sent = reqwest::Client::new().post(self.token_url()).form(&form).send().await;
        sent.expect("POST token").status().as_u16()
    }

    /// How many keys the server publishes for the client (its JWKS).
    pub async fn published_keys(self, id: &str) -> usize {
        let Some(client) = self.client(id).await else { return 0 };
        let jwks = match self {
            Server::Hydra => client["jwks"].clone(),
            Server::Keycloak => {
                let text = client["attributes"]["jwks.string"].as_str().unwrap_or("{}").to_string();
                serde_json::from_str(&text).unwrap_or(Value::Null)
            }
        };
        jwks["keys"].as_array().map_or(0, Vec::len)
    }

    /// Every client id the server holds (Keycloak's own clients included).
    pub async fn client_ids(self) -> Vec<String> {
        match self {
            Server::Hydra => Env::get().hydra.client_ids().await,
            Server::Keycloak => Env::get().keycloak.client_ids().await,
        }
    }
}

/// Rotates the client of resource `name` by annotation, then deletes its credentials
/// `secret` and waits for it to be regenerated, proving each secret at the server: the old
/// refused, the new working, the client id kept. `first` is the secret issued at creation;
/// returns the regenerated one.
pub async fn rotate_and_regenerate(
    client: &Client,
    ns: &str,
    (name, secret): (&str, &str),
    server: Server,
    first: &str,
) -> String {
    let (id, _) = credentials(client, ns, secret).await;
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), ns);
    let annotate = json!({"metadata": {"annotations": {"oauth-operator.dev/rotate": "r1"}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(annotate)).await.expect("annotate");
    wait(&api, name, "rotated", |o| {
        o.and_then(|c| c.status.as_ref()).and_then(|s| s.last_handled_rotate_request.as_deref()) == Some("r1")
    })
    .await;
    let (same_id, second) = credentials(client, ns, secret).await;
    assert_eq!(same_id, id);
    assert_ne!(second, first);
    assert_eq!(server.token(&id, first).await, 401, "the old secret is refused after the rotation");
    assert_eq!(server.token(&id, &second).await, 200, "the new secret works");

    // The Secret deleted: regenerated, and the regenerated secret works.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    secrets.delete(secret, &DeleteParams::default()).await.expect("delete Secret");
    until("the Secret is regenerated", async || {
        let found = secrets.get_opt(secret).await.expect("get Secret").and_then(|s| s.data);
        found.and_then(|d| d.get("client_secret").cloned()).is_some_and(|v| v.0 != second.as_bytes())
    })
    .await;
    let (_, third) = credentials(client, ns, secret).await;
    assert_eq!(server.token(&id, &third).await, 200, "the regenerated secret works");
    assert_eq!(server.token(&id, &second).await, 401);
    third
}
