//! Where a PostgreSQL backup connects, read from a `database_backup` config: `host`
//! (`host:port`, `[v6]:port` or a socket directory), `port`, `user`, `database` (a name, or a
//! URL without a password), `schema`, and the names of the server environment variables that
//! hold the secrets (`passwordEnv`, `connectionUrlEnv`; only [`SECRET_ENV_PREFIX`] names).

use serde_json::Value;

use super::fields::{opt_int, opt_str};
use super::ConfigError;

/// Only server environment variables with this prefix may be named by a task, so a task
/// cannot send the server's other secrets (its admin token, cloud keys) to a host it chose.
pub const SECRET_ENV_PREFIX: &str = "STEWARD_SECRET_";

/// Where a PostgreSQL database is and who to connect as.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct PgTarget {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    /// A database name, or a `postgresql://` URL without a password.
    pub database: Option<String>,
    pub password_env: Option<String>,
    pub url_env: Option<String>,
    /// Only this schema (a `pg_dump --schema` pattern).
    pub schema: Option<String>,
}

/// Whether a `postgres://user:password@host/db` URL carries a password (in its user info or
/// a `password=` parameter).
pub(crate) fn url_has_password(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let in_userinfo = authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    in_userinfo || rest.to_ascii_lowercase().contains("password=")
}

fn is_url(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    l.starts_with("postgres://") || l.starts_with("postgresql://")
}

fn env_name(config: &Value, field: &str) -> Result<Option<String>, ConfigError> {
    let Some(name) = opt_str(config, field)? else {
        return Ok(None);
    };
    let tail = name.strip_prefix(SECRET_ENV_PREFIX).unwrap_or("");
    if tail.is_empty() || !tail.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(ConfigError::new(
            field,
            format!("must name an environment variable of the server starting with {SECRET_ENV_PREFIX} (for example {SECRET_ENV_PREFIX}PROD_DB), not '{name}'"),
        ));
    }
    Ok(Some(name))
}

/// `host`, `host:port`, `[v6]:port`, or a Unix socket directory.
fn host_of(config: &Value) -> Result<(Option<String>, Option<u16>), ConfigError> {
    let Some(raw) = opt_str(config, "host")? else {
        return Ok((None, None));
    };
    let bad = |why: &str| Err(ConfigError::new("host", format!("{why}, not '{raw}'")));
    if raw.contains('@') || raw.contains("://") || raw.chars().any(char::is_whitespace) {
        // Not echoed: it may hold a password.
        return Err(ConfigError::new(
            "host",
            "takes a host name with an optional :port (credentials go in user and passwordEnv)",
        ));
    }
    if raw.starts_with('/') {
        return Ok((Some(raw), None));
    }
    let (host, port) = if let Some(rest) = raw.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, "")) => (h.to_string(), None),
            Some((h, p)) => match p.strip_prefix(':') {
                Some(p) => (h.to_string(), Some(p)),
                None => return bad("an IPv6 address is written [addr]:port"),
            },
            None => return bad("an IPv6 address is written [addr]:port"),
        }
    } else if raw.matches(':').count() == 1 {
        let (h, p) = raw.split_once(':').unwrap_or((&raw, ""));
        (h.to_string(), Some(p))
    } else {
        (raw.clone(), None)
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return bad("has a port that is not a number from 1 to 65535"),
        },
    };
    Ok((Some(host), port))
}

pub(crate) fn pg_target_of(config: &Value) -> Result<PgTarget, ConfigError> {
    let (host, host_port) = host_of(config)?;
    let port = opt_int(config, "port", 1, 65_535)?.map(|p| p as u16);
    let database = opt_str(config, "database")?;
    if let Some(db) = &database {
        if is_url(db) && url_has_password(db) {
            return Err(ConfigError::new("database", "must not carry a password: put the whole URL in a server environment variable and name it in connectionUrlEnv, or the password alone in passwordEnv"));
        }
        if !is_url(db) && db.contains('=') {
            return Err(ConfigError::new(
                "database",
                "takes a database name or a postgresql:// URL",
            ));
        }
    }
    let target = PgTarget {
        host,
        port: port.or(host_port),
        user: opt_str(config, "user")?,
        database,
        password_env: env_name(config, "passwordEnv")?,
        url_env: env_name(config, "connectionUrlEnv")?,
        schema: opt_str(config, "schema")?,
    };
    if target.database.is_none() && target.url_env.is_none() {
        return Err(ConfigError::new(
            "database",
            "is required (or connectionUrlEnv)",
        ));
    }
    Ok(target)
}
