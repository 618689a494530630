//! `OAuthClient`: a client of an `OAuthApp`; its credentials land in a Secret.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Absolute `https` URI (plain `http` only for loopback hosts) without a fragment. Regular
/// expressions keep the CEL cost low enough for 32 URIs of 2048 characters.
const REDIRECT_URI_RULE: &str = r"!self.contains('#') && !self.matches(r'\s') && (self.matches(r'^https://[^/?#\s]+([/?]|$)') || self.matches(r'^http://(localhost|127(\.[0-9]{1,3}){3}|\[::1\])(:[0-9]{1,5})?([/?]|$)'))";
const REDIRECT_URI_MESSAGE: &str =
    "must be an absolute https URI (http only for localhost or a loopback IP) without a fragment";

/// Puts the redirect URI rule on each item, so that an error names the item (`redirectUris[1]`).
fn redirect_uri_items(schema: &mut schemars::Schema) {
    if let Some(items) = schema.get_mut("items").and_then(|v| v.as_object_mut()) {
        items.insert(
            "x-kubernetes-validations".into(),
            serde_json::json!([{ "rule": REDIRECT_URI_RULE, "message": REDIRECT_URI_MESSAGE }]),
        );
    }
}

/// A client of an OAuthApp. The operator creates it in the backend and writes the issued
/// `client_id` and `client_secret` into a Secret; the annotation `oauth-operator.dev/rotate`
/// set to a new value rotates the secret once.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "oauth-operator.dev",
    version = "v1alpha1",
    kind = "OAuthClient",
    namespaced,
    cel,
    status = "OAuthClientStatus",
    shortname = "oclient",
    category = "oauth",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Client ID","type":"string","jsonPath":".status.clientId"}"#,
    printcolumn = r#"{"name":"Secret","type":"string","jsonPath":".status.secretName"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(
    validation = Rule::new("[has(self.appRef), has(self.application), has(self.registered), has(self.hydra), has(self.keycloak)].filter(x, x).size() == 1")
        .message("set exactly one of appRef (Wacht-style backends), application (OAuth Applications API), registered (MCP OAuth clients API), hydra (Ory Hydra) or keycloak (Keycloak)"),
    validation = Rule::new("has(self.appRef) == has(oldSelf.appRef) && has(self.application) == has(oldSelf.application) && has(self.hydra) == has(oldSelf.hydra) && has(self.keycloak) == has(oldSelf.keycloak)")
        .message("an OAuthClient cannot change between appRef, application, registered, hydra and keycloak; create a new one"),
    validation = Rule::new("(has(self.backend) ? self.backend : 'default') == (has(oldSelf.backend) ? oldSelf.backend : 'default')")
        .message("backend is immutable; create a new OAuthClient for another backend")
        .field_path(".backend"),
    validation = Rule::new("!has(self.appRef) || !has(self.backend)")
        .message("backend is for application, registered, hydra and keycloak clients; with appRef the OAuthApp names the backend")
        .field_path(".backend"),
    validation = Rule::new("!has(self.appRef) || (has(self.grantTypes) && size(self.grantTypes) > 0)")
        .message("grantTypes is required with appRef")
        .field_path(".grantTypes"),
    validation = Rule::new("has(self.appRef) || has(self.hydra) || has(self.keycloak) || ([has(self.grantTypes), has(self.postLogoutRedirectUris), has(self.tokenEndpointAuthSigningAlg), has(self.jwksUri), has(self.jwks), has(self.publicKeyPem), has(self.clientUri), has(self.logoUri), has(self.tosUri), has(self.policyUri), has(self.contacts), has(self.softwareId), has(self.softwareVersion), has(self.idTokenSigningAlg), has(self.accessTokenFormat), has(self.accessTokenTtlSeconds), has(self.skipConsent)].all(x, !x) && self.clientAuthMethod == 'client_secret_basic')")
        .message("grantTypes, clientAuthMethod, the key fields, postLogoutRedirectUris, clientUri, logoUri, tosUri, policyUri, contacts, softwareId, softwareVersion, idTokenSigningAlg, accessTokenFormat, accessTokenTtlSeconds and skipConsent are settings of Wacht-style clients (appRef)"),
    validation = Rule::new("has(self.registered) || has(self.hydra) || has(self.keycloak) || (has(self.redirectUris) && size(self.redirectUris) > 0)")
        .message("redirectUris needs at least one URI")
        .field_path(".redirectUris"),
    validation = Rule::new("!has(self.registered) || (!has(self.secretTemplate) && !has(self.clientName))")
        .message("registered clients take their credentials from registered.credentialsSecret: secretTemplate and clientName do not apply"),
    validation = Rule::new("self.clientAuthMethod != 'private_key_jwt' || [has(self.jwksUri), has(self.jwks), has(self.publicKeyPem), has(self.managedKeys)].filter(x, x).size() == 1")
        .message("clientAuthMethod private_key_jwt needs exactly one of jwksUri, jwks, publicKeyPem or managedKeys")
        .field_path(".clientAuthMethod"),
    validation = Rule::new("self.clientAuthMethod == 'private_key_jwt' || (!has(self.jwksUri) && !has(self.jwks) && !has(self.publicKeyPem))")
        .message("jwksUri, jwks and publicKeyPem are only accepted with clientAuthMethod private_key_jwt")
        .field_path(".clientAuthMethod"),
    validation = Rule::new("!has(self.tokenEndpointAuthSigningAlg) || (self.clientAuthMethod == 'client_secret_jwt' && self.tokenEndpointAuthSigningAlg.startsWith('HS')) || (self.clientAuthMethod == 'private_key_jwt' && !self.tokenEndpointAuthSigningAlg.startsWith('HS'))")
        .message("tokenEndpointAuthSigningAlg is an HS* algorithm with client_secret_jwt, an asymmetric one with private_key_jwt, and unset otherwise")
        .field_path(".tokenEndpointAuthSigningAlg"),
    validation = Rule::new("!has(self.hydra) || ([has(self.grantTypes), has(self.publicKeyPem), has(self.softwareId), has(self.softwareVersion), has(self.idTokenSigningAlg), has(self.accessTokenTtlSeconds)].all(x, !x) && self.clientAuthMethod != 'client_secret_jwt')")
        .message("hydra clients take their grant types in hydra.grantTypes and their token lifetimes in hydra.tokenLifespans; grantTypes, publicKeyPem, softwareId, softwareVersion, idTokenSigningAlg, accessTokenTtlSeconds and clientAuthMethod client_secret_jwt do not apply"),
    validation = Rule::new("!has(self.hydra) || !self.hydra.grantTypes.exists(g, g == 'authorization_code') || (has(self.redirectUris) && size(self.redirectUris) > 0)")
        .message("a hydra client with the authorization_code grant needs at least one redirectUris entry")
        .field_path(".redirectUris"),
    validation = Rule::new("!has(self.keycloak) || ([has(self.grantTypes), has(self.publicKeyPem), has(self.contacts), has(self.softwareId), has(self.softwareVersion), has(self.accessTokenFormat)].all(x, !x))")
        .message("keycloak clients take their grant types in keycloak.grantTypes; grantTypes, publicKeyPem, contacts, softwareId, softwareVersion and accessTokenFormat do not apply"),
    validation = Rule::new("!has(self.keycloak) || !self.keycloak.grantTypes.exists(g, g == 'authorization_code') || (has(self.redirectUris) && size(self.redirectUris) > 0)")
        .message("a keycloak client with the authorization_code grant needs at least one redirectUris entry")
        .field_path(".redirectUris"),
    validation = Rule::new("!has(self.keycloak) || self.clientAuthMethod != 'none' || !self.keycloak.grantTypes.exists(g, g == 'client_credentials')")
        .message("the client_credentials grant needs a client that authenticates: clientAuthMethod none (a public client) cannot use it")
        .field_path(".clientAuthMethod"),
    validation = Rule::new("!has(self.clientSecretRef) || has(self.hydra) || has(self.keycloak)")
        .message("clientSecretRef is for hydra and keycloak clients, whose secret the caller may choose")
        .field_path(".clientSecretRef"),
    validation = Rule::new("!has(self.clientSecretRef) || !has(self.rotation)")
        .message("a client with clientSecretRef takes its secret from that Secret, whose source rotates it: rotation does not apply")
        .field_path(".rotation"),
    validation = Rule::new("!has(self.clientSecretRef) || self.clientAuthMethod in ['client_secret_basic', 'client_secret_post', 'client_secret_jwt']")
        .message("clientSecretRef needs a clientAuthMethod that uses a secret")
        .field_path(".clientAuthMethod"),
    validation = Rule::new("!has(self.managedKeys) || ((has(self.hydra) || has(self.keycloak)) && self.clientAuthMethod == 'private_key_jwt')")
        .message("managedKeys is for hydra and keycloak clients with clientAuthMethod private_key_jwt")
        .field_path(".managedKeys"),
    validation = Rule::new("!has(self.rotation) || !has(self.rotation.overlap) || self.rotation.strategy == 'NewClient' || has(self.managedKeys)")
        .message("rotation.overlap applies to strategy NewClient and to managed keys only")
        .field_path(".rotation.overlap"),
    validation = Rule::new("!has(self.managedKeys) || !has(self.rotation) || self.rotation.strategy != 'NewClient'")
        .message("managed keys rotate under the same client id, with rotation.overlap: strategy NewClient does not apply")
        .field_path(".rotation"),
    validation = Rule::new("!has(self.managedKeys) || !has(self.tokenEndpointAuthSigningAlg) || self.tokenEndpointAuthSigningAlg == self.managedKeys.algorithm")
        .message("tokenEndpointAuthSigningAlg must be managedKeys.algorithm (or unset)")
        .field_path(".tokenEndpointAuthSigningAlg"),
    validation = Rule::new("!has(self.registered) || !has(self.rotation)")
        .message("registered clients take their secret from the user: rotation does not apply")
        .field_path(".rotation"),
    validation = Rule::new("has(self.hydra) || has(self.keycloak) || !has(self.secretTemplate) || !has(self.secretTemplate.keys) || (!has(self.secretTemplate.keys.tokenUrl) && !has(self.secretTemplate.keys.issuer))")
        .message("secretTemplate.keys.tokenUrl and issuer are for hydra and keycloak clients"),
    validation = Rule::new("!has(self.hydra) || self.clientAuthMethod != 'none' || !self.hydra.grantTypes.exists(g, g == 'client_credentials')")
        .message("the client_credentials grant needs a client that authenticates: clientAuthMethod none (a public client) cannot use it")
        .field_path(".clientAuthMethod"),
    validation = Rule::new("!has(self.adoptId) || has(self.appRef) || has(self.application)")
        .message("adoptId is for appRef and application clients: a hydra or keycloak client names the client to take over in its clientId, and a registered client is found by its provider")
        .field_path(".adoptId"),
)]
#[serde(rename_all = "camelCase")]
pub struct OAuthClientSpec {
    /// The OAuthApp this client belongs to, for Wacht-style backends (apps with clients).
    /// Exactly one of `appRef`, `application` and `registered` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_ref: Option<AppRef>,

