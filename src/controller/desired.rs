//! What the backend should hold for a resource: pure functions from a spec to backend
//! requests, and the comparisons that keep a settled resource from writing again.

use crate::{
    api::{OAuthAppSpec, OAuthClient, OAuthClientSpec, ScopeCategory, SecretKeys},
    backend::{
        App, AppUpdate, ApplicationSettings, ClientSettings, HydraSettings, KeycloakSettings, Kind, Mode, NewApp,
        RegisteredSettings, RegisteredStatus, Scope, ScopeMapping, hydra,
    },
};

/// The scopes of an app, with the backend's defaults filled in where the spec leaves text
/// out, so that a settled app compares equal to what the backend reports.
pub fn scopes(spec: &OAuthAppSpec) -> Vec<Scope> {
    spec.scopes
        .iter()
        .map(|s| Scope {
            name: s.name.clone(),
            display_name: s.display_name.clone().unwrap_or_else(|| s.name.clone()),
            description: s.description.clone().unwrap_or_else(|| format!("Allows {} access", s.name)),
            archived: s.archived,
            mapping: s.mapping.as_ref().map(|m| match m.category {
                ScopeCategory::Personal => ScopeMapping::Personal,
                ScopeCategory::Organization => {
                    ScopeMapping::Organization(m.organization_permission.clone().unwrap_or_default())
                }
                ScopeCategory::Workspace => ScopeMapping::Workspace(m.workspace_permission.clone().unwrap_or_default()),
            }),
        })
        .collect()
}

/// The create request of an app; the logo is read by the caller.
pub fn new_app(spec: &OAuthAppSpec) -> NewApp {
    NewApp {
        slug: spec.slug.clone(),
        name: spec.display_name.clone(),
        description: spec.description.clone(),
        fqdn: spec.fqdn.clone(),
        scopes: scopes(spec),
        allow_dynamic_client_registration: spec.allow_dynamic_client_registration,
        logo: None,
    }
}

/// The update that brings `app` to `spec`, or `None` when it already matches. Mappings are
/// left out of the comparison: they are set one by one, never through an app update.
pub fn app_update(spec: &OAuthAppSpec, app: &App) -> Option<AppUpdate> {
    let wanted = scopes(spec);
    let scopes_match = wanted.len() == app.scopes.len()
        && wanted.iter().zip(&app.scopes).all(|(w, a)| {
            (&w.name, &w.display_name, &w.description, w.archived)
                == (&a.name, &a.display_name, &a.description, a.archived)
        });
    let matches = scopes_match
        && app.name == spec.display_name
        // Unset in the spec: the update leaves the backend's description as it is.
        && (spec.description.is_none() || app.description == spec.description)
        && app.allow_dynamic_client_registration == spec.allow_dynamic_client_registration
        && app.active == spec.active;
    // The backend resets the definitions an update leaves out, so send the mappings it has.
    let scopes = wanted
        .into_iter()
        .map(|mut s| {
            let current = app.scopes.iter().find(|a| a.name == s.name);
            s.mapping = current.and_then(|a| a.mapping.clone());
            s
        })
        .collect();
    (!matches).then(|| AppUpdate {
        name: Some(spec.display_name.clone()),
        description: spec.description.clone(),
        scopes,
        allow_dynamic_client_registration: Some(spec.allow_dynamic_client_registration),
        active: Some(spec.active),
    })
}

/// The settings of a client, as create and update send them: what its backend keeps of it,
/// with the resource's UID as the owner where the backend records one (so that no other
/// resource takes it).
pub fn client_settings(client: &OAuthClient) -> ClientSettings {
    let mut settings = mapped(client);
    settings.set_owner(client.metadata.uid.as_deref().unwrap_or_default());
    settings
}

