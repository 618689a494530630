//! Credentials the user brings (`spec.clientSecretRef`), on the real Ory Hydra and Keycloak:
//! the Secret comes after the OAuthClient (the External Secrets order), the client is created
//! with its value and never with one of the operator's, a change is pushed, and a deleted or
//! unusable Secret leaves the client as it is and says why.

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use libtest_mimic::Trial;
use oauth_operator::api::OAuthClient;
use serde_json::json;

use crate::support::{env::trial, resources::*, samples::sample_with, servers::Server};

pub fn trials() -> Vec<Trial> {
    vec![
        trial("brought::hydra_registers_and_pushes_the_users_secret", |c| brought_secret(c, Server::Hydra)),
        trial("brought::keycloak_registers_and_pushes_the_users_secret", |c| brought_secret(c, Server::Keycloak)),
    ]
}

/// Keycloak's client asks for a copy of the secret in its credentials Secret.
fn copies(server: Server) -> bool {
    server == Server::Keycloak
}

fn doc(server: Server, name: &str, secret: &str) -> serde_json::Value {
    let reference = json!({"name": format!("{name}-credentials"), "copy": copies(server)});
    let spec = json!({"clientSecretRef": reference, "secretTemplate": {"name": secret}});
    let sample = match server {
        Server::Hydra => server.sample(),
        Server::Keycloak => "oauthclient-secret-ref.yaml",
    };
    sample_with(sample, name, json!({"spec": spec, "metadata": {"namespace": null}}))
}

/// The user's Secret as External Secrets would write it.
async fn put_users_secret(client: &Client, ns: &str, name: &str, value: &str) {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret = Secret {
        metadata: kube::api::ObjectMeta { name: Some(name.into()), ..Default::default() },
        data: Some([("client_secret".to_string(), ByteString(value.as_bytes().to_vec()))].into()),
        ..Default::default()
    };
    if api.get_opt(name).await.expect("get").is_some() {
        let patch = json!({"data": {"client_secret": ByteString(value.as_bytes().to_vec())}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(patch)).await.expect("update the user's Secret");
    } else {
        api.create(&PostParams::default(), &secret).await.expect("create the user's Secret");
    }
}

async fn brought_secret(client: Client, server: Server) {
    let ns = namespace(&client, &format!("e2e-brought-{server:?}").to_lowercase()).await;
    let (name, secret) = ("orders", "orders-credentials-out");
    let users = format!("{name}-credentials");
    apply::<OAuthClient>(&client, &ns, doc(server, name, secret)).await;
    let message = not_ready::<OAuthClient>(&client, &ns, name, "CredentialsSecretNotReady").await;
    assert!(message.contains(&users) && message.contains("no backend client is created"), "{message}");
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), &ns);
    let uid = api.get(name).await.expect("get").metadata.uid.expect("uid");
    assert!(
        server.client(&uid).await.is_none(),
        "no client with a secret of the operator's while the Secret is missing"
    );

    // The Secret arrives after the OAuthClient.
    let first = "brought-secret-value-one-0123456789";
    put_users_secret(&client, &ns, &users, first).await;
    client_ready(&client, &ns, name).await;
    assert_eq!(server.token(&uid, first).await, 200, "created with the user's secret");
    let out: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let data = out.get(secret).await.expect("the credentials Secret").data.expect("data");
    assert_eq!(data.get("client_id").map(|v| v.0.clone()), Some(uid.clone().into_bytes()));
    assert!(data.contains_key("token_url"), "the endpoints are written: {:?}", data.keys());
    let copied = || async {
        let data = out.get(secret).await.expect("the credentials Secret").data.expect("data");
        data.get("client_secret").map(|v| String::from_utf8_lossy(&v.0).into_owned())
    };
    match copies(server) {
        true => assert_eq!(copied().await.as_deref(), Some(first), "copied, as asked"),
        false => assert!(!data.contains_key("client_secret"), "the secret is not copied unless asked"),
    }

    // The source rotates: the new value is pushed, the old one refused.
    let second = "brought-secret-value-two-9876543210";
    put_users_secret(&client, &ns, &users, second).await;
    until("the new secret works", async || server.token(&uid, second).await == 200).await;
    assert_eq!(server.token(&uid, first).await, 401, "the old secret is refused");
    if copies(server) {
        until("the copy follows", async || copied().await.as_deref() == Some(second)).await;
    }
    let users_secret = Api::<Secret>::namespaced(client.clone(), &ns).get(&users).await.expect("get");
    assert!(
        users_secret.metadata.owner_references.is_none()
            && users_secret
                .metadata
                .managed_fields
                .iter()
                .flatten()
                .all(|f| f.manager.as_deref() != Some("oauth-operator")),
        "the operator never writes the user's Secret"
    );

    // A value the backends would not take: refused, without quoting it; the client keeps working.
    put_users_secret(&client, &ns, &users, "abc").await;
    let message = not_ready::<OAuthClient>(&client, &ns, name, "CredentialsSecretInvalid").await;
    assert!(message.contains("3 characters") && !message.contains("abc\""), "{message}");
    assert_eq!(server.token(&uid, second).await, 200, "the client keeps the last good secret");

    // The Secret deleted: the client stays as it is, and the resource says why.
    Api::<Secret>::namespaced(client.clone(), &ns).delete(&users, &DeleteParams::default()).await.expect("delete");
    let message = not_ready::<OAuthClient>(&client, &ns, name, "CredentialsSecretNotReady").await;
    assert!(message.contains("keeps the secret last pushed"), "{message}");
    assert_eq!(server.token(&uid, second).await, 200, "still the last secret pushed");
    assert!(server.client(&uid).await.is_some());

    api.delete(name, &DeleteParams::default()).await.expect("delete");
    wait(&api, name, "gone", |o| o.is_none()).await;
    assert!(server.client(&uid).await.is_none(), "deleted with the resource");
}
