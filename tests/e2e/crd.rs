//! The CRDs on a real API server: installed and Established, documented for `kubectl explain`,
//! valid samples accepted, and each invalid sample rejected with a message naming the field.

use std::process::Command;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams},
};
use libtest_mimic::Trial;
use oauth_operator::api::{OAuthApp, OAuthClient};
use serde_json::{Value, json};

use crate::support::{
    Env,
    env::trial,
    samples::{sample, sample_with},
};

const NS: &str = "default";
const APP: &str = "oauthapp.yaml";
const CLIENT: &str = "oauthclient.yaml";
const APPLICATION: &str = "oauthclient-application.yaml";
const REGISTERED: &str = "oauthclient-registered.yaml";
const HYDRA: &str = "oauthclient-hydra.yaml";
const ADOPT: &str = "oauthclient-adopt.yaml";
const KEYCLOAK: &str = "oauthclient-keycloak.yaml";
const SECRET_REF: &str = "oauthclient-secret-ref.yaml";
const MANAGED_KEYS: &str = "oauthclient-managed-keys.yaml";

pub fn trials() -> Vec<Trial> {
    let mut trials = vec![
        trial(
            "crd::both_crds_are_established_with_columns_and_names",
            both_crds_are_established_with_columns_and_names,
        ),
        Trial::test("crd::kubectl_explain_shows_field_docs", || {
            kubectl_explain();
            Ok(())
        }),
        trial("crd::samples_are_accepted_and_defaulted", samples_are_accepted_and_defaulted),
        trial("crd::app_accepts_allowed_updates", app_accepts_allowed_updates),
    ];
    for (name, file, patch) in valid_cases() {
        trials.push(trial(format!("crd::valid::{name}"), move |c| async move {
            create(&c, file, &sample_with(file, name, patch)).await.unwrap_or_else(|e| {
                panic!("{name} was rejected: {e}");
            });
        }));
    }
    for (name, file, patch, expected) in invalid_cases() {
        trials.push(trial(format!("crd::invalid::{name}"), move |c| async move {
            let err = create(&c, file, &sample_with(file, name, patch)).await;
            assert_rejected(name, err, expected);
        }));
    }
    for (name, file, update, expected) in invalid_updates() {
        trials.push(trial(format!("crd::invalid_update::{name}"), move |c| async move {
            create(&c, file, &sample_with(file, name, json!({}))).await.expect("valid sample");
            let err = dynamic(&c, file).patch(name, &PatchParams::default(), &Patch::Merge(&update)).await.map(drop);
            assert_rejected(name, err, expected);
        }));
    }
    trials
}

