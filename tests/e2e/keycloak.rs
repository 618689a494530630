//! Keycloak, the most-deployed open-source identity server, as the backend (type `keycloak`):
//! every credential is proven at the realm's own token endpoint with a `client_credentials`
//! request, and "no write" is read from the realm's admin events.

use kube::{Api, Client, ResourceExt, api::DeleteParams};
use libtest_mimic::Trial;
use oauth_operator::{api::OAuthClient, backend::keycloak::internal_id};
use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    adoption::allow_adoption,
    support::{
        Env,
        env::{RESYNC, trial},
        keycloak::REALM,
        operator::USER,
        resources::*,
        samples::sample_with,
        servers::{Server, rotate_and_regenerate},
    },
    tenancy::another_teams_server_client,
};

pub fn trials() -> Vec<Trial> {
    vec![
        trial("keycloak::create_rotate_regenerate_repair_delete", create_rotate_regenerate_repair_delete),
        trial("keycloak::orphan_keeps_the_client_and_lets_it_go", orphan_keeps_the_client_and_lets_it_go),
        trial("keycloak::a_hand_made_client_is_taken_over_only_when_allowed", a_hand_made_client_is_taken_over),
        trial("keycloak::a_tenant_cannot_take_another_teams_client", |c| {
            another_teams_server_client(c, Server::Keycloak)
        }),
        trial("keycloak::every_auth_method_settles", every_auth_method_settles),
    ]
}

/// The sample Keycloak client as `name`, with a merge patch on its spec.
fn keycloak_doc(name: &str, spec: Value) -> Value {
    sample_with("oauthclient-keycloak.yaml", name, json!({"spec": spec, "metadata": {"namespace": null}}))
}

fn secret_name(name: &str) -> String {
    format!("{name}-keycloak")
}

async fn kc_client(client_id: &str) -> Option<Value> {
    Env::get().keycloak.client(client_id).await
}

async fn token(id: &str, secret: &str) -> u16 {
    Env::get().keycloak.token_status(id, secret, true).await
}

/// A change made in Keycloak's console: `PUT` of these fields on the client.
async fn console_edit(id: &str, fields: Value) {
    let path = format!("/admin/realms/{REALM}/clients/{id}");
    let (status, body) = Env::get().keycloak.admin_call(Method::PUT, &path, Some(fields)).await;
    assert_eq!(status, 204, "PUT {path}: {body}");
}

/// A client made in Keycloak by hand (its internal id is Keycloak's own).
async fn hand_made(client_id: &str, secret: &str, attributes: Value) {
    let body = json!({"clientId": client_id, "secret": secret, "serviceAccountsEnabled": true,
        "standardFlowEnabled": false, "publicClient": false, "attributes": attributes});
    let path = format!("/admin/realms/{REALM}/clients");
    let (status, answer) = Env::get().keycloak.admin_call(Method::POST, &path, Some(body)).await;
    assert_eq!(status, 201, "POST {path}: {answer}");
}