/// The spec mapped to settings: its backend block read here and nowhere else.
fn mapped(client: &OAuthClient) -> ClientSettings {
    let spec = &client.spec;
    if let Some(app) = &spec.application {
        return ClientSettings {
            redirect_uris: spec.redirect_uris.clone(),
            mode: Mode::Application(Box::new(ApplicationSettings {
                name: spec.client_name.clone().unwrap_or_else(|| client.metadata.name.clone().unwrap_or_default()),
                kind: wire(&app.kind),
                owner_org_id: app.owner_org_id.clone().unwrap_or_default(),
                allowed_scopes: app.allowed_scopes.iter().map(wire).collect(),
            })),
            ..Default::default()
        };
    }
    if let Some(r) = &spec.registered {
        return ClientSettings {
            redirect_uris: spec.redirect_uris.clone(),
            mode: Mode::Registered(Box::new(RegisteredSettings {
                provider: r.provider.clone(),
                provider_name: r.provider_name.clone(),
                client_id: String::new(),
                authorization_url: r.authorization_url.clone(),
                token_url: r.token_url.clone(),
                scopes: r.scopes.clone(),
                metadata: r.metadata.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect(),
                server_ids: r.server_ids.clone(),
                status: if spec.active { RegisteredStatus::Active } else { RegisteredStatus::Inactive },
            })),
            ..Default::default()
        };
    }
    let mut settings = wacht_settings(spec);
    if let Some(h) = &spec.hydra {
        settings.grant_types = h.grant_types.iter().map(wire).collect();
        let mut scopes =
            if h.scopes.is_empty() { hydra::DEFAULT_SCOPES.map(String::from).to_vec() } else { h.scopes.clone() };
        scopes.sort();
        scopes.dedup();
        let metadata = h.metadata.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
        let lifespans = h.token_lifespans.as_ref().map(|l| l.fields()).unwrap_or_default();
        settings.mode = Mode::Hydra(Box::new(HydraSettings {
            client_id: chosen_id(client),
            owner: String::new(),
            response_types: h.response_types.iter().map(wire).collect(),
            scopes,
            audience: h.audience.clone(),
            metadata,
            // Checked by the CRD's pattern: whole hours, minutes and seconds.
            lifespans: lifespans
                .into_iter()
                .filter_map(|(field, text)| {
                    let ms = crate::duration::parse_duration(text).ok()?.as_millis();
                    Some((field.to_string(), u64::try_from(ms).ok()?))
                })
                .collect(),
        }));
    }
    if let Some(k) = &spec.keycloak {
        keycloak_settings(client, k, &mut settings);
    }
    // Managed keys sign with their algorithm; the JWKS comes from the Secret (`managed`).
    if let Some(m) = &spec.managed_keys {
        settings.token_endpoint_auth_signing_alg = Some(m.algorithm.keys().name().to_string());
    }
    settings
}

/// A Keycloak client: lists sorted (Keycloak keeps sets), and the two secret methods as one
/// (Keycloak takes the secret either way from any confidential client).
fn keycloak_settings(client: &OAuthClient, k: &crate::api::KeycloakSpec, settings: &mut ClientSettings) {
    let sorted = |mut list: Vec<String>| {
        list.sort();
        list.dedup();
        list
    };
    // Keycloak adds `service_account` to every client with a service account by itself.
    let scopes = |list: &Option<Vec<String>>| {
        list.as_ref().map(|l| sorted(l.iter().filter(|s| *s != "service_account").cloned().collect()))
    };
    settings.grant_types = sorted(k.grant_types.iter().map(wire).collect());
    settings.redirect_uris = sorted(std::mem::take(&mut settings.redirect_uris));
    settings.post_logout_redirect_uris = sorted(std::mem::take(&mut settings.post_logout_redirect_uris));
    if settings.client_auth_method == "client_secret_post" {
        settings.client_auth_method = "client_secret_basic".into();
    }
    settings.mode = Mode::Keycloak(Box::new(KeycloakSettings {
        client_id: chosen_id(client),
        owner: String::new(),
        description: k.description.clone().unwrap_or_default(),
        web_origins: sorted(k.web_origins.clone()),
        default_scopes: scopes(&k.default_client_scopes),
        optional_scopes: scopes(&k.optional_client_scopes),
        pkce_method: k.pkce_method.as_ref().map(wire).unwrap_or_default(),
        enabled: true,
    }));
}