/// Variations of the samples that the schema must accept.
fn valid_cases() -> Vec<(&'static str, &'static str, Value)> {
    let pem = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n";
    vec![
        ("application-sample", APPLICATION, json!({})),
        ("registered-sample", REGISTERED, json!({})),
        ("registered-without-redirects", REGISTERED, json!({"spec": {"redirectUris": null}})),
        ("hydra-sample", HYDRA, json!({})),
        ("adopt-sample", ADOPT, json!({})),
        ("adopt-wacht-client", CLIENT, json!({"spec": {"adoptId": "42"}})),
        (
            "hydra-authorization-code",
            HYDRA,
            json!({"spec": {"clientAuthMethod": "client_secret_post", "redirectUris": ["https://app.example.com/cb"],
                "postLogoutRedirectUris": ["https://app.example.com/bye"], "skipConsent": true, "accessTokenFormat": "jwt",
                "hydra": {"grantTypes": ["authorization_code", "refresh_token"], "responseTypes": ["code", "id_token"],
                    "tokenLifespans": {"authorizationCodeRefreshToken": "720h", "refreshTokenAccessToken": "1h30m"}}}}),
        ),
        (
            "hydra-public-client",
            HYDRA,
            json!({"spec": {"clientAuthMethod": "none", "redirectUris": ["http://localhost:8080/cb"],
                "hydra": {"grantTypes": ["authorization_code"]}, "secretTemplate": {"keys": {"tokenUrl": null}}}}),
        ),
        (
            "hydra-private-key-jwt",
            HYDRA,
            json!({"spec": {"clientAuthMethod": "private_key_jwt", "tokenEndpointAuthSigningAlg": "ES256",
                "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}}}),
        ),
        ("keycloak-sample", KEYCLOAK, json!({})),
        ("secret-ref-sample", SECRET_REF, json!({})),
        ("managed-keys-sample", MANAGED_KEYS, json!({})),
        ("managed-keys-eddsa", MANAGED_KEYS, json!({"spec": {"managedKeys": {"algorithm": "EdDSA"}}})),
        (
            "secret-ref-on-hydra-copied",
            HYDRA,
            json!({"spec": {"clientSecretRef": {"name": "orders-worker-credentials", "copy": true}}}),
        ),
        (
            "keycloak-web-client",
            KEYCLOAK,
            json!({"spec": {"clientAuthMethod": "client_secret_post", "redirectUris": ["https://app.example.com/cb"],
                "postLogoutRedirectUris": ["https://app.example.com/bye"], "skipConsent": false,
                "idTokenSigningAlg": "RS256", "clientUri": "https://app.example.com",
                "keycloak": {"grantTypes": ["authorization_code", "refresh_token"], "webOrigins": ["+"],
                    "pkceMethod": "S256", "clientId": "web-app"}}}),
        ),
        (
            "keycloak-private-key-jwt",
            KEYCLOAK,
            json!({"spec": {"clientAuthMethod": "private_key_jwt", "tokenEndpointAuthSigningAlg": "ES256",
                "jwksUri": "https://keys.example.com/jwks.json"}}),
        ),
        ("hydra-take-over", HYDRA, json!({"spec": {"hydra": {"clientId": "maester-orders_1.v2~x"}}})),
        ("rotation-every", CLIENT, json!({"spec": {"rotation": {"every": "720h", "strategy": "InPlace"}}})),
        ("rotation-every-minute", HYDRA, json!({"spec": {"rotation": {"every": "1m"}}})),
        (
            "app-minimal",
            APP,
            json!({"spec": {"fqdn": null, "verifyDomain": null, "scopes": null, "description": null}}),
        ),
        ("public-client", CLIENT, json!({"spec": {"clientAuthMethod": "none"}})),
        (
            "loopback-http",
            CLIENT,
            json!({"spec": {"redirectUris": ["http://127.0.0.1:9000/cb", "http://[::1]/cb", "http://localhost/cb"]}}),
        ),
        (
            "private-key-jwt-uri",
            CLIENT,
            json!({"spec": {"clientAuthMethod": "private_key_jwt", "jwksUri": "https://keys.example.com/jwks.json", "tokenEndpointAuthSigningAlg": "ES256"}}),
        ),
        (
            "private-key-jwt-jwks",
            CLIENT,
            json!({"spec": {"clientAuthMethod": "private_key_jwt", "jwks": {"keys": [{"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256", "n": "0vx7agoebGcQSuu", "e": "AQAB"}]}}}),
        ),
        ("private-key-jwt-pem", CLIENT, json!({"spec": {"clientAuthMethod": "private_key_jwt", "publicKeyPem": pem}})),
        (
            "client-secret-jwt",
            CLIENT,
            json!({"spec": {"clientAuthMethod": "client_secret_jwt", "tokenEndpointAuthSigningAlg": "HS256"}}),
        ),
        (
            "all-client-fields",
            CLIENT,
            json!({"spec": {
            "postLogoutRedirectUris": ["https://app.example.com/bye"], "clientName": "Web",
            "clientUri": "https://app.example.com", "logoUri": "https://app.example.com/logo.png",
            "tosUri": "https://app.example.com/tos", "policyUri": "https://app.example.com/privacy",
            "contacts": ["ops@example.com"], "softwareId": "web", "softwareVersion": "1.2.3",
            "idTokenSigningAlg": "RS256", "accessTokenFormat": "jwt", "accessTokenTtlSeconds": 3600,
            "skipConsent": true, "active": false, "deletionPolicy": "Orphan",
            "secretTemplate": {"keys": {"clientId": "id", "clientSecret": "secret"}, "labels": {"team": "web"}}}}),
        ),
    ]
}

/// Invalid resources, each with the texts the API server's error must contain: the field's
/// path and what is wrong with it.
fn invalid_cases() -> Vec<(&'static str, &'static str, Value, &'static [&'static str])> {
    const URI_RULE: &str = "must be an absolute https URI";
    vec![
        (
            "redirect-http-remote",
            CLIENT,
            json!({"spec": {"redirectUris": ["http://app.example.com/cb"]}}),
            &["spec.redirectUris[0]", URI_RULE],
        ),
        (
            "redirect-fragment",
            CLIENT,
            json!({"spec": {"redirectUris": ["https://app.example.com/cb#top"]}}),
            &["spec.redirectUris[0]", URI_RULE],
        ),
        (
            "redirect-relative",
            CLIENT,
            json!({"spec": {"redirectUris": ["/oauth/callback"]}}),
            &["spec.redirectUris[0]", URI_RULE],
        ),
        (
            "redirect-other-scheme",
            CLIENT,
            json!({"spec": {"redirectUris": ["ftp://app.example.com/cb"]}}),
            &["spec.redirectUris[0]", URI_RULE],
        ),
        ("redirect-none", CLIENT, json!({"spec": {"redirectUris": []}}), &["spec.redirectUris", "at least one URI"]),
        (
            "post-logout-http-remote",
            CLIENT,
            json!({"spec": {"postLogoutRedirectUris": ["http://app.example.com/bye"]}}),
            &["spec.postLogoutRedirectUris[0]", URI_RULE],
        ),
        (
            "unknown-grant-type",
            CLIENT,
            json!({"spec": {"grantTypes": ["authorization_code", "client_credentials"]}}),
            &["spec.grantTypes[1]", "Unsupported value: \"client_credentials\""],
        ),
        (
            "grant-without-code",
            CLIENT,
            json!({"spec": {"grantTypes": ["refresh_token"]}}),
            &["spec.grantTypes", "grantTypes must include authorization_code"],
        ),
        (
            "duplicate-grant-type",
            CLIENT,
            json!({"spec": {"grantTypes": ["authorization_code", "authorization_code"]}}),
            &["spec.grantTypes[1]", "Duplicate value"],
        ),
        (
            "unknown-auth-method",
            CLIENT,
            json!({"spec": {"clientAuthMethod": "tls_client_auth"}}),
            &["spec.clientAuthMethod", "Unsupported value: \"tls_client_auth\""],
        ),
        (
            "private-key-jwt-without-keys",
            CLIENT,
            json!({"spec": {"clientAuthMethod": "private_key_jwt"}}),
            &["spec.clientAuthMethod", "needs exactly one of jwksUri, jwks, publicKeyPem or managedKeys"],
        ),
        (
            "private-key-jwt-two-keys",
            CLIENT,
            json!({"spec": {"clientAuthMethod": "private_key_jwt", "jwksUri": "https://keys.example.com/jwks.json", "publicKeyPem": "-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----"}}),
            &["spec.clientAuthMethod", "needs exactly one of"],
        ),
        (
            "secret-method-with-keys",
            CLIENT,
            json!({"spec": {"jwksUri": "https://keys.example.com/jwks.json"}}),
            &["spec.clientAuthMethod", "only accepted with clientAuthMethod private_key_jwt"],
        ),
        (
            "jwks-uri-http",
            CLIENT,
            json!({"spec": {"clientAuthMethod": "private_key_jwt", "jwksUri": "http://keys.example.com/jwks.json"}}),
            &["spec.jwksUri", "jwksUri must be an absolute https URL"],
        ),
        (
            "jwks-symmetric-key",
            CLIENT,
            json!({"spec": {"clientAuthMethod": "private_key_jwt", "jwks": {"keys": [{"kty": "oct"}]}}}),
            &["spec.jwks.keys[0]", "symmetric (oct) keys are not accepted"],
        ),
        (
            "public-key-not-pem",
            CLIENT,
            json!({"spec": {"clientAuthMethod": "private_key_jwt", "publicKeyPem": "AAAA"}}),
            &["spec.publicKeyPem", "must be PEM text"],
        ),
        (
            "signing-alg-mismatch",
            CLIENT,
            json!({"spec": {"clientAuthMethod": "client_secret_jwt", "tokenEndpointAuthSigningAlg": "RS256"}}),
            &["spec.tokenEndpointAuthSigningAlg", "HS* algorithm with client_secret_jwt"],
        ),
        (
            "signing-alg-without-jwt",
            CLIENT,
            json!({"spec": {"tokenEndpointAuthSigningAlg": "HS256"}}),
            &["spec.tokenEndpointAuthSigningAlg", "unset otherwise"],
        ),
        (
            "id-token-alg",
            CLIENT,
            json!({"spec": {"idTokenSigningAlg": "HS256"}}),
            &["spec.idTokenSigningAlg", "Unsupported value: \"HS256\""],
        ),
        (
            "access-token-format",
            CLIENT,
            json!({"spec": {"accessTokenFormat": "paseto"}}),
            &["spec.accessTokenFormat", "Unsupported value: \"paseto\""],
        ),
        (
            "ttl-too-short",
            CLIENT,
            json!({"spec": {"accessTokenTtlSeconds": 30}}),
            &["spec.accessTokenTtlSeconds", "greater than or equal to 60"],
        ),
        (
            "ttl-too-long",
            CLIENT,
            json!({"spec": {"accessTokenTtlSeconds": 86401}}),
            &["spec.accessTokenTtlSeconds", "less than or equal to 86400"],
        ),
        (
            "same-secret-keys",
            CLIENT,
            json!({"spec": {"secretTemplate": {"keys": {"clientId": "k", "clientSecret": "k"}}}}),
            &["spec.secretTemplate.keys", "clientId, clientSecret, tokenUrl and issuer must be different keys"],
        ),
        (
            "secret-name-invalid",
            CLIENT,
            json!({"spec": {"secretTemplate": {"name": "Web_OAuth"}}}),
            &["spec.secretTemplate.name", "should match"],
        ),
        (
            "unknown-deletion-policy",
            CLIENT,
            json!({"spec": {"deletionPolicy": "Retain"}}),
            &["spec.deletionPolicy", "Unsupported value: \"Retain\""],
        ),
        ("missing-app-ref", CLIENT, json!({"spec": {"appRef": null}}), &["set exactly one of appRef"]),
        (
            "hydra-public-client-credentials",
            HYDRA,
            json!({"spec": {"clientAuthMethod": "none"}}),
            &["spec.clientAuthMethod", "clientAuthMethod none (a public client) cannot use it"],
        ),
        (
            "overlap-in-place",
            CLIENT,
            json!({"spec": {"rotation": {"overlap": "1m"}}}),
            &["spec.rotation.overlap", "applies to strategy NewClient and to managed keys only"],
        ),
        (
            "managed-keys-with-a-secret",
            MANAGED_KEYS,
            json!({"spec": {"clientAuthMethod": "client_secret_basic"}}),
            &[
                "spec.managedKeys",
                "managedKeys is for hydra and keycloak clients with clientAuthMethod private_key_jwt",
            ],
        ),
        (
            "managed-keys-and-jwks",
            MANAGED_KEYS,
            json!({"spec": {"jwksUri": "https://keys.example.com/jwks.json"}}),
            &["spec.clientAuthMethod", "exactly one of jwksUri, jwks, publicKeyPem or managedKeys"],
        ),
        (
            "managed-keys-new-client",
            MANAGED_KEYS,
            json!({"spec": {"rotation": {"strategy": "NewClient"}}}),
            &["spec.rotation", "strategy NewClient does not apply"],
        ),
        (
            "managed-keys-other-alg",
            MANAGED_KEYS,
            json!({"spec": {"tokenEndpointAuthSigningAlg": "RS256"}}),
            &["spec.tokenEndpointAuthSigningAlg", "must be managedKeys.algorithm"],
        ),
        (
            "secret-ref-on-application",
            APPLICATION,
            json!({"spec": {"clientSecretRef": {"name": "mine"}}}),
            &["spec.clientSecretRef", "clientSecretRef is for hydra and keycloak clients"],
        ),
        (
            "secret-ref-with-rotation",
            SECRET_REF,
            json!({"spec": {"rotation": {"every": "720h"}}}),
            &["spec.rotation", "whose source rotates it: rotation does not apply"],
        ),
        (
            "secret-ref-without-secret-method",
            SECRET_REF,
            json!({"spec": {"clientAuthMethod": "private_key_jwt", "jwksUri": "https://keys.example.com/jwks.json"}}),
            &["spec.clientAuthMethod", "clientSecretRef needs a clientAuthMethod that uses a secret"],
        ),
        (
            "secret-ref-bad-name",
            SECRET_REF,
            json!({"spec": {"clientSecretRef": {"name": "Not_A_Name"}}}),
            &["spec.clientSecretRef.name", "should match"],
        ),
        (
            "keycloak-public-client-credentials",
            KEYCLOAK,
            json!({"spec": {"clientAuthMethod": "none"}}),
            &["spec.clientAuthMethod", "clientAuthMethod none (a public client) cannot use it"],
        ),
        (
            "keycloak-code-without-redirects",
            KEYCLOAK,
            json!({"spec": {"keycloak": {"grantTypes": ["authorization_code"]}}}),
            &["spec.redirectUris", "authorization_code grant needs at least one redirectUris entry"],
        ),
        (
            "keycloak-own-client",
            KEYCLOAK,
            json!({"spec": {"keycloak": {"clientId": "admin-cli"}}}),
            &["spec.keycloak.clientId", "one of Keycloak's own clients"],
        ),
        (
            "keycloak-realm-client",
            KEYCLOAK,
            json!({"spec": {"keycloak": {"clientId": "apps-realm"}}}),
            &["spec.keycloak.clientId", "one of Keycloak's own clients"],
        ),
        (
            "keycloak-contacts",
            KEYCLOAK,
            json!({"spec": {"contacts": ["ops@example.com"]}}),
            &["keycloak clients take their grant types in keycloak.grantTypes"],
        ),
        (
            "keycloak-and-hydra",
            KEYCLOAK,
            json!({"spec": {"hydra": {"grantTypes": ["client_credentials"]}}}),
            &["set exactly one of appRef"],
        ),
        (
            "keycloak-pkce-unknown",
            KEYCLOAK,
            json!({"spec": {"keycloak": {"pkceMethod": "S512"}}}),
            &["spec.keycloak.pkceMethod", "Unsupported value"],
        ),
        (
            "hydra-code-without-redirects",
            HYDRA,
            json!({"spec": {"hydra": {"grantTypes": ["authorization_code"]}}}),
            &["spec.redirectUris", "authorization_code grant needs at least one redirectUris entry"],
        ),
        (
            "hydra-refresh-without-code",
            HYDRA,
            json!({"spec": {"hydra": {"grantTypes": ["client_credentials", "refresh_token"]}}}),
            &["spec.hydra", "refresh_token grant comes with authorization_code"],
        ),
        (
            "hydra-code-response-without-grant",
            HYDRA,
            json!({"spec": {"hydra": {"responseTypes": ["code"]}}}),
            &["spec.hydra", "response type code needs the authorization_code grant"],
        ),
        (
            "hydra-unknown-grant",
            HYDRA,
            json!({"spec": {"hydra": {"grantTypes": ["password"]}}}),
            &["spec.hydra.grantTypes[0]", "Unsupported value: \"password\""],
        ),
        (
            "hydra-no-grant",
            HYDRA,
            json!({"spec": {"hydra": {"grantTypes": []}}}),
            &["spec.hydra.grantTypes", "should have at least 1 items"],
        ),
        (
            "hydra-client-secret-jwt",
            HYDRA,
            json!({"spec": {"clientAuthMethod": "client_secret_jwt", "tokenEndpointAuthSigningAlg": "HS256"}}),
            &["hydra clients take their grant types in hydra.grantTypes"],
        ),
        (
            "hydra-top-level-grant-types",
            HYDRA,
            json!({"spec": {"grantTypes": ["authorization_code"]}}),
            &["hydra clients take their grant types in hydra.grantTypes"],
        ),
        (
            "hydra-client-id-with-slash",
            HYDRA,
            json!({"spec": {"hydra": {"clientId": "team/orders"}}}),
            &["spec.hydra.clientId", "should match"],
        ),
        (
            "hydra-reserved-metadata",
            HYDRA,
            json!({"spec": {"hydra": {"metadata": {"oauth-operator.dev/owner": "someone"}}}}),
            &["spec.hydra.metadata", "oauth-operator.dev/owner is reserved"],
        ),
        (
            "hydra-lifespan-in-days",
            HYDRA,
            json!({"spec": {"hydra": {"tokenLifespans": {"clientCredentialsAccessToken": "1d"}}}}),
            &["spec.hydra.tokenLifespans.clientCredentialsAccessToken", "should match"],
        ),
        (
            "hydra-scope-with-space",
            HYDRA,
            json!({"spec": {"hydra": {"scopes": ["orders read"]}}}),
            &["spec.hydra.scopes[0]", "should match"],
        ),
        (
            "rotation-too-often",
            CLIENT,
            json!({"spec": {"rotation": {"every": "59s"}}}),
            &["spec.rotation.every", "rotation.every must be at least 1m"],
        ),
        (
            "rotation-in-days",
            CLIENT,
            json!({"spec": {"rotation": {"every": "30d"}}}),
            &["spec.rotation.every", "should match"],
        ),
        (
            "rotation-of-a-registered-client",
            REGISTERED,
            json!({"spec": {"rotation": {"every": "720h"}}}),
            &["spec.rotation", "registered clients take their secret from the user"],
        ),
        (
            "token-url-key-without-hydra",
            CLIENT,
            json!({"spec": {"secretTemplate": {"keys": {"tokenUrl": "token_url"}}}}),
            &["secretTemplate.keys.tokenUrl and issuer are for hydra and keycloak clients"],
        ),
        (
            "hydra-same-endpoint-keys",
            HYDRA,
            json!({"spec": {"secretTemplate": {"keys": {"issuer": "token_url"}}}}),
            &["spec.secretTemplate.keys", "must be different keys"],
        ),
        (
            "app-ref-and-application",
            APPLICATION,
            json!({"spec": {"appRef": {"name": "a"}}}),
            &["set exactly one of appRef"],
        ),
        (
            "backend-with-app-ref",
            CLIENT,
            json!({"spec": {"backend": "apps"}}),
            &["spec.backend", "with appRef the OAuthApp"],
        ),
        (
            "grant-types-missing",
            CLIENT,
            json!({"spec": {"grantTypes": null}}),
            &["spec.grantTypes", "required with appRef"],
        ),
        (
            "adopt-id-on-hydra",
            HYDRA,
            json!({"spec": {"adoptId": "dashboard"}}),
            &["adoptId is for appRef and application clients"],
        ),
        (
            "wacht-field-on-application",
            APPLICATION,
            json!({"spec": {"grantTypes": ["authorization_code"]}}),
            &["settings of Wacht-style clients (appRef)"],
        ),
        (
            "application-type",
            APPLICATION,
            json!({"spec": {"application": {"type": "server"}}}),
            &["spec.application.type", "Unsupported value"],
        ),
        (
            "application-scope",
            APPLICATION,
            json!({"spec": {"application": {"allowedScopes": ["admin"]}}}),
            &["spec.application.allowedScopes[0]", "Unsupported value"],
        ),
        (
            "application-no-redirect",
            APPLICATION,
            json!({"spec": {"redirectUris": null}}),
            &["spec.redirectUris", "at least one URI"],
        ),
        (
            "registered-secret-template",
            REGISTERED,
            json!({"spec": {"secretTemplate": {"name": "x"}}}),
            &["secretTemplate and clientName do not apply"],
        ),
        (
            "registered-token-url-http",
            REGISTERED,
            json!({"spec": {"registered": {"tokenUrl": "http://github.com/token"}}}),
            &["spec.registered.tokenUrl", "absolute https URL"],
        ),
        (
            "registered-provider-pattern",
            REGISTERED,
            json!({"spec": {"registered": {"provider": "Git Hub"}}}),
            &["spec.registered.provider", "should match"],
        ),
        (
            "registered-no-secret",
            REGISTERED,
            json!({"spec": {"registered": {"credentialsSecret": null}}}),
            &["spec.registered.credentialsSecret", "Required value"],
        ),
        ("slug-pattern", APP, json!({"spec": {"slug": "MCP_Auth"}}), &["spec.slug", "should match"]),
        ("slug-too-long", APP, json!({"spec": {"slug": "a".repeat(64)}}), &["spec.slug", "Too long"]),
        ("fqdn-not-a-host", APP, json!({"spec": {"fqdn": "https://auth.example.com"}}), &["spec.fqdn", "should match"]),
        (
            "verify-domain-without-fqdn",
            APP,
            json!({"spec": {"fqdn": null}}),
            &["spec.verifyDomain", "verifyDomain needs fqdn"],
        ),
        (
            "scope-name-space",
            APP,
            json!({"spec": {"scopes": [{"name": "mcp invoke"}]}}),
            &["spec.scopes[0].name", "should match"],
        ),
        (
            "scope-name-comma",
            APP,
            json!({"spec": {"scopes": [{"name": "a,b"}]}}),
            &["spec.scopes[0].name", "should match"],
        ),
        (
            "duplicate-scope",
            APP,
            json!({"spec": {"scopes": [{"name": "profile"}, {"name": "profile"}]}}),
            &["spec.scopes[1]", "Duplicate value"],
        ),
        (
            "mapping-personal-permission",
            APP,
            json!({"spec": {"scopes": [{"name": "me", "mapping": {"category": "personal", "workspacePermission": "w"}}]}}),
            &["spec.scopes[0].mapping", "category personal takes no permission"],
        ),
        (
            "mapping-workspace-no-permission",
            APP,
            json!({"spec": {"scopes": [{"name": "ws", "mapping": {"category": "workspace"}}]}}),
            &["spec.scopes[0].mapping", "category workspace takes workspacePermission only"],
        ),
        (
            "mapping-organization-wrong-permission",
            APP,
            json!({"spec": {"scopes": [{"name": "org", "mapping": {"category": "organization", "workspacePermission": "w"}}]}}),
            &["spec.scopes[0].mapping", "category organization takes organizationPermission only"],
        ),
        (
            "mapping-unknown-category",
            APP,
            json!({"spec": {"scopes": [{"name": "x", "mapping": {"category": "team"}}]}}),
            &["spec.scopes[0].mapping.category", "Unsupported value: \"team\""],
        ),
        (
            "logo-not-image",
            APP,
            json!({"spec": {"logo": {"configMapKeyRef": {"name": "logos", "key": "app.png"}, "contentType": "text/html"}}}),
            &["spec.logo.contentType", "should match"],
        ),
    ]
}

/// Updates of a valid sample that the schema must refuse.
fn invalid_updates() -> Vec<(&'static str, &'static str, Value, &'static [&'static str])> {
    let scopes = sample(APP)["spec"]["scopes"].clone();
    let mut changed_mapping = scopes.clone();
    changed_mapping[0]["mapping"]["workspacePermission"] = "workspace:mcp:admin".into();
    let mut removed_mapping = scopes;
    removed_mapping[0]["mapping"] = Value::Null;
    vec![
        ("slug-change", APP, json!({"spec": {"slug": "other"}}), &["spec.slug", "slug is immutable"]),
        (
            "application-type-change",
            APPLICATION,
            json!({"spec": {"application": {"type": "native"}}}),
            &["spec.application", "set on creation only"],
        ),
        (
            "application-owner-change",
            APPLICATION,
            json!({"spec": {"application": {"ownerOrgId": "org_2"}}}),
            &["spec.application", "set on creation only"],
        ),
        (
            "client-backend-change",
            APPLICATION,
            json!({"spec": {"backend": "other"}}),
            &["spec.backend", "backend is immutable"],
        ),
        (
            "registered-provider-change",
            REGISTERED,
            json!({"spec": {"registered": {"provider": "gitlab"}}}),
            &["spec.registered.provider", "set on creation only"],
        ),
        (
            "hydra-client-id-change",
            HYDRA,
            json!({"spec": {"hydra": {"clientId": "another"}}}),
            &["spec.hydra", "hydra.clientId is set on creation only"],
        ),
        (
            "keycloak-client-id-change",
            KEYCLOAK,
            json!({"spec": {"keycloak": {"clientId": "another"}}}),
            &["spec.keycloak", "keycloak.clientId is set on creation only"],
        ),
        (
            "mode-change",
            APPLICATION,
            json!({"spec": {"application": null, "backend": null, "clientName": null, "appRef": {"name": "a"}, "grantTypes": ["authorization_code"]}}),
            &["cannot change between appRef, application, registered, hydra and keycloak"],
        ),
        (
            "fqdn-change",
            APP,
            json!({"spec": {"fqdn": "login.example.com"}}),
            &["spec.fqdn", "fqdn cannot be added, changed or removed"],
        ),
        (
            "fqdn-removal",
            APP,
            json!({"spec": {"fqdn": null, "verifyDomain": false}}),
            &["spec.fqdn", "fqdn cannot be added, changed or removed"],
        ),
        (
            "deployment-added",
            APP,
            json!({"spec": {"deploymentId": "dep_2"}}),
            &["spec.deploymentId", "deploymentId is immutable"],
        ),
        (
            "mapping-change",
            APP,
            json!({"spec": {"scopes": changed_mapping}}),
            &["spec.scopes[0].mapping", "cannot be changed or removed once set"],
        ),
        (
            "mapping-removal",
            APP,
            json!({"spec": {"scopes": removed_mapping}}),
            &["spec.scopes[0].mapping", "cannot be changed or removed once set"],
        ),
    ]
}

fn dynamic(client: &Client, file: &str) -> Api<DynamicObject> {
    let resource = match file {
        APP => ApiResource::erase::<OAuthApp>(&()),
        _ => ApiResource::erase::<OAuthClient>(&()),
    };
    Api::namespaced_with(client.clone(), NS, &resource)
}

async fn create(client: &Client, file: &str, doc: &Value) -> Result<(), kube::Error> {
    let obj: DynamicObject = serde_json::from_value(doc.clone()).expect("sample is an object");
    dynamic(client, file).create(&PostParams::default(), &obj).await.map(drop)
}

fn assert_rejected(case: &str, result: Result<(), kube::Error>, expected: &[&str]) {
    match result {
        Ok(()) => panic!("{case}: the API server accepted an invalid resource"),
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{case}: expected 422 Invalid, got {status:?}");
            for text in expected {
                assert!(status.message.contains(text), "{case}: {text:?} not in the error: {}", status.message);
            }
        }
        Err(other) => panic!("{case}: expected a validation error, got {other}"),
    }
}