async fn create_rotate_regenerate_repair_delete(client: Client) {
    let ns = namespace(&client, "e2e-keycloak").await;
    let secret = secret_name("billing");
    apply::<OAuthClient>(&client, &ns, keycloak_doc("billing", json!({"secretTemplate": {"name": secret}}))).await;
    let billing = client_ready(&client, &ns, "billing").await;
    let uid = billing.metadata.uid.clone().expect("uid");
    let (id, first) = credentials(&client, &ns, &secret).await;
    assert_eq!(id, uid, "the clientId is the resource's UID: chosen, so a lost create is found again");
    assert_eq!(first.len(), 43, "256 bits from the CSPRNG, base64url");
    assert_eq!(token(&id, &first).await, 200, "Keycloak issues a token for the Secret's credentials");
    let keycloak = &Env::get().keycloak;
    assert_eq!(secret_key(&client, &ns, &secret, "token_url").await, Some(keycloak.token_url()));
    let issuer = format!("{}/realms/{REALM}", keycloak.url);
    assert_eq!(secret_key(&client, &ns, &secret, "issuer").await, Some(issuer));
    let stored = kc_client(&id).await.expect("in Keycloak");
    assert_eq!(stored["id"], internal_id(&id), "the internal id is derived from the clientId");
    assert_eq!(stored["attributes"]["oauth-operator.dev/owner"], uid.as_str(), "the owner is the resource");
    assert_eq!(stored["attributes"]["access.token.lifespan"], "900");
    assert_eq!(stored["description"], "Billing service (managed by oauth-operator)");
    assert_eq!(stored["optionalClientScopes"], json!(["email"]));
    let defaults = stored["defaultClientScopes"].as_array().expect("scopes").clone();
    assert!(defaults.contains(&json!("profile")) && defaults.contains(&json!("roles")), "{defaults:?}");
    assert!(!defaults.contains(&json!("email")), "only the scopes the spec names: {defaults:?}");

    // Rotation, then a lost Secret regenerated, each proven at Keycloak's token endpoint.
    let third = rotate_and_regenerate(&client, &ns, ("billing", &secret), Server::Keycloak, &first).await;
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), &ns);

    // A spec edit reaches Keycloak, scopes included (sub-resources of the client).
    let edit = keycloak_doc(
        "billing",
        json!({"secretTemplate": {"name": secret}, "keycloak": {"webOrigins": ["https://billing.example.com"],
            "optionalClientScopes": ["phone"]}}),
    );
    apply::<OAuthClient>(&client, &ns, edit).await;
    until("the web origins and scopes reach Keycloak", async || {
        kc_client(&id).await.is_some_and(|c| {
            c["webOrigins"] == json!(["https://billing.example.com"]) && c["optionalClientScopes"] == json!(["phone"])
        })
    })
    .await;

    // Changes made in Keycloak's console are put back at a resync; the secret is kept.
    let internal = internal_id(&id);
    console_edit(
        &internal,
        json!({"clientId": id, "description": "changed by hand", "directAccessGrantsEnabled": true,
            "attributes": {"oauth-operator.dev/owner": "", "access.token.lifespan": "60"}}),
    )
    .await;
    until("the console's change is repaired", async || {
        kc_client(&id).await.is_some_and(|c| {
            c["description"] == "Billing service (managed by oauth-operator)"
                && c["directAccessGrantsEnabled"] == false
                && c["attributes"]["oauth-operator.dev/owner"] == uid.as_str()
                && c["attributes"]["access.token.lifespan"] == "900"
        })
    })
    .await;
    assert_eq!(token(&id, &third).await, 200, "a repair keeps the secret");

    // Settled: two passes later (each reads the Secret) no admin event names the client.
    let settled = keycloak.writes_to(&internal).await;
    let before = api.get("billing").await.expect("get").resource_version();
    let env = Env::get();
    let reads = || env.cp.requests_by(USER, "get", "secrets", &secret);
    let start = reads();
    until_within("two more passes", RESYNC * 6, async || reads() >= start + 2).await;
    assert_eq!(keycloak.writes_to(&internal).await, settled, "no write in Keycloak at steady state");
    assert_eq!(api.get("billing").await.expect("get").resource_version(), before, "no status write");

    // What a NewClient rotation cut short by a kill leaves: the next chosen id, owned by the
    // resource, in no record.
    let abandoned = format!("{id}-r1");
    hand_made(&abandoned, "abandoned-secret-of-32-characters", json!({"oauth-operator.dev/owner": uid})).await;

    // Delete with the Delete policy: gone from Keycloak, refused at the token endpoint.
    api.delete("billing", &DeleteParams::default()).await.expect("delete");
    wait(&api, "billing", "gone", |o| o.is_none()).await;
    assert!(kc_client(&id).await.is_none(), "deleted in Keycloak");
    assert_eq!(token(&id, &third).await, 401);
    assert!(kc_client(&abandoned).await.is_none(), "the abandoned client is deleted too");

    // One admin token serves many requests (Keycloak's last a minute): never one per request.
    let metrics = reqwest::get(format!("http://{}/metrics", env.operator.http)).await.expect("metrics");
    let text = metrics.text().await.expect("text");
    let count = |token: bool| -> f64 {
        let lines =
            text.lines().filter(|l| l.starts_with("oauth_operator_backend_requests_total{") && l.contains("keycloak"));
        let lines = lines.filter(|l| l.contains("keycloak_admin_token") == token);
        lines.filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
    };
    let (tokens, requests) = (count(true), count(false));
    assert!(tokens >= 1.0 && tokens * 5.0 < requests, "{tokens} admin tokens for {requests} admin requests");
}

