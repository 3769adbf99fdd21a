//! Bearer tokens and their roles (SPEC §9). The configuration holds only the SHA-256 of each
//! token; a presented token is hashed and compared against every entry in constant time.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{Config, ConfigError};

/// What a token may do; each role includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read everything (secrets excepted) and subscribe to events.
    Viewer,
    /// Create and control tasks, batches and schedules; report progress and status.
    Operator,
    /// System configuration, units, deletion, import, maintenance, webhooks.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// One configured token: `[[tokens]] name = "ci" role = "operator" sha256 = "<hex>"`.
/// The token itself is never part of the configuration, only its SHA-256 in hex.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSpec {
    /// Shown in the status history (`by`) and as `created_by`.
    pub name: String,
    pub role: Role,
    /// Lower- or upper-case hex of the SHA-256 of the token (`printf %s TOKEN | sha256sum`).
    pub sha256: String,
}

/// A secret configuration value: serialized as itself (the configuration is layered as
/// JSON), but `Debug` never shows it, and the API masks it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
}

impl std::ops::Deref for Secret {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The name the `admin_token` key authenticates as.
pub const ADMIN_TOKEN_NAME: &str = "admin";
/// Names that already mean something in the status history.
const RESERVED_NAMES: [&str; 2] = ["scheduler", "system"];
const MAX_NAME: usize = 100;

/// Who a request comes from, once authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub role: Role,
}

struct Entry {
    identity: Identity,
    hash: [u8; 32],
}

/// The accepted tokens, as hashes. Empty means authentication is off (loopback only).
#[derive(Clone, Default)]
pub struct Tokens {
    entries: std::sync::Arc<Vec<Entry>>,
}

impl Tokens {
    /// The admin token and the `tokens` list of a validated configuration.
    pub fn from_config(c: &Config) -> Self {
        let mut entries = Vec::new();
        if let Some(t) = c.admin_token.as_deref().filter(|t| !t.is_empty()) {
            entries.push(Entry {
                identity: Identity {
                    name: ADMIN_TOKEN_NAME.into(),
                    role: Role::Admin,
                },
                hash: sha256(t.as_bytes()),
            });
        }
        for spec in &c.tokens {
            if let Some(hash) = parse_hash(&spec.sha256) {
                entries.push(Entry {
                    identity: Identity {
                        name: spec.name.clone(),
                        role: spec.role,
                    },
                    hash,
                });
            }
        }
        Tokens {
            entries: std::sync::Arc::new(entries),
        }
    }

    /// Whether any token is configured (and so every API request needs one).
    pub fn enabled(&self) -> bool {
        !self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The identity a presented token belongs to. Every entry is compared, in constant time,
    /// whatever matches, so the time taken says nothing about the configured tokens.
    pub fn authenticate(&self, presented: &str) -> Option<Identity> {
        let hash = sha256(presented.as_bytes());
        let mut found = None;
        for e in self.entries.iter() {
            if constant_time_eq(&e.hash, &hash) && found.is_none() {
                found = Some(e.identity.clone());
            }
        }
        found
    }
}

/// SHA-256 of some bytes.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn parse_hash(hex_text: &str) -> Option<[u8; 32]> {
    let bytes = hex::decode(hex_text.trim()).ok()?;
    bytes.try_into().ok()
}

/// Equal-length byte comparison whose time does not depend on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks the `tokens` list: names present, unique and not reserved, hashes well formed.
pub fn validate(c: &Config) -> Result<(), ConfigError> {
    let mut seen = std::collections::HashSet::new();
    if c.admin_token.as_deref().is_some_and(|t| !t.is_empty()) {
        seen.insert(ADMIN_TOKEN_NAME.to_string());
    }
    for (i, spec) in c.tokens.iter().enumerate() {
        let key = format!("tokens[{i}]");
        let name = spec.name.trim();
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(ConfigError::new(
                &key,
                format!("name must be 1 to {MAX_NAME} characters"),
            ));
        }
        if RESERVED_NAMES.contains(&name) {
            return Err(ConfigError::new(
                &key,
                format!("the name '{name}' is reserved for the status history"),
            ));
        }
        if !seen.insert(name.to_string()) {
            return Err(ConfigError::new(
                &key,
                format!("the name '{name}' is used twice (admin_token is named 'admin')"),
            ));
        }
        if parse_hash(&spec.sha256).is_none() {
            return Err(ConfigError::new(
                &key,
                "sha256 must be 64 hex digits: the SHA-256 of the token (printf %s TOKEN | sha256sum), not the token",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with(tokens: Vec<TokenSpec>, admin: Option<&str>) -> Config {
        Config {
            tokens,
            admin_token: admin.map(crate::config::Secret::new),
            ..Config::default()
        }
    }

    fn spec(name: &str, role: Role, token: &str) -> TokenSpec {
        TokenSpec {
            name: name.into(),
            role,
            sha256: hex::encode(sha256(token.as_bytes())),
        }
    }

    #[test]
    fn a_token_authenticates_as_its_name_and_role() {
        let c = config_with(
            vec![
                spec("ci", Role::Operator, "ci-token"),
                spec("grafana", Role::Viewer, "view"),
            ],
            Some("root"),
        );
        validate(&c).unwrap();
        let t = Tokens::from_config(&c);
        assert_eq!(t.len(), 3);
        assert_eq!(
            t.authenticate("ci-token"),
            Some(Identity {
                name: "ci".into(),
                role: Role::Operator
            })
        );
        assert_eq!(t.authenticate("root").map(|i| i.role), Some(Role::Admin));
        assert_eq!(
            t.authenticate("view").map(|i| i.name),
            Some("grafana".into())
        );
        assert_eq!(t.authenticate("ci-token "), None);
        assert_eq!(t.authenticate(""), None);
    }

    #[test]
    fn no_token_means_authentication_is_off() {
        assert!(!Tokens::from_config(&Config::default()).enabled());
        assert!(!Tokens::from_config(&config_with(vec![], Some(""))).enabled());
    }

    #[test]
    fn bad_token_lists_are_refused_naming_the_entry() {
        let mut bad_hash = spec("ci", Role::Operator, "x");
        bad_hash.sha256 = "not-hex".into();
        let err = validate(&config_with(vec![bad_hash], None)).unwrap_err();
        assert_eq!(err.key, "tokens[0]");
        assert!(err.message.contains("sha256"), "{}", err.message);

        let twice = vec![spec("a", Role::Viewer, "1"), spec("a", Role::Admin, "2")];
        assert_eq!(
            validate(&config_with(twice, None)).unwrap_err().key,
            "tokens[1]"
        );
        let clash = vec![spec("admin", Role::Viewer, "1")];
        assert!(validate(&config_with(clash.clone(), Some("root"))).is_err());
        assert!(validate(&config_with(clash, None)).is_ok());
        let reserved = vec![spec("scheduler", Role::Viewer, "1")];
        assert!(validate(&config_with(reserved, None)).is_err());
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
    }
}