/// The client id a spec names for a backend that lets the operator choose ids
/// (`spec.hydra.clientId`, `spec.keycloak.clientId`): one to take over, or to create under
/// that id.
pub fn spec_chosen_id(client: &OAuthClient) -> Option<&str> {
    let hydra = client.spec.hydra.as_ref().and_then(|h| h.client_id.as_deref());
    hydra.or_else(|| client.spec.keycloak.as_ref().and_then(|k| k.client_id.as_deref()))
}

/// The id of a client where the operator chooses ids: the one the spec names, else the
/// resource's UID. Chosen here, so a client whose creation a crash hid is found again.
pub fn chosen_id(client: &OAuthClient) -> String {
    let named = spec_chosen_id(client).map(str::to_string);
    named.unwrap_or_else(|| client.metadata.uid.clone().unwrap_or_default())
}

/// The id of the client that replaces `current` in a `NewClient` rotation: the base id of
/// [`chosen_id`] with the next generation, `<base>-r<n>`. Chosen, like the first, so that a
/// client whose creation a crash hid is found again.
pub fn next_chosen_id(client: &OAuthClient, current: &str) -> String {
    let base = chosen_id(client);
    format!("{base}-r{}", generation(&base, current).unwrap_or(0) + 1)
}

/// Whether `id` is one of the ids this resource's clients take where ids are chosen.
pub fn is_chosen_id(client: &OAuthClient, id: &str) -> bool {
    generation(&chosen_id(client), id).is_some()
}

fn generation(base: &str, id: &str) -> Option<u32> {
    if id == base {
        return Some(0);
    }
    let n = id.strip_prefix(base)?.strip_prefix("-r")?;
    n.bytes().all(|b| b.is_ascii_digit()).then(|| n.parse().ok()).flatten()
}

/// The kind of backend a client without an app needs, by the block its spec sets, and how to
/// name it in a message.
pub fn backend_kind(spec: &OAuthClientSpec) -> (Kind, &'static str) {
    if spec.registered.is_some() {
        (Kind::Registered, "an MCP OAuth clients backend (type mcp-oauth-clients)")
    } else if spec.hydra.is_some() {
        (Kind::Hydra, "an Ory Hydra backend (type hydra)")
    } else if spec.keycloak.is_some() {
        (Kind::Keycloak, "a Keycloak backend (type keycloak)")
    } else {
        (Kind::Applications, "an OAuth Applications backend (type oauth-applications)")
    }
}

fn wacht_settings(spec: &OAuthClientSpec) -> ClientSettings {
    ClientSettings {
        client_auth_method: wire(&spec.client_auth_method),
        grant_types: spec.grant_types.iter().map(wire).collect(),
        redirect_uris: spec.redirect_uris.clone(),
        post_logout_redirect_uris: spec.post_logout_redirect_uris.clone(),
        token_endpoint_auth_signing_alg: spec.token_endpoint_auth_signing_alg.as_ref().map(wire),
        jwks_uri: spec.jwks_uri.clone(),
        jwks: spec.jwks.as_ref().map(|j| serde_json::to_value(j).expect("JWKS serializes")),
        public_key_pem: spec.public_key_pem.clone(),
        client_name: spec.client_name.clone(),
        client_uri: spec.client_uri.clone(),
        logo_uri: spec.logo_uri.clone(),
        tos_uri: spec.tos_uri.clone(),
        policy_uri: spec.policy_uri.clone(),
        contacts: spec.contacts.clone(),
        software_id: spec.software_id.clone(),
        software_version: spec.software_version.clone(),
        id_token_signing_alg: spec.id_token_signing_alg.as_ref().map(wire),
        access_token_format: spec.access_token_format.as_ref().map(wire),
        access_token_ttl_seconds: spec.access_token_ttl_seconds.map(i64::from),
        skip_consent: spec.skip_consent,
        mode: Mode::Wacht,
    }
}