    /// The backend of an `application` or `registered` client: a name in the operator's
    /// configuration, `default` when not given. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub backend: Option<String>,

    /// Makes this client an application of the OAuth Applications API: the backend issues
    /// the secret, which lands in the Secret as for Wacht-style clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<Box<ApplicationSpec>>,

    /// Makes this client a registered client of the MCP OAuth clients API: an upstream
    /// provider's client whose id and secret the user keeps in a Secret. The operator pushes
    /// them to the backend (write-only) and pushes again whenever that Secret changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered: Option<Box<RegisteredSpec>>,

    /// Makes this client an OAuth 2.0 client of Ory Hydra (`backend` names a backend of type
    /// `hydra`): the operator chooses its id and generates its secret, which lands in the
    /// Secret. The common fields that apply: `redirectUris`, `postLogoutRedirectUris`,
    /// `clientAuthMethod`, `jwksUri`/`jwks`, `tokenEndpointAuthSigningAlg`, `clientName`,
    /// `clientUri`, `logoUri`, `tosUri`, `policyUri`, `contacts`, `accessTokenFormat` and
    /// `skipConsent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hydra: Option<Box<HydraSpec>>,

    /// Makes this client an OpenID Connect client of a Keycloak realm (`backend` names a
    /// backend of type `keycloak`): the operator chooses its ids and generates its secret,
    /// which lands in the Secret. The common fields that apply: `redirectUris`,
    /// `postLogoutRedirectUris`, `clientAuthMethod`, `jwksUri`/`jwks`,
    /// `tokenEndpointAuthSigningAlg`, `clientName`, `clientUri` (Keycloak's home URL),
    /// `logoUri`, `tosUri`, `policyUri`, `idTokenSigningAlg`, `accessTokenTtlSeconds`,
    /// `skipConsent` and `active` (`false` deletes the client in Keycloak).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keycloak: Option<Box<KeycloakSpec>>,