async fn both_crds_are_established_with_columns_and_names(client: Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client);
    for (name, short, columns) in [
        ("oauthapps.oauth-operator.dev", "oapp", &["Ready", "Slug", "Domain", "Domain Verified", "Age"][..]),
        ("oauthclients.oauth-operator.dev", "oclient", &["Ready", "Client ID", "Secret", "Age"][..]),
    ] {
        let crd = api.get(name).await.expect("CRD installed");
        let established = crd
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"));
        assert!(established, "{name} is not Established");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.short_names.as_deref(), Some(&[short.to_string()][..]));
        assert_eq!(crd.spec.names.categories.as_deref(), Some(&["oauth".to_string()][..]));
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1alpha1");
        assert!(version.subresources.as_ref().is_some_and(|s| s.status.is_some()), "{name}: no status subresource");
        let got: Vec<_> = version.additional_printer_columns.iter().flatten().map(|c| c.name.as_str()).collect();
        assert_eq!(got, columns, "{name}: printer columns");
    }
}

fn kubectl_explain() {
    let env = Env::get();
    for (field, text) in [
        ("oauthclient.spec.redirectUris", "Where the authorization server may send users back"),
        ("oauthclient.spec.deletionPolicy", "Orphan"),
        ("oauthapp.spec.scopes.mapping.category", "Whose resources the scope reaches"),
        ("oauthclient.status.lastHandledRotateRequest", "oauth-operator.dev/rotate"),
    ] {
        let out = Command::new(env.cp.bin("kubectl"))
            .args(["--kubeconfig", env.cp.kubeconfig.to_str().expect("utf-8 path"), "explain", field])
            .output()
            .expect("run kubectl");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "kubectl explain {field}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains(text), "kubectl explain {field} lacks {text:?}:\n{stdout}");
    }
}

