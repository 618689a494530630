//! The emulator's state: deployments → apps → clients → grants, in memory behind one mutex.
//! Every handler holds it for a few map operations only; hashing and random generation happen
//! outside it.

use std::{
    collections::{HashMap, HashSet},
    sync::{Mutex, MutexGuard},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ring::{digest, rand::SecureRandom};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Default)]
pub struct Shared(Mutex<Store>);

impl Shared {
    /// The state; a panic in another handler does not lock it for good.
    pub fn lock(&self) -> MutexGuard<'_, Store> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Default)]
pub struct Store {
    deployments: HashMap<String, Vec<AppRec>>,
    last_id: u64,
    /// Custom domains whose CNAME the emulator treats as in place.
    pub verified_domains: HashSet<String>,
    /// The OAuth Applications API's applications, by client id.
    pub applications: HashMap<String, crate::applications::Application>,
    /// The MCP OAuth clients API's clients, oldest first (deleted ones kept, marked).
    pub mcp_clients: Vec<crate::mcp::McpClient>,
}

impl Store {
    /// A new 64-bit row id (apps, clients and grants share the sequence, as database ids do).
    pub fn next_id(&mut self) -> u64 {
        self.last_id += 1;
        7_200_000_000_000_000 + self.last_id
    }

    /// The apps of a deployment, oldest first.
    pub fn apps(&self, deployment: &str) -> &[AppRec] {
        self.deployments.get(deployment).map(Vec::as_slice).unwrap_or_default()
    }

    pub fn apps_mut(&mut self, deployment: &str) -> &mut Vec<AppRec> {
        self.deployments.entry(deployment.to_string()).or_default()
    }

    pub fn app(&self, deployment: &str, slug: &str) -> Option<&AppRec> {
        self.apps(deployment).iter().find(|a| a.slug == slug)
    }

    pub fn app_mut(&mut self, deployment: &str, slug: &str) -> Option<&mut AppRec> {
        self.deployments.get_mut(deployment)?.iter_mut().find(|a| a.slug == slug)
    }

    /// A client by its public `client_id`, in any deployment.
    pub fn client_by_client_id(&mut self, client_id: &str) -> Option<&mut ClientRec> {
        self.deployments.values_mut().flatten().flat_map(|a| a.clients.iter_mut()).find(|c| c.client_id == client_id)
    }
}

pub struct AppRec {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub description: Option<String>,
    pub logo_url: Option<String>,
    pub fqdn: Option<String>,
    pub scopes: Vec<ScopeDef>,
    pub allow_dynamic_client_registration: bool,
    pub is_active: bool,
    pub created_at: String,
    pub updated_at: String,
    /// Oldest first; lists show them newest first.
    pub clients: Vec<ClientRec>,
}

impl AppRec {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "slug": self.slug,
            "name": self.name,
            "description": self.description,
            "logo_url": self.logo_url,
            "fqdn": self.fqdn,
            "supported_scopes": self.scopes.iter().map(|s| &s.scope).collect::<Vec<_>>(),
            "scope_definitions": self.scopes,
            "allow_dynamic_client_registration": self.allow_dynamic_client_registration,
            "is_active": self.is_active,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScopeDef {
    pub scope: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub organization_permission: Option<String>,
    #[serde(default)]
    pub workspace_permission: Option<String>,
}

impl ScopeDef {
    fn default_for(scope: &str) -> Self {
        ScopeDef {
            scope: scope.to_string(),
            display_name: scope.to_string(),
            description: format!("Allows {scope} access"),
            archived: false,
            category: String::new(),
            organization_permission: None,
            workspace_permission: None,
        }
    }