    /// Keys the operator generates and rotates for `clientAuthMethod: private_key_jwt` (hydra
    /// and keycloak clients): the private key goes to the Secret (`secretTemplate.keys.privateKey`,
    /// PKCS#8 PEM, with its `keyId`), only the public key to the backend. A rotation (annotation,
    /// `rotation.every`, a lost Secret) publishes the new key beside the old one, then hands the
    /// new one to the workload, and withdraws the old one after `rotation.overlap`: the client id
    /// never changes and no request fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_keys: Option<ManagedKeys>,

    /// A Secret of this namespace holding the client secret to register (from External
    /// Secrets, Vault, Sealed Secrets...): the operator never generates one for this client,
    /// waits while the Secret or its key is missing, and pushes the secret again whenever the
    /// Secret changes. Hydra and Keycloak clients only; the client id stays the operator's
    /// choice (`hydra.clientId`/`keycloak.clientId`, else the UID). Unlike
    /// `registered.credentialsSecret` (an upstream provider's id and secret, pushed to the MCP
    /// API), this is the secret of the client the backend itself issues tokens to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_ref: Option<ClientSecretRef>,

    /// The backend's id of an existing client to take over (a Wacht-style client's id, an
    /// OAuth application's id), to bring a client made outside the operator under it. Read
    /// only while this resource records no client of its own. Taken over only if no other
    /// resource owns it and the operator's configuration lets this namespace adopt on the
    /// backend (`adopt`); its secret cannot be read back, so it is rotated once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub adopt_id: Option<String>,