async fn samples_are_accepted_and_defaulted(client: Client) {
    let apps: Api<OAuthApp> = Api::namespaced(client.clone(), NS);
    let clients: Api<OAuthClient> = Api::namespaced(client.clone(), NS);
    let app = apps
        .create(&PostParams::default(), &serde_json::from_value(sample(APP)).expect("app sample"))
        .await
        .expect("app sample accepted");
    assert!(app.spec.active, "active defaults to true");
    assert_eq!(app.spec.scopes.len(), 2);

    let minimal = sample_with(
        CLIENT,
        "web-defaults",
        json!({"spec": {"clientAuthMethod": null, "deletionPolicy": null, "secretTemplate": null}}),
    );
    let created = clients
        .create(&PostParams::default(), &serde_json::from_value(sample(CLIENT)).expect("client sample"))
        .await
        .expect("client sample accepted");
    assert_eq!(created.spec.redirect_uris.len(), 2);
    let defaulted = clients
        .create(&PostParams::default(), &serde_json::from_value(minimal).expect("client"))
        .await
        .expect("minimal client accepted");
    // Defaults are applied by the API server from the schema, not by our deserializer.
    let raw = dynamic(&client, CLIENT).get("web-defaults").await.expect("read back");
    assert_eq!(raw.data["spec"]["clientAuthMethod"], "client_secret_basic");
    assert_eq!(raw.data["spec"]["deletionPolicy"], "Delete");
    assert_eq!(raw.data["spec"]["active"], true);
    assert!(defaulted.spec.active);
}

async fn app_accepts_allowed_updates(client: Client) {
    let name = "app-update";
    create(&client, APP, &sample_with(APP, name, json!({}))).await.expect("valid sample");
    let mut scopes = sample(APP)["spec"]["scopes"].clone();
    scopes[0]["description"] = "Runs MCP tools".into();
    scopes[1]["mapping"] = json!({"category": "personal"}); // setting a first mapping is allowed
    let patch = json!({"spec": {"displayName": "Renamed", "description": "new text", "scopes": scopes}});
    dynamic(&client, APP)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("updates of mutable fields are accepted");
}