/// One of our enums as its wire text (its serde name).
fn wire<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        _ => unreachable!("API enums serialize to strings"),
    }
}

/// A backend client's settings as far as [`client_matches`] reads them: a digest of what it
/// compares in full, and the values it takes from the backend where a spec is silent. The
/// list cache keeps this instead of the settings (a list holds thousands of clients).
#[derive(Clone, Debug, PartialEq)]
pub struct Fingerprint {
    digest: u64,
    skip_consent: Option<bool>,
    access_token_ttl_seconds: Option<i64>,
    access_token_format: Option<String>,
    id_token_signing_alg: Option<String>,
    /// A registered client's metadata records its owner.
    owner_recorded: bool,
    /// A Keycloak client's default and optional scopes (a spec without them takes the realm's).
    scopes: (Option<Vec<String>>, Option<Vec<String>>),
}

impl Fingerprint {
    pub fn of(current: &ClientSettings) -> Self {
        let owner_recorded =
            current.registered().is_none_or(|r| r.metadata.contains_key(crate::backend::OWNER_METADATA));
        Self {
            digest: digest(current.clone()),
            skip_consent: current.skip_consent,
            access_token_ttl_seconds: current.access_token_ttl_seconds,
            access_token_format: current.access_token_format.clone(),
            id_token_signing_alg: current.id_token_signing_alg.clone(),
            owner_recorded,
            scopes: current
                .keycloak()
                .map(|k| (k.default_scopes.clone(), k.optional_scopes.clone()))
                .unwrap_or_default(),
        }
    }
}

/// Whether the backend's copy of a client already has the settings. Unset optional fields
/// the backend leaves alone (`skip_consent`, TTL, format) count as matching its value, and so
/// do the fields set on creation only (an application's type and owner, a provider).
pub fn client_matches(wanted: &ClientSettings, current: &Fingerprint) -> bool {
    let mut normalized = wanted.clone();
    // Clients registered before owners were recorded get theirs with the next update, not
    // with a write of their own: an upgrade makes no backend write.
    if let Mode::Registered(w) = &mut normalized.mode
        && !current.owner_recorded
    {
        w.metadata.remove(crate::backend::OWNER_METADATA);
    }
    if let Mode::Keycloak(w) = &mut normalized.mode {
        w.default_scopes = w.default_scopes.take().or(current.scopes.0.clone());
        w.optional_scopes = w.optional_scopes.take().or(current.scopes.1.clone());
    }
    normalized.skip_consent = wanted.skip_consent.or(current.skip_consent);
    normalized.access_token_ttl_seconds = wanted.access_token_ttl_seconds.or(current.access_token_ttl_seconds);
    normalized.access_token_format = wanted.access_token_format.clone().or(current.access_token_format.clone());
    normalized.id_token_signing_alg = wanted.id_token_signing_alg.clone().or(current.id_token_signing_alg.clone());
    digest(normalized) == current.digest
}

/// A digest of the settings but for the fields set on creation only. 64 bits: two different
/// settings share one with odds of 2⁻⁶⁴, and the cost of that is a skipped update.
fn digest(mut settings: ClientSettings) -> u64 {
    match &mut settings.mode {
        Mode::Application(a) => {
            a.kind.clear();
            a.owner_org_id.clear();
        }
        Mode::Registered(r) => r.provider.clear(),
        _ => {}
    }
    super::watch::hash(&settings)
}

/// The Secret the credentials go to: `spec.secretTemplate.name`, else `<name>-oauth-client`.
pub fn secret_name(client: &OAuthClient) -> String {
    let template = client.spec.secret_template.as_ref().and_then(|t| t.name.clone());
    template.unwrap_or_else(|| format!("{}-oauth-client", client.metadata.name.as_deref().unwrap_or_default()))
}