async fn orphan_keeps_the_client_and_lets_it_go(client: Client) {
    let ns = namespace(&client, "e2e-keycloak-orphan").await;
    let secret = secret_name("kept");
    let doc = keycloak_doc("kept", json!({"deletionPolicy": "Orphan", "secretTemplate": {"name": secret}}));
    apply::<OAuthClient>(&client, &ns, doc).await;
    client_ready(&client, &ns, "kept").await;
    let (id, value) = credentials(&client, &ns, &secret).await;
    let api: Api<OAuthClient> = Api::namespaced(client.clone(), &ns);
    api.delete("kept", &DeleteParams::default()).await.expect("delete");
    wait(&api, "kept", "gone", |o| o.is_none()).await;
    let kept = kc_client(&id).await.expect("kept in Keycloak");
    assert!(kept["attributes"].get("oauth-operator.dev/owner").is_none(), "let go: {kept}");
    assert_eq!(token(&id, &value).await, 200, "it still works");
}

/// A client the platform made by hand: refused until the platform lets the namespace adopt,
/// then taken over with a new secret; one owned by another resource is never touched.
async fn a_hand_made_client_is_taken_over(client: Client) {
    let ns = namespace(&client, "e2e-keycloak-adopt").await;
    let (id, old) = ("legacy-reports", "legacy-secret-value");
    hand_made(id, old, json!({})).await;
    let foreign = "someone-elses-reports";
    hand_made(foreign, old, json!({"oauth-operator.dev/owner": "another-resource-uid"})).await;
    let before = Server::Keycloak.client(foreign).await.expect("exists");

    let secret = secret_name("reports");
    let doc = keycloak_doc("reports", json!({"secretTemplate": {"name": secret}, "keycloak": {"clientId": id}}));
    apply::<OAuthClient>(&client, &ns, doc).await;
    let message = not_ready::<OAuthClient>(&client, &ns, "reports", "AdoptionNotAllowed").await;
    assert!(message.contains(id), "{message}");
    assert_eq!(token(id, old).await, 200, "untouched while refused");

    allow_adoption(&client, &ns).await;
    let reports = client_ready(&client, &ns, "reports").await;
    let (taken, new) = credentials(&client, &ns, &secret).await;
    assert_eq!(taken, id);
    assert_eq!(token(id, &new).await, 200, "taken over with a new secret");
    assert_eq!(token(id, old).await, 401, "the hand-made secret is replaced (taking over rotates once)");
    let stored = kc_client(id).await.expect("in Keycloak");
    assert_eq!(stored["attributes"]["oauth-operator.dev/owner"], reports.metadata.uid.expect("uid").as_str());
    assert_ne!(stored["id"], internal_id(id), "Keycloak's own internal id, found by clientId");

    let other = secret_name("thief");
    let doc = keycloak_doc("thief", json!({"secretTemplate": {"name": other}, "keycloak": {"clientId": foreign}}));
    apply::<OAuthClient>(&client, &ns, doc).await;
    let message = not_ready::<OAuthClient>(&client, &ns, "thief", "AlreadyClaimed").await;
    assert!(message.contains(foreign) && message.contains("another-resource-uid"), "{message}");
    assert_eq!(Server::Keycloak.client(foreign).await.expect("exists"), before, "untouched");
    assert_eq!(token(foreign, old).await, 200, "its secret still works");
    assert!(secret_key(&client, &ns, &other, "client_id").await.is_none(), "no Secret for a refused client");
}