    /// How the client authenticates at the token endpoint. `none` is for public clients and
    /// issues no secret; `private_key_jwt` needs one of `jwksUri`, `jwks` or `publicKeyPem`.
    #[serde(default)]
    pub client_auth_method: ClientAuthMethod,

    /// OAuth grant types the client may use. `authorization_code` is required. Wacht-style
    /// clients (`appRef`) only, and required there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2))]
    #[x_kube(
        merge_strategy = ListMerge::Set,
        validation = Rule::new("size(self) == 0 || self.exists(g, g == 'authorization_code')").message("grantTypes must include authorization_code")
    )]
    pub grant_types: Vec<GrantType>,

    /// Where the authorization server may send users back after they sign in. Absolute
    /// `https` URIs without a fragment; plain `http` only for `localhost` or a loopback IP.
    /// At least one, except for `registered` clients.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 2048)))]
    #[schemars(transform = redirect_uri_items)]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub redirect_uris: Vec<String>,

    /// Where users may be sent after signing out. Same rules as `redirectUris`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 2048)))]
    #[schemars(transform = redirect_uri_items)]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub post_logout_redirect_uris: Vec<String>,

    /// JWS algorithm the client signs its token-endpoint assertions with: an HS* algorithm
    /// for `client_secret_jwt`, an asymmetric one for `private_key_jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_signing_alg: Option<SigningAlg>,

    /// HTTPS URL of the client's JSON Web Key Set (`private_key_jwt` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new(r"self.matches(r'^https://[^/?#\s]+([/?#]|$)') && !self.matches(r'\s')").message("jwksUri must be an absolute https URL"))]
    pub jwks_uri: Option<String>,

    /// The client's public keys, inline (`private_key_jwt` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<Jwks>,

    /// The client's public key as PEM text (`private_key_jwt` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 16384))]
    #[x_kube(validation = Rule::new("self.startsWith('-----BEGIN ')").message("publicKeyPem must be PEM text"))]
    pub public_key_pem: Option<String>,

    /// Name of the client shown to users on the consent screen (for `application` clients,
    /// the application's name; `metadata.name` when not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub client_name: Option<String>,

    /// Home page of the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub client_uri: Option<String>,

    /// URL of the client's logo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub logo_uri: Option<String>,

    /// URL of the client's terms of service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub tos_uri: Option<String>,

    /// URL of the client's privacy policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub policy_uri: Option<String>,

    /// Contact addresses of the people responsible for the client.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 256)))]
    pub contacts: Vec<String>,

    /// Identifier of the client software, the same for every deployment of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub software_id: Option<String>,

    /// Version of the client software.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub software_version: Option<String>,

    /// Algorithm of the ID tokens issued to the client. The backend supports `RS256` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_signing_alg: Option<IdTokenSigningAlg>,

    /// Format of the access tokens issued to the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_format: Option<AccessTokenFormat>,

    /// Lifetime of access tokens, in seconds (60 to 86400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60, max = 86400))]
    pub access_token_ttl_seconds: Option<i32>,

    /// Skip the consent screen for this client (first-party clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_consent: Option<bool>,

    /// Whether the client may be used. `false` deactivates it in the backend.
    #[serde(default = "default_true")]
    pub active: bool,

    /// Where and how the credentials are written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_template: Option<Box<SecretTemplate>>,

    /// What happens in the backend when the OAuthClient is deleted: `Delete` deactivates the
    /// client, `Orphan` leaves it as it is.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// When and how the secret rotates on its own (the rotate annotation works as well).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationSpec>,
}

/// A rotation policy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[x_kube(
    validation = Rule::new("!has(self.every) || !has(self.overlap) || duration(self.overlap) < duration(self.every)")
        .message("rotation.overlap must be shorter than rotation.every: the previous client retires before the next rotation")
        .field_path(".overlap"),
)]
#[serde(rename_all = "camelCase")]
pub struct RotationSpec {
    /// Rotate when the secret is older than this: a Go duration of at least `1m`, such as
    /// `720h`. The age counts from when the secret was issued (`status.lastRotatedAt`, and the
    /// Secret's `oauth-operator.dev/issued-at`); a rotate annotation resets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 32), pattern(r"^([0-9]{1,6}h)?([0-9]{1,8}m)?([0-9]{1,10}s)?$"))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1m')").message("rotation.every must be at least 1m"))]
    pub every: Option<String>,
    /// How a rotation replaces the secret. `InPlace`: the backend client gets a new secret,
    /// and the old one stops working at once. `NewClient`: a second backend client with the
    /// same settings takes over the Secret, and the previous one keeps working for `overlap`.
    #[serde(default)]
    pub strategy: RotationStrategy,
    /// `NewClient` and managed keys only: how long the previous client (or key) keeps working
    /// after a rotation, a Go duration of at least `10s` and less than `every` (default `10m`).
    /// Tokens a previous client issued, refresh tokens included, stop working when it retires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 32), pattern(r"^([0-9]{1,6}h)?([0-9]{1,8}m)?([0-9]{1,10}s)?$"))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('10s')").message("rotation.overlap must be at least 10s"))]
    pub overlap: Option<String>,
}