/// The key names in that Secret.
pub fn secret_keys(client: &OAuthClient) -> SecretKeys {
    client.spec.secret_template.as_ref().and_then(|t| t.keys.clone()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::api::OAuthApp;

    fn sample<T: serde::de::DeserializeOwned>(file: &str) -> T {
        let path = format!("{}/deploy/samples/{file}", env!("CARGO_MANIFEST_DIR"));
        yaml_serde::from_str(&std::fs::read_to_string(path).expect("sample")).expect("sample parses")
    }

    #[test]
    fn client_settings_carry_every_field_in_wire_form() {
        let mut client: OAuthClient = sample("oauthclient.yaml");
        client.spec.access_token_ttl_seconds = Some(600);
        client.spec.id_token_signing_alg = Some(crate::api::IdTokenSigningAlg::RS256);
        client.spec.access_token_format = Some(crate::api::AccessTokenFormat::Jwt);
        client.spec.client_name = Some("Web".into());
        let settings = client_settings(&client);
        assert_eq!(settings.client_auth_method, "client_secret_basic");
        assert_eq!(settings.grant_types, ["authorization_code", "refresh_token"]);
        assert_eq!(settings.redirect_uris.len(), 2);
        assert_eq!(settings.access_token_ttl_seconds, Some(600));
        assert_eq!(settings.id_token_signing_alg.as_deref(), Some("RS256"));
        assert_eq!(settings.access_token_format.as_deref(), Some("jwt"));
        assert_eq!(settings.client_name.as_deref(), Some("Web"));
        assert_eq!(settings.jwks_uri, None);
    }

    #[test]
    fn hydra_clients_of_new_client_rotations_take_numbered_ids() {
        let mut client: OAuthClient = sample("oauthclient-hydra.yaml");
        client.metadata.uid = Some("u-1".into());
        client.spec.hydra.as_mut().expect("hydra").client_id = None;
        assert_eq!(next_chosen_id(&client, "u-1"), "u-1-r1");
        assert_eq!(next_chosen_id(&client, "u-1-r1"), "u-1-r2");
        assert_eq!(next_chosen_id(&client, "u-1-r41"), "u-1-r42");
        for ours in ["u-1", "u-1-r1", "u-1-r42"] {
            assert!(is_chosen_id(&client, ours), "{ours}");
        }
        for other in ["u-2", "u-1-r", "u-1-rx", "u-1-r-1", "u-1-r1-r2", "xu-1", "u-1r1"] {
            assert!(!is_chosen_id(&client, other), "{other}");
        }
        client.spec.hydra.as_mut().expect("hydra").client_id = Some("billing".into());
        assert_eq!(next_chosen_id(&client, "billing"), "billing-r1");
        assert!(!is_chosen_id(&client, "u-1"), "a chosen clientId replaces the UID");
    }

    #[test]
    fn jwks_keep_their_rfc_member_names() {
        let mut client: OAuthClient = sample("oauthclient.yaml");
        client.spec.jwks =
            serde_json::from_value(json!({"keys": [{"kty": "EC", "use": "sig", "x5t#S256": "t"}]})).expect("jwks");
        let jwks = client_settings(&client).jwks.expect("jwks");
        assert_eq!(jwks, json!({"keys": [{"kty": "EC", "use": "sig", "x5t#S256": "t"}]}));
    }

    #[test]
    fn a_settled_client_matches_and_a_changed_one_does_not() {
        let client: OAuthClient = sample("oauthclient.yaml");
        let wanted = client_settings(&client);
        let mut reported = wanted.clone();
        reported.access_token_ttl_seconds = Some(3600); // a backend default the spec leaves unset
        assert!(client_matches(&wanted, &Fingerprint::of(&reported)));
        reported.redirect_uris.push("https://drift.example.com/cb".into());
        assert!(!client_matches(&wanted, &Fingerprint::of(&reported)));
    }

    #[test]
    fn fields_set_on_creation_and_backend_defaults_match_and_a_set_value_does_not() {
        let client: OAuthClient = sample("oauthclient-application.yaml");
        let wanted = client_settings(&client);
        let mut reported = wanted.clone();
        let Mode::Application(a) = &mut reported.mode else { panic!("an application") };
        (a.kind, a.owner_org_id) = ("native".into(), "org-other".into());
        reported.skip_consent = Some(true);
        assert!(client_matches(&wanted, &Fingerprint::of(&reported)), "creation-only fields and a default");
        let mut explicit = wanted.clone();
        explicit.skip_consent = Some(false);
        assert!(!client_matches(&explicit, &Fingerprint::of(&reported)), "a value the spec sets is compared");
        let Mode::Application(a) = &mut reported.mode else { panic!("an application") };
        a.allowed_scopes.push("drift".into());
        assert!(!client_matches(&wanted, &Fingerprint::of(&reported)));
    }

    #[test]
    fn a_registered_client_without_an_owner_record_is_not_rewritten_for_it() {
        let mut client: OAuthClient = sample("oauthclient-registered.yaml");
        client.metadata.uid = Some("u-1".into());
        let wanted = client_settings(&client);
        assert_eq!(wanted.registered().expect("registered").metadata[crate::backend::OWNER_METADATA], "u-1");
        let mut settings = wanted.registered().cloned().expect("registered");
        settings.metadata.remove(crate::backend::OWNER_METADATA);
        let mut before_upgrade =
            ClientSettings { mode: Mode::Registered(Box::new(settings.clone())), ..wanted.clone() };
        assert!(client_matches(&wanted, &Fingerprint::of(&before_upgrade)), "settled before the upgrade: no write");
        settings.scopes.push("drift".into());
        before_upgrade.mode = Mode::Registered(Box::new(settings));
        assert!(
            !client_matches(&wanted, &Fingerprint::of(&before_upgrade)),
            "a real change still updates (and records the owner)"
        );
    }

    #[test]
    fn scopes_get_the_backend_defaults() {
        let app: OAuthApp = sample("oauthapp.yaml");
        let scopes = scopes(&app.spec);
        assert_eq!(scopes[0].mapping, Some(ScopeMapping::Workspace("workspace:mcp:invoke".into())));
        assert_eq!(scopes[1].display_name, "profile");
        assert_eq!(scopes[1].description, "Allows profile access");
    }

    #[test]
    fn app_update_only_when_something_differs_and_keeps_mappings() {
        let app: OAuthApp = sample("oauthapp.yaml");
        let created = new_app(&app.spec);
        let backend = App {
            id: "1".into(),
            slug: created.slug.clone(),
            name: created.name.clone(),
            description: created.description.clone(),
            fqdn: created.fqdn.clone(),
            scopes: created.scopes.clone(),
            allow_dynamic_client_registration: false,
            active: true,
        };
        assert_eq!(app_update(&app.spec, &backend), None, "steady state writes nothing");

        let mut renamed = app.spec.clone();
        renamed.display_name = "Renamed".into();
        let update = app_update(&renamed, &backend).expect("an update");
        assert_eq!(update.name.as_deref(), Some("Renamed"));
        assert_eq!(update.scopes[0].mapping, backend.scopes[0].mapping, "mappings are resent as the backend has them");

        // A description the spec leaves unset is the backend's (an update would not clear it).
        let mut described = backend.clone();
        described.description = Some("made by hand".into());
        let mut unset = app.spec.clone();
        unset.description = None;
        assert_eq!(app_update(&unset, &described), None, "no update that could never settle");
        assert!(app_update(&app.spec, &described).is_some(), "a description the spec sets is compared");
    }

    #[test]
    fn secret_name_defaults_to_the_resource_name() {
        let mut client: OAuthClient = sample("oauthclient.yaml");
        assert_eq!(secret_name(&client), "web-oauth");
        client.spec.secret_template = None;
        assert_eq!(secret_name(&client), "web-oauth-client");
        assert_eq!(secret_keys(&client).client_secret, "client_secret");
    }
}