    /// The definitions of an app from its scope names and the definitions sent: every named
    /// scope gets one, the defaults where none was sent.
    pub fn merge(names: &[String], sent: Vec<ScopeDef>) -> Result<Vec<ScopeDef>, String> {
        let mut out: Vec<ScopeDef> = names.iter().map(|n| ScopeDef::default_for(n)).collect();
        for mut def in sent {
            if def.scope.is_empty() {
                return Err("scope_definitions: every definition needs a scope".into());
            }
            def.organization_permission = def.organization_permission.filter(|p| !p.is_empty());
            def.workspace_permission = def.workspace_permission.filter(|p| !p.is_empty());
            let fits = match def.category.as_str() {
                "" | "personal" => def.organization_permission.is_none() && def.workspace_permission.is_none(),
                "organization" => def.organization_permission.is_some() && def.workspace_permission.is_none(),
                "workspace" => def.workspace_permission.is_some() && def.organization_permission.is_none(),
                other => return Err(format!("scope {}: unknown category {other:?}", def.scope)),
            };
            if !fits {
                return Err(format!("scope {}: permissions do not fit category {:?}", def.scope, def.category));
            }
            if def.display_name.is_empty() {
                def.display_name = def.scope.clone();
            }
            if def.description.is_empty() {
                def.description = format!("Allows {} access", def.scope);
            }
            match out.iter_mut().find(|d| d.scope == def.scope) {
                Some(slot) => *slot = def,
                None => out.push(def),
            }
        }
        Ok(out)
    }
}

/// Text fields of a client; `""` in a request clears them.
const TEXT_FIELDS: &[&str] = &[
    "token_endpoint_auth_signing_alg",
    "jwks_uri",
    "public_key_pem",
    "client_name",
    "client_uri",
    "logo_uri",
    "tos_uri",
    "policy_uri",
    "software_id",
    "software_version",
    "id_token_signing_alg",
    "access_token_format",
];
const LIST_FIELDS: &[&str] = &["grant_types", "redirect_uris", "contacts", "post_logout_redirect_uris"];
const OTHER_FIELDS: &[&str] = &["client_auth_method", "jwks", "access_token_ttl_seconds", "skip_consent"];
const METHODS: &[&str] = &["client_secret_basic", "client_secret_post", "client_secret_jwt", "none", "private_key_jwt"];

pub struct ClientRec {
    pub id: u64,
    pub oauth_app_id: String,
    pub client_id: String,
    /// Every settable field, normalized: lists present, cleared text fields `null`.
    pub settings: Value,
    pub secret_hash: Option<Vec<u8>>,
    pub is_active: bool,
    pub created_at: String,
    pub updated_at: String,
    pub grants: Vec<GrantRec>,
}

impl ClientRec {
    /// Keeps the known fields, fills absent lists, and turns `""` text into "unset".
    pub fn normalize(settings: &mut Value) -> Result<(), String> {
        let Value::Object(fields) = settings else {
            return Err("body must be an object".into());
        };
        let known = |k: &str| TEXT_FIELDS.contains(&k) || LIST_FIELDS.contains(&k) || OTHER_FIELDS.contains(&k);
        fields.retain(|k, _| known(k));
        for key in TEXT_FIELDS {
            match fields.get(*key) {
                Some(Value::String(s)) if s.is_empty() => {
                    fields.insert(key.to_string(), Value::Null);
                }
                Some(Value::String(_)) | Some(Value::Null) => {}
                Some(_) => return Err(format!("{key} must be a string")),
                None => {
                    fields.insert(key.to_string(), Value::Null);
                }
            }
        }
        for key in LIST_FIELDS {
            match fields.get(*key) {
                None | Some(Value::Null) => {
                    fields.insert(key.to_string(), json!([]));
                }
                Some(Value::Array(items)) if items.iter().all(Value::is_string) => {}
                Some(_) => return Err(format!("{key} must be a list of strings")),
            }
        }
        for key in OTHER_FIELDS {
            fields.entry(key.to_string()).or_insert(Value::Null);
        }
        Ok(())
    }