/// How a rotation replaces the secret.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
pub enum RotationStrategy {
    /// A new secret for the same client; the old secret stops working at once.
    #[default]
    InPlace,
    /// A new client; the previous one keeps working for `overlap`, then is deactivated.
    NewClient,
}

/// The public key a managed-key rotation replaced.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviousKey {
    pub kid: String,
    /// The public JWK, as JSON text.
    pub jwk: String,
    /// When it is withdrawn from the backend (RFC 3339).
    pub retires_at: String,
}

/// The client a `NewClient` rotation replaced.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreviousClient {
    /// Its public client id.
    pub client_id: String,
    /// The backend's handle for it.
    pub backend_id: String,
    /// When it is deactivated (RFC 3339).
    pub retires_at: String,
    /// Deactivated in the backend.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retired: bool,
}

fn default_true() -> bool {
    true
}

impl OAuthClient {
    /// The namespace and name of the OAuthApp this client refers to, if it refers to one.
    pub fn app_ref(&self) -> Option<(String, String)> {
        let app = self.spec.app_ref.as_ref()?;
        let own = self.metadata.namespace.clone().unwrap_or_default();
        Some((app.namespace.clone().unwrap_or(own), app.name.clone()))
    }
}

/// An application of the OAuth Applications API.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type == oldSelf.type && (has(self.ownerOrgId) ? self.ownerOrgId : '') == (has(oldSelf.ownerOrgId) ? oldSelf.ownerOrgId : '')")
    .message("application.type and application.ownerOrgId are set on creation only"))]
pub struct ApplicationSpec {
    /// Kind of application: `web`, `native`, `public` or `user-agent-based`. Set on creation
    /// only.
    #[serde(rename = "type")]
    pub kind: ApplicationType,
    /// Organization that owns the application; the backend configuration's `ownerOrgId` when
    /// not given. Set on creation only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub owner_org_id: Option<String>,
    /// Scopes the application may ask for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub allowed_scopes: Vec<AllowedScope>,
}

/// Kind of an OAuth application.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ApplicationType {
    /// A server-side web application.
    Web,
    /// A native (desktop or mobile) application.
    Native,
    /// A public client.
    Public,
    /// A browser (single-page) application.
    UserAgentBased,
}

/// A scope an OAuth application may ask for.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum AllowedScope {
    /// Read the workspace.
    #[serde(rename = "workspace:read")]
    WorkspaceRead,
    /// Change the workspace.
    #[serde(rename = "workspace:write")]
    WorkspaceWrite,
}

/// A client of Ory Hydra.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(has(self.clientId) ? self.clientId : '') == (has(oldSelf.clientId) ? oldSelf.clientId : '')")
        .message("hydra.clientId is set on creation only"),
    validation = Rule::new("!self.grantTypes.exists(g, g == 'refresh_token') || self.grantTypes.exists(g, g == 'authorization_code')")
        .message("the refresh_token grant comes with authorization_code"),
    validation = Rule::new("!has(self.responseTypes) || !self.responseTypes.exists(r, r == 'code') || self.grantTypes.exists(g, g == 'authorization_code')")
        .message("response type code needs the authorization_code grant"),
)]
pub struct HydraSpec {
    /// The client id in Hydra. Not given: the resource's UID. Give one to take over an existing
    /// Hydra client (one without an owner, or a hydra-maester client of this namespace); the
    /// takeover rotates its secret once. URL-safe characters only. Set on creation only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 190), pattern(r"^[A-Za-z0-9._~-]+$"))]
    pub client_id: Option<String>,
    /// OAuth grant types: `client_credentials` (machine to machine), `authorization_code`,
    /// `refresh_token`.
    #[schemars(length(min = 1, max = 3))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub grant_types: Vec<HydraGrantType>,
    /// OAuth response types the client may ask for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 3))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub response_types: Vec<HydraResponseType>,
    /// Scopes the client may ask for; Hydra's default (`openid offline offline_access`) when
    /// none are given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 256), pattern(r"^[\x21\x23-\x5B\x5D-\x7E]+$")))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub scopes: Vec<String>,
    /// Audiences the client may ask tokens for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 2048)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub audience: Vec<String>,
    /// Token lifetimes that differ from Hydra's configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_lifespans: Option<TokenLifespans>,
    /// Free-form metadata stored with the client (the key `oauth-operator.dev/owner` is the
    /// operator's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.all(k, size(k) <= 256 && k != 'oauth-operator.dev/owner') && self.all(k, size(self[k]) <= 4096)").message("metadata keys are at most 256 characters, values 4096, and oauth-operator.dev/owner is reserved"))]
    pub metadata: BTreeMap<String, String>,
}