/// `client_secret_post`, a public web client and `private_key_jwt` with an inline JWKS: each
/// settles (Keycloak echoes defaults, which the adapter normalises), and only the first has a
/// secret in its Secret.
async fn every_auth_method_settles(client: Client) {
    let ns = namespace(&client, "e2e-keycloak-methods").await;
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "use": "sig", "kid": "k1",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]});
    let cases = [
        ("post", json!({"clientAuthMethod": "client_secret_post", "keycloak": {"defaultClientScopes": null}})),
        (
            "public",
            json!({"clientAuthMethod": "none", "redirectUris": ["http://localhost:8080/cb", "https://web.example.com/cb"],
            "postLogoutRedirectUris": ["http://localhost:8080/bye"], "skipConsent": false,
            "accessTokenTtlSeconds": null, "clientUri": "https://web.example.com",
            "keycloak": {"grantTypes": ["authorization_code", "refresh_token"], "webOrigins": ["+"], "pkceMethod": "S256"}}),
        ),
        (
            "keys",
            json!({"clientAuthMethod": "private_key_jwt", "tokenEndpointAuthSigningAlg": "ES256", "jwks": jwks,
            "logoUri": "https://keys.example.com/logo.png", "idTokenSigningAlg": "RS256"}),
        ),
    ];
    for (name, spec) in &cases {
        let mut spec = spec.clone();
        spec["secretTemplate"] = json!({"name": secret_name(name)});
        apply::<OAuthClient>(&client, &ns, keycloak_doc(name, spec)).await;
    }
    let mut ids = Vec::new();
    for (name, _) in &cases {
        client_ready(&client, &ns, name).await;
        ids.push(secret_key(&client, &ns, &secret_name(name), "client_id").await.expect("client_id"));
    }
    let post = secret_key(&client, &ns, &secret_name("post"), "client_secret").await.expect("a secret");
    let keycloak = &Env::get().keycloak;
    assert_eq!(keycloak.token_status(&ids[0], &post, false).await, 200, "client_secret_post in the form");
    for name in ["public", "keys"] {
        assert!(secret_key(&client, &ns, &secret_name(name), "client_secret").await.is_none(), "{name}: no secret");
    }
    let public = kc_client(&ids[1]).await.expect("in Keycloak");
    assert_eq!(public["publicClient"], true);
    assert_eq!(public["standardFlowEnabled"], true);
    assert_eq!(public["consentRequired"], true, "skipConsent: false asks for consent");
    assert_eq!(public["attributes"]["pkce.code.challenge.method"], "S256");
    assert_eq!(public["attributes"]["post.logout.redirect.uris"], "http://localhost:8080/bye");
    let keys = kc_client(&ids[2]).await.expect("in Keycloak");
    assert_eq!(keys["clientAuthenticatorType"], "client-jwt");
    assert_eq!(keys["attributes"]["use.jwks.string"], "true");
    let stored: Value = serde_json::from_str(keys["attributes"]["jwks.string"].as_str().expect("text")).expect("JSON");
    assert_eq!(stored["keys"][0]["kid"], "k1");

    let writes = async || {
        let mut counts = Vec::new();
        for id in &ids {
            counts.push(keycloak.writes_to(&internal_id(id)).await);
        }
        counts
    };
    let before = writes().await;
    let env = Env::get();
    let reads = || env.cp.requests_by(USER, "get", "secrets", &secret_name("keys"));
    let start = reads();
    until_within("two more passes", RESYNC * 6, async || reads() >= start + 2).await;
    assert_eq!(writes().await, before, "settled: no client was written again");
}