    /// The creation rules of `docs/backends/wacht.md`, checked on create and after every update.
    pub fn validate(s: &Value) -> Result<(), String> {
        let text = |k: &str| s[k].as_str();
        let list = |k: &str| -> Vec<&str> {
            s[k].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
        };
        let method = text("client_auth_method").ok_or("client_auth_method must be a string")?;
        if !METHODS.contains(&method) {
            return Err(format!("client_auth_method must be one of {}", METHODS.join(", ")));
        }
        let grants = list("grant_types");
        if let Some(bad) = grants.iter().find(|g| !["authorization_code", "refresh_token"].contains(g)) {
            return Err(format!("unsupported grant type {bad}"));
        }
        if !grants.contains(&"authorization_code") {
            return Err("grant_types must include authorization_code".into());
        }
        let uris = list("redirect_uris");
        if uris.is_empty() {
            return Err("authorization_code needs at least one redirect URI".into());
        }
        for uri in uris.iter().chain(list("post_logout_redirect_uris").iter()) {
            let http = uri.starts_with("https://") || uri.starts_with("http://");
            if !http || uri.contains('#') {
                return Err(format!("redirect URI {uri} must be http(s) without a fragment"));
            }
        }
        let keys = [s["jwks_uri"].is_string(), !s["jwks"].is_null(), s["public_key_pem"].is_string()];
        let key_count = keys.iter().filter(|k| **k).count();
        if method == "private_key_jwt" {
            if key_count != 1 {
                return Err("private_key_jwt needs exactly one of jwks_uri, jwks, public_key_pem".into());
            }
            if text("jwks_uri").is_some_and(|u| !u.starts_with("https://")) {
                return Err("jwks_uri must be https".into());
            }
            if let Some(jwks) = s["jwks"].as_object() {
                let keys = jwks.get("keys").and_then(Value::as_array).ok_or("jwks needs keys")?;
                if keys.iter().any(|k| k.get("k").is_some() || k["kty"] == "oct") {
                    return Err("jwks may not hold symmetric keys".into());
                }
            }
        } else if key_count > 0 {
            return Err("key material is only accepted with private_key_jwt".into());
        }
        if text("id_token_signing_alg").is_some_and(|a| a != "RS256") {
            return Err("id_token_signing_alg must be RS256".into());
        }
        if text("access_token_format").is_some_and(|f| !["opaque", "jwt"].contains(&f)) {
            return Err("access_token_format must be opaque or jwt".into());
        }
        if let Some(ttl) = s["access_token_ttl_seconds"].as_i64()
            && !(60..=86400).contains(&ttl)
        {
            return Err("access_token_ttl_seconds must be between 60 and 86400".into());
        }
        Ok(())
    }

    /// Whether the client's method authenticates with a secret.
    pub fn has_secret(settings: &Value) -> bool {
        matches!(
            settings["client_auth_method"].as_str(),
            Some("client_secret_basic" | "client_secret_post" | "client_secret_jwt")
        )
    }

    pub fn to_json(&self, secret: Option<&str>) -> Value {
        let mut body = self.settings.clone();
        body["id"] = self.id.to_string().into();
        body["oauth_app_id"] = self.oauth_app_id.clone().into();
        body["client_id"] = self.client_id.clone().into();
        body["is_active"] = self.is_active.into();
        body["created_at"] = self.created_at.clone().into();
        body["updated_at"] = self.updated_at.clone().into();
        if let Some(secret) = secret {
            body["client_secret"] = secret.into();
        }
        body
    }

    pub fn secret_matches(&self, secret: &str) -> bool {
        secret_matches(self.secret_hash.as_deref(), secret)
    }
}

pub struct GrantRec {
    pub id: String,
    pub resource: Option<String>,
    pub scopes: Vec<String>,
    pub status: String,
    pub granted_at: String,
    pub revoked_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl GrantRec {
    pub fn to_json(&self, app_slug: &str, client_row_id: u64) -> Value {
        json!({
            "id": self.id,
            "api_auth_app_slug": app_slug,
            "oauth_client_id": client_row_id.to_string(),
            "resource": self.resource,
            "scopes": self.scopes,
            "status": self.status,
            "granted_at": self.granted_at,
            "expires_at": null,
            "revoked_at": self.revoked_at,
            "granted_by_user_id": null,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

/// Whether `secret` is the one whose digest is stored. Digests are compared, so timing tells
/// nothing about the secret.
pub fn secret_matches(stored: Option<&[u8]>, secret: &str) -> bool {
    stored == Some(hash(secret).as_slice())
}

/// SHA-256 of a secret; secrets are random 32-byte values, so no salt or stretching is needed.
pub fn hash(secret: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, secret.as_bytes()).as_ref().to_vec()
}

/// `oc_secret_` + base64url of 32 random bytes.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes).expect("system randomness");
    format!("oc_secret_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Now, RFC 3339 UTC to the second.
pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