/// A client of a Keycloak realm.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(has(self.clientId) ? self.clientId : '') == (has(oldSelf.clientId) ? oldSelf.clientId : '')")
        .message("keycloak.clientId is set on creation only"),
    validation = Rule::new("!self.grantTypes.exists(g, g == 'refresh_token') || self.grantTypes.exists(g, g == 'authorization_code')")
        .message("the refresh_token grant comes with authorization_code"),
    validation = Rule::new("!has(self.clientId) || !(self.clientId in ['account', 'account-console', 'admin-cli', 'broker', 'realm-management', 'security-admin-console'] || self.clientId.endsWith('-realm'))")
        .message("keycloak.clientId names one of Keycloak's own clients, which the operator never manages")
        .field_path(".clientId"),
)]
pub struct KeycloakSpec {
    /// The client's `clientId` in the realm. Not given: the resource's UID. Give one to take
    /// over an existing client (one no resource owns, where the configuration lets this
    /// namespace adopt); the takeover rotates its secret once. Set on creation only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 190), pattern(r"^[A-Za-z0-9._~-]+$"))]
    pub client_id: Option<String>,
    /// OAuth grant types: `client_credentials` (Keycloak's service account),
    /// `authorization_code` (its standard flow), `refresh_token`.
    #[schemars(length(min = 1, max = 3))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub grant_types: Vec<HydraGrantType>,
    /// A description shown in Keycloak's console.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// CORS origins allowed to call Keycloak with this client's tokens (`+`: those of the
    /// redirect URIs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 2048)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub web_origins: Vec<String>,
    /// Client scopes added to every token (names of the realm's client scopes). Not given:
    /// the realm's defaults, as Keycloak assigns them; not compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 256)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub default_client_scopes: Option<Vec<String>>,
    /// Client scopes a client may ask for with `scope`. Not given: the realm's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 256)))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub optional_client_scopes: Option<Vec<String>>,
    /// PKCE method required of the authorization code flow: `S256` (or `plain`). Not given:
    /// none required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkce_method: Option<PkceMethod>,
}

/// A PKCE code challenge method.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum PkceMethod {
    S256,
    #[serde(rename = "plain")]
    Plain,
}

/// Go durations such as `30m` or `1h30m` (whole hours, minutes and seconds, at least 1s).
const LIFESPAN_PATTERN: &str = r"^([0-9]{1,6}h)?([0-9]{1,6}m)?([0-9]{1,6}s)?$";

/// Hydra's token lifetimes by grant; each unset one follows Hydra's configuration.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenLifespans {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 24), pattern(LIFESPAN_PATTERN))]
    pub client_credentials_access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 24), pattern(LIFESPAN_PATTERN))]
    pub authorization_code_access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 24), pattern(LIFESPAN_PATTERN))]
    pub authorization_code_id_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 24), pattern(LIFESPAN_PATTERN))]
    pub authorization_code_refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 24), pattern(LIFESPAN_PATTERN))]
    pub refresh_token_access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 24), pattern(LIFESPAN_PATTERN))]
    pub refresh_token_id_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 24), pattern(LIFESPAN_PATTERN))]
    pub refresh_token_refresh_token: Option<String>,
}

impl TokenLifespans {
    /// Each set lifespan by Hydra's field name.
    pub fn fields(&self) -> Vec<(&'static str, &str)> {
        let all = [
            ("authorization_code_grant_access_token_lifespan", &self.authorization_code_access_token),
            ("authorization_code_grant_id_token_lifespan", &self.authorization_code_id_token),
            ("authorization_code_grant_refresh_token_lifespan", &self.authorization_code_refresh_token),
            ("client_credentials_grant_access_token_lifespan", &self.client_credentials_access_token),
            ("refresh_token_grant_access_token_lifespan", &self.refresh_token_access_token),
            ("refresh_token_grant_id_token_lifespan", &self.refresh_token_id_token),
            ("refresh_token_grant_refresh_token_lifespan", &self.refresh_token_refresh_token),
        ];
        all.into_iter().filter_map(|(field, value)| value.as_deref().map(|v| (field, v))).collect()
    }
}

/// An OAuth grant type of a Hydra client.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HydraGrantType {
    /// Tokens for the client itself (machine to machine).
    ClientCredentials,
    /// The authorization code flow.
    AuthorizationCode,
    /// Refresh tokens.
    RefreshToken,
}

/// An OAuth response type of a Hydra client.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HydraResponseType {
    Code,
    IdToken,
    Token,
}

/// An upstream provider's OAuth client registered with the MCP OAuth clients API.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredSpec {
    /// Stable provider key, such as `github`; unique per backend scope. Set on creation only:
    /// an existing backend client with this provider is adopted.
    #[schemars(length(min = 1, max = 63), pattern(r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("registered.provider is set on creation only"))]
    pub provider: String,
    /// The provider's display name, such as `GitHub`.
    #[schemars(length(min = 1, max = 256))]
    pub provider_name: String,
    /// The provider's OAuth authorization endpoint.
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new(r"self.matches(r'^https://[^/?#\s]+([/?]|$)') && !self.matches(r'\s')").message("authorizationUrl must be an absolute https URL"))]
    pub authorization_url: String,
    /// The provider's OAuth token endpoint.
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new(r"self.matches(r'^https://[^/?#\s]+([/?]|$)') && !self.matches(r'\s')").message("tokenUrl must be an absolute https URL"))]
    pub token_url: String,
    /// Scopes requested from the provider.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 256)))]
    pub scopes: Vec<String>,
    /// Free-form provider settings (`discovery_url`, `token_auth_method`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(length(max = 32))]
    pub metadata: BTreeMap<String, String>,
    /// MCP servers this client serves; empty: every server of the project.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 256)))]
    pub server_ids: Vec<String>,
    /// The Secret, in this namespace, that holds the provider's client id and secret. The
    /// resource waits while it does not exist; a change of it rotates the secret in place.
    pub credentials_secret: CredentialsSecretRef,
}

/// A Secret holding an upstream client id and secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    /// Name of the Secret.
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
    /// Names of the keys holding the client id and the client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<SecretKeys>,
}

/// Signing keys the operator manages.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedKeys {
    /// The signing algorithm: `ES256` (ECDSA P-256, every server) or `EdDSA` (Ed25519).
    #[serde(default)]
    pub algorithm: KeyAlgorithm,
}

/// The algorithm of a managed key.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
pub enum KeyAlgorithm {
    #[default]
    ES256,
    EdDSA,
}

impl KeyAlgorithm {
    pub fn keys(self) -> crate::keys::Algorithm {
        match self {
            KeyAlgorithm::ES256 => crate::keys::Algorithm::Es256,
            KeyAlgorithm::EdDSA => crate::keys::Algorithm::EdDsa,
        }
    }
}

/// The Secret and key holding a client secret the user brings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientSecretRef {
    /// Name of the Secret, in the OAuthClient's namespace.
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
    /// The key holding the secret.
    #[serde(default = "default_client_secret_key")]
    #[schemars(length(min = 1, max = 253), pattern(r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
    /// Also write the secret into the credentials Secret (`secretTemplate`); by default that
    /// Secret gets the client id and the endpoints only, and the workload mounts both.
    #[serde(default)]
    pub copy: bool,
}

/// Reference to an OAuthApp.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppRef {
    /// Name of the OAuthApp.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the OAuthApp; defaults to the client's own. Another namespace works only
    /// when the app lists this client's namespace in `spec.clientNamespaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
}

/// Token endpoint authentication method (RFC 7591 `token_endpoint_auth_method`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    /// The secret in an HTTP Basic `Authorization` header.
    #[default]
    ClientSecretBasic,
    /// The secret in the form body.
    ClientSecretPost,
    /// A JWT signed with the secret (HMAC).
    ClientSecretJwt,
    /// A JWT signed with the client's private key; no secret is issued.
    PrivateKeyJwt,
    /// A public client: no secret is issued.
    None,
}

impl ClientAuthMethod {
    /// Whether the backend issues a client secret for this method.
    pub fn has_secret(self) -> bool {
        !matches!(self, Self::None | Self::PrivateKeyJwt)
    }
}

/// OAuth grant type.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// The authorization code flow.
    AuthorizationCode,
    /// Refresh tokens.
    RefreshToken,
}

/// JWS signing algorithm.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum SigningAlg {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    ES512,
    EdDSA,
}

/// ID token signing algorithm.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum IdTokenSigningAlg {
    RS256,
}

/// Access token format.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccessTokenFormat {
    /// A random reference token, checked by introspection.
    Opaque,
    /// A signed JWT.
    Jwt,
}

/// A JSON Web Key Set (RFC 7517).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
pub struct Jwks {
    /// The public keys. Symmetric (`oct`) keys are refused.
    #[schemars(length(min = 1, max = 16))]
    pub keys: Vec<Jwk>,
}

/// A public JSON Web Key. Member names are those of RFC 7517/7518, so a JWKS can be pasted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new("self.kty != 'oct'").message("symmetric (oct) keys are not accepted"))]
pub struct Jwk {
    /// Key type: `RSA`, `EC` or `OKP`.
    #[schemars(length(min = 1, max = 16))]
    pub kty: String,
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub kid: Option<String>,
    /// Intended use: `sig` or `enc`.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub use_: Option<String>,
    /// Permitted operations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), inner(length(max = 32)))]
    pub key_ops: Vec<String>,
    /// Algorithm the key is used with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub alg: Option<String>,
    /// RSA modulus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub n: Option<String>,
    /// RSA exponent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub e: Option<String>,
    /// Elliptic curve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub crv: Option<String>,
    /// Curve x coordinate (or OKP public key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub x: Option<String>,
    /// Curve y coordinate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub y: Option<String>,
    /// URL of an X.509 certificate chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub x5u: Option<String>,
    /// X.509 certificate chain, base64 DER.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), inner(length(max = 16384)))]
    pub x5c: Vec<String>,
    /// SHA-1 thumbprint of the certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub x5t: Option<String>,
    /// SHA-256 thumbprint of the certificate.
    #[serde(default, rename = "x5t#S256", skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub x5t_s256: Option<String>,
}

/// The Secret the credentials are written to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplate {
    /// Name of the Secret, in the client's namespace. Defaults to `<name>-oauth-client`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: Option<String>,
    /// Names of the keys in the Secret's data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<SecretKeys>,
    /// Labels added to the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Key names in the credentials Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.clientId != self.clientSecret && (!has(self.tokenUrl) || (self.tokenUrl != self.clientId && self.tokenUrl != self.clientSecret)) && (!has(self.issuer) || (self.issuer != self.clientId && self.issuer != self.clientSecret && (!has(self.tokenUrl) || self.issuer != self.tokenUrl)))").message("clientId, clientSecret, tokenUrl and issuer must be different keys"))]
pub struct SecretKeys {
    /// Key that holds the client id.
    #[serde(default = "default_client_id_key")]
    #[schemars(length(min = 1, max = 253), pattern(r"^[-._a-zA-Z0-9]+$"))]
    pub client_id: String,
    /// Key that holds the client secret.
    #[serde(default = "default_client_secret_key")]
    #[schemars(length(min = 1, max = 253), pattern(r"^[-._a-zA-Z0-9]+$"))]
    pub client_secret: String,
    /// Key that gets the token endpoint URL (hydra clients of a backend with an `issuer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(r"^[-._a-zA-Z0-9]+$"))]
    pub token_url: Option<String>,
    /// Key that gets the issuer URL (hydra clients of a backend with an `issuer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(r"^[-._a-zA-Z0-9]+$"))]
    pub issuer: Option<String>,
    /// Key that holds the private key, PKCS#8 PEM (`managedKeys` clients).
    #[serde(default = "default_private_key_key")]
    #[schemars(length(min = 1, max = 253), pattern(r"^[-._a-zA-Z0-9]+$"))]
    pub private_key: String,
    /// Key that holds the private key's id, its `kid` (`managedKeys` clients).
    #[serde(default = "default_key_id_key")]
    #[schemars(length(min = 1, max = 253), pattern(r"^[-._a-zA-Z0-9]+$"))]
    pub key_id: String,
}

fn default_private_key_key() -> String {
    "private_key".into()
}

fn default_key_id_key() -> String {
    "key_id".into()
}

fn default_client_id_key() -> String {
    "client_id".into()
}

fn default_client_secret_key() -> String {
    "client_secret".into()
}

impl Default for SecretKeys {
    fn default() -> Self {
        Self {
            client_id: default_client_id_key(),
            client_secret: default_client_secret_key(),
            token_url: None,
            issuer: None,
            private_key: default_private_key_key(),
            key_id: default_key_id_key(),
        }
    }
}

/// What to do in the backend when the resource is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
pub enum DeletionPolicy {
    /// Deactivate the client in the backend.
    #[default]
    Delete,
    /// Leave the client in the backend as it is.
    Orphan,
}

/// What the operator last saw of the client.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuthClientStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready` says whether the backend client matches the spec and its credentials are in
    /// the Secret.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// The public client id issued by the backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,

    /// The backend's handle for the client (in the Wacht API, its numeric row id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_id: Option<String>,

    /// The Secret holding the credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,

    /// When the secret was last issued or rotated (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotated_at: Option<String>,

    /// The value of the `oauth-operator.dev/rotate` annotation last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_rotate_request: Option<String>,

    /// For `registered` clients: the `resourceVersion` of the credentials Secret last pushed
    /// to the backend (the values themselves are never recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_version: Option<String>,

    /// The client the last `NewClient` rotation replaced, and when it retires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_client: Option<PreviousClient>,

    /// The managed key the last rotation replaced, published beside the current one until it
    /// retires (public: its JWK).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_key: Option<PreviousKey>,

    /// Where the backend client lives, recorded once the operator reaches it: the deletion
    /// policy uses it, so deleting the client still deactivates it after its OAuthApp is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_ref: Option<BackendRef>,
}

/// The backend, and for Wacht-style clients the app, that hold a backend client.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendRef {
    /// Name of the backend in the operator's configuration.
    pub name: String,
    /// Deployment of the app (Wacht-style clients); unset: the backend's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<String>,
    /// Slug of the app (Wacht-style clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_slug: Option<String>,
}
