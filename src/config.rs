//! System configuration (SPEC §8, seed 002): defaults, then `steward.toml` (or `--config FILE`),
//! then `STEWARD_<KEY>` environment variables, then command-line flags; validated before use.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use crate::auth::tokens::Secret;
use crate::scheduler::Strategy;

/// Every key of the system configuration. Field docs say why a knob exists.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub bind: String,
    /// Where the SQLite database, results and logs live unless told otherwise.
    pub data_dir: PathBuf,
    /// `postgres://…` selects PostgreSQL; a `sqlite://` URL or a path selects SQLite; unset
    /// means `<data_dir>/steward.db`.
    pub database_url: Option<String>,
    /// Files named in task configs must lie under one of these (default: the data dir).
    pub data_roots: Vec<PathBuf>,
    pub result_dir: Option<PathBuf>,
    pub log_dir: Option<PathBuf>,
    /// Upper bound on running (and paused) tasks across the server.
    pub max_parallel_tasks: usize,
    /// Per-type bounds on running tasks, e.g. `{"video_processing": 1}`.
    pub type_limits: BTreeMap<String, usize>,
    /// Timeout for tasks that set none; 0 means no timeout.
    pub default_timeout_secs: f64,
    pub scheduling_strategy: Strategy,
    /// Seconds of waiting worth one priority level under the `priority` strategy (ageing).
    pub priority_ageing_secs: f64,
    /// When false nothing new starts; running work goes on.
    pub queue_enabled: bool,
    /// Admission control: no new starts while system CPU / memory use is above these.
    pub max_cpu_percent: f64,
    pub max_memory_percent: f64,
    /// How many tasks the built-in in-process unit runs at once.
    pub local_unit_capacity: usize,
    /// Grace period between SIGTERM and SIGKILL when a command task is cancelled.
    pub kill_grace_secs: f64,
    pub max_batch_tasks: usize,
    pub unit_heartbeat_timeout_secs: f64,
    pub stall_timeout_secs: f64,
    pub event_retention_secs: f64,
    pub history_retention_days: f64,
    pub log_level: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Database connections for readers (the writer has its own).
    pub db_pool_size: u32,
    /// Bearer token with full rights, named "admin" (also `STEWARD_ADMIN_TOKEN`). Without it
    /// and without `tokens`, steward serves without authentication and only on loopback.
    pub admin_token: Option<Secret>,
    /// Further tokens with roles, each `{name, role, sha256}`: only the token's SHA-256 is
    /// configured, so the file holds nothing that opens the server.
    pub tokens: Vec<crate::auth::TokenSpec>,
    /// Origins (`https://dash.example`) besides the server's own that may open a WebSocket.
    pub allowed_origins: Vec<String>,
    /// How long a ticket from `POST /api/v1/ws/ticket` stays usable.
    pub ws_ticket_ttl_secs: f64,
    /// When not empty, callback and webhook URLs must name one of these hosts (`example.com`,
    /// `*.example.com`, an IP address or a CIDR range such as `10.0.0.0/8`).
    pub webhook_allow_hosts: Vec<String>,
    /// Callback and webhook URLs naming one of these hosts are refused (same forms), on top of
    /// the link-local and cloud-metadata addresses that are always refused.
    pub webhook_deny_hosts: Vec<String>,
    /// HTTP worker threads (0: one per core).
    pub http_workers: usize,
    /// Alert thresholds: resource use in percent, and the longest acceptable queue wait.
    pub alert_cpu_percent: f64,
    pub alert_memory_percent: f64,
    pub alert_disk_percent: f64,
    pub alert_queue_wait_secs: f64,
    /// Unacknowledged critical alerts are announced again this often.
    pub alert_renotify_secs: f64,
    /// How long `GET /metrics/history` keeps samples.
    pub metrics_history_secs: f64,
    /// With `log_dir` set, the log also goes to `log_dir/steward.log`, rotated at this size…
    pub log_max_bytes: u64,
    /// …keeping this many older files.
    pub log_max_files: usize,
    /// A webhook delivery is tried this many times in all before it is given up as failed.
    pub webhook_max_attempts: u32,
    /// The first retry of a failed delivery waits this long; each later one twice as long.
    pub webhook_backoff_secs: f64,
    /// The interpreter `python` tasks run under (seed 002's `python_path`).
    pub python_path: String,
    /// A virtualenv whose `bin/python` replaces `python_path` (seed 002's `venv_dir`).
    pub venv_dir: Option<PathBuf>,
    /// Where `python` tasks import their modules from (default: the first data root).
    pub python_module_dirs: Vec<PathBuf>,
    /// The URL HTTP-style units call back on (default: `http://` and the bound address).
    pub public_url: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            data_roots: Vec::new(),
            result_dir: None,
            log_dir: None,
            max_parallel_tasks: 8,
            type_limits: BTreeMap::new(),
            default_timeout_secs: 3600.0,
            scheduling_strategy: Strategy::Priority,
            priority_ageing_secs: 60.0,
            queue_enabled: true,
            max_cpu_percent: 100.0,
            max_memory_percent: 100.0,
            local_unit_capacity: 1024,
            kill_grace_secs: 5.0,
            max_batch_tasks: 100_000,
            unit_heartbeat_timeout_secs: 30.0,
            stall_timeout_secs: 300.0,
            event_retention_secs: 86_400.0,
            history_retention_days: 30.0,
            log_level: "info".into(),
            max_body_bytes: 64 * 1024 * 1024,
            db_pool_size: 8,
            admin_token: None,
            tokens: Vec::new(),
            allowed_origins: Vec::new(),
            ws_ticket_ttl_secs: 60.0,
            webhook_allow_hosts: Vec::new(),
            webhook_deny_hosts: Vec::new(),
            http_workers: 0,
            alert_cpu_percent: 95.0,
            alert_memory_percent: 90.0,
            alert_disk_percent: 90.0,
            alert_queue_wait_secs: 600.0,
            alert_renotify_secs: 300.0,
            metrics_history_secs: 3600.0,
            log_max_bytes: 10 * 1024 * 1024,
            log_max_files: 5,
            webhook_max_attempts: 8,
            webhook_backoff_secs: 1.0,
            python_path: "python3".into(),
            venv_dir: None,
            python_module_dirs: Vec::new(),
            public_url: None,
        }
    }
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: &str, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Values given on the command line; `None` leaves the lower layers in force.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub bind: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
}

const ENV_PREFIX: &str = "STEWARD_";

impl Config {
    /// Builds the configuration from every source in order and validates it.
    pub fn load(overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut merged = as_map(&Config::default());
        let file = overrides.config_file.clone().or_else(|| {
            let default = PathBuf::from("steward.toml");
            default.exists().then_some(default)
        });
        if let Some(path) = file {
            merge(&mut merged, read_toml(&path)?);
        }
        let env = env_layer(&merged, std::env::vars())?;
        merge(&mut merged, env);
        let mut flags = Map::new();
        if let Some(b) = &overrides.bind {
            flags.insert("bind".into(), Value::String(b.clone()));
        }
        if let Some(d) = &overrides.data_dir {
            flags.insert("data_dir".into(), Value::String(d.display().to_string()));
        }
        if let Some(u) = &overrides.database_url {
            flags.insert("database_url".into(), Value::String(u.clone()));
        }
        merge(&mut merged, flags);
        Config::from_map(merged)
    }

    /// Deserializes and validates a complete or partial key map over the defaults.
    pub fn from_map(map: Map<String, Value>) -> Result<Config, ConfigError> {
        let defaults = as_map(&Config::default());
        let mut base = defaults.clone();
        merge(&mut base, map.clone());
        let config: Config = match serde_json::from_value(Value::Object(base)) {
            Ok(c) => c,
            Err(e) => {
                // serde does not say which field failed: find the key that fails alone.
                let key = map
                    .iter()
                    .find(|(k, v)| {
                        let mut one = defaults.clone();
                        one.insert((*k).clone(), (*v).clone());
                        serde_json::from_value::<Config>(Value::Object(one)).is_err()
                    })
                    .map(|(k, _)| k.clone())
                    .unwrap_or_else(|| "config".into());
                return Err(ConfigError::new(&key, e.to_string()));
            }
        };
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges and relations the types cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.bind.parse::<SocketAddr>().map_err(|e| {
            ConfigError::new("bind", format!("'{}' is not ADDR:PORT ({e})", self.bind))
        })?;
        if let Some(url) = &self.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::new(
                    "public_url",
                    format!("'{url}' is not an http:// or https:// URL"),
                ));
            }
        }
        positive("max_parallel_tasks", self.max_parallel_tasks as f64)?;
        positive("local_unit_capacity", self.local_unit_capacity as f64)?;
        positive("max_batch_tasks", self.max_batch_tasks as f64)?;
        positive_secs("priority_ageing_secs", self.priority_ageing_secs)?;
        positive_secs(
            "unit_heartbeat_timeout_secs",
            self.unit_heartbeat_timeout_secs,
        )?;
        positive_secs("stall_timeout_secs", self.stall_timeout_secs)?;
        positive("webhook_max_attempts", f64::from(self.webhook_max_attempts))?;
        positive_secs("webhook_backoff_secs", self.webhook_backoff_secs)?;
        positive("db_pool_size", f64::from(self.db_pool_size))?;
        at_most("db_pool_size", f64::from(self.db_pool_size), 1024.0)?;
        positive("max_body_bytes", self.max_body_bytes as f64)?;
        positive("log_max_bytes", self.log_max_bytes as f64)?;
        positive("log_max_files", self.log_max_files as f64)?;
        non_negative_secs("default_timeout_secs", self.default_timeout_secs)?;
        non_negative_secs("kill_grace_secs", self.kill_grace_secs)?;
        non_negative_secs("event_retention_secs", self.event_retention_secs)?;
        non_negative("history_retention_days", self.history_retention_days)?;
        at_most(
            "history_retention_days",
            self.history_retention_days,
            MAX_SECS / 86_400.0,
        )?;
        positive_secs("alert_queue_wait_secs", self.alert_queue_wait_secs)?;
        positive_secs("alert_renotify_secs", self.alert_renotify_secs)?;
        positive_secs("metrics_history_secs", self.metrics_history_secs)?;
        for (key, v) in [
            ("alert_cpu_percent", self.alert_cpu_percent),
            ("alert_memory_percent", self.alert_memory_percent),
            ("alert_disk_percent", self.alert_disk_percent),
        ] {
            if !(v > 0.0 && v <= 100.0) {
                return Err(ConfigError::new(key, format!("{v} is not in (0, 100]")));
            }
        }
        for (key, v) in [
            ("max_cpu_percent", self.max_cpu_percent),
            ("max_memory_percent", self.max_memory_percent),
        ] {
            if !(v > 0.0 && v <= 100.0) {
                return Err(ConfigError::new(key, format!("{v} is not in (0, 100]")));
            }
        }
        for (ty, limit) in &self.type_limits {
            if *limit == 0 {
                return Err(ConfigError::new(
                    "type_limits",
                    format!("the limit for '{ty}' must be at least 1"),
                ));
            }
        }
        positive_secs("ws_ticket_ttl_secs", self.ws_ticket_ttl_secs)?;
        crate::auth::tokens::validate(self)?;
        crate::webhooks::target::HostRules::validate(self)?;
        if let Ok(addr) = self.bind.parse::<SocketAddr>() {
            let no_tokens =
                self.admin_token.as_deref().unwrap_or("").is_empty() && self.tokens.is_empty();
            if !addr.ip().is_loopback() && no_tokens {
                return Err(ConfigError::new(
                    "bind",
                    format!("{addr} is not a loopback address; set admin_token (STEWARD_ADMIN_TOKEN) or tokens to serve there"),
                ));
            }
        }
        if log_filter(&self.log_level).is_none() {
            return Err(ConfigError::new(
                "log_level",
                format!(
                    "'{}' is not one of error, warn, info, debug, trace",
                    self.log_level
                ),
            ));
        }
        Ok(())
    }

    /// The database URL in force: the configured one or SQLite in the data dir.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) if !url.trim().is_empty() => url.clone(),
            _ => self.data_dir.join("steward.db").display().to_string(),
        }
    }

    /// The roots task files must lie under: the configured ones or the data dir.
    pub fn effective_data_roots(&self) -> Vec<PathBuf> {
        if self.data_roots.is_empty() {
            vec![self.data_dir.clone()]
        } else {
            self.data_roots.clone()
        }
    }

    /// This configuration as a JSON object, for the API and for layering.
    pub fn to_map(&self) -> Map<String, Value> {
        as_map(self)
    }
}

/// The `log` filter for a configured level name.
pub fn log_filter(level: &str) -> Option<log::LevelFilter> {
    match level.to_ascii_lowercase().as_str() {
        "error" => Some(log::LevelFilter::Error),
        "warn" | "warning" => Some(log::LevelFilter::Warn),
        "info" => Some(log::LevelFilter::Info),
        "debug" => Some(log::LevelFilter::Debug),
        "trace" => Some(log::LevelFilter::Trace),
        "off" => Some(log::LevelFilter::Off),
        _ => None,
    }
}

fn positive(key: &str, v: f64) -> Result<(), ConfigError> {
    if v > 0.0 && v.is_finite() {
        Ok(())
    } else {
        Err(ConfigError::new(key, format!("{v} must be greater than 0")))
    }
}

/// The longest duration a setting or a task may name: ten years. Anything longer is a
/// mistake, and not every float is a `Duration` (1e300 seconds panics the timer given it).
pub const MAX_SECS: f64 = 315_360_000.0;

fn at_most(key: &str, v: f64, max: f64) -> Result<(), ConfigError> {
    if v <= max {
        Ok(())
    } else {
        Err(ConfigError::new(key, format!("{v} is more than {max}")))
    }
}

fn positive_secs(key: &str, v: f64) -> Result<(), ConfigError> {
    positive(key, v)?;
    at_most(key, v, MAX_SECS)
}

fn non_negative_secs(key: &str, v: f64) -> Result<(), ConfigError> {
    non_negative(key, v)?;
    at_most(key, v, MAX_SECS)
}

fn non_negative(key: &str, v: f64) -> Result<(), ConfigError> {
    if v >= 0.0 && v.is_finite() {
        Ok(())
    } else {
        Err(ConfigError::new(key, format!("{v} must not be negative")))
    }
}

fn as_map(config: &Config) -> Map<String, Value> {
    match serde_json::to_value(config) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

fn merge(base: &mut Map<String, Value>, layer: Map<String, Value>) {
    for (k, v) in layer {
        base.insert(k, v);
    }
}

fn read_toml(path: &Path) -> Result<Map<String, Value>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new("config", format!("cannot read {}: {e}", path.display())))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| ConfigError::new("config", format!("{}: {e}", path.display())))?;
    match serde_json::to_value(table) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(ConfigError::new("config", "the file is not a table")),
    }
}

/// `STEWARD_<KEY>` variables for the keys that exist. A value is read as JSON where the key's
/// default is not a string (numbers, booleans, maps), and taken literally otherwise.
fn env_layer(
    defaults: &Map<String, Value>,
    vars: impl Iterator<Item = (String, String)>,
) -> Result<Map<String, Value>, ConfigError> {
    let mut layer = Map::new();
    for (name, raw) in vars {
        let Some(key) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let key = key.to_ascii_lowercase();
        let Some(default) = defaults.get(&key) else {
            continue;
        };
        let value = match default {
            Value::String(_) => Value::String(raw),
            // A token is taken as written, even when it looks like a number.
            Value::Null if key == "admin_token" => Value::String(raw),
            Value::Array(_) if !raw.trim_start().starts_with('[') => Value::Array(
                raw.split(',')
                    .map(|s| Value::String(s.trim().to_string()))
                    .filter(|v| v.as_str() != Some(""))
                    .collect(),
            ),
            Value::Null => serde_json::from_str(&raw).unwrap_or(Value::String(raw)),
            _ => serde_json::from_str(&raw).map_err(|_| {
                ConfigError::new(&key, format!("{name}='{raw}' is not a valid value"))
            })?,
        };
        layer.insert(key, value);
    }
    Ok(layer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_variables_override_defaults_with_typed_values() {
        let defaults = as_map(&Config::default());
        let vars = vec![
            ("STEWARD_MAX_PARALLEL_TASKS".to_string(), "1".to_string()),
            ("STEWARD_BIND".to_string(), "0.0.0.0:9000".to_string()),
            ("STEWARD_ADMIN_TOKEN".to_string(), "s3cret".to_string()),
            (
                "STEWARD_DATABASE_URL".to_string(),
                "postgres://x@y/z".to_string(),
            ),
            (
                "STEWARD_SCHEDULING_STRATEGY".to_string(),
                "fifo".to_string(),
            ),
            (
                "STEWARD_TYPE_LIMITS".to_string(),
                r#"{"sleep": 2}"#.to_string(),
            ),
            ("OTHER".to_string(), "ignored".to_string()),
        ];
        let layer = env_layer(&defaults, vars.into_iter()).unwrap();
        let config = Config::from_map(layer).unwrap();
        assert_eq!(config.max_parallel_tasks, 1);
        assert_eq!(config.bind, "0.0.0.0:9000");
        assert_eq!(config.database_url.as_deref(), Some("postgres://x@y/z"));
        assert_eq!(config.scheduling_strategy, Strategy::Fifo);
        assert_eq!(config.type_limits.get("sleep"), Some(&2));
    }

    #[test]
    fn a_non_loopback_bind_needs_a_token() {
        let mut m = Map::new();
        m.insert("bind".into(), Value::from("0.0.0.0:8080"));
        let err = Config::from_map(m.clone()).unwrap_err();
        assert_eq!(err.key, "bind");
        assert!(err.message.contains("admin_token"), "{}", err.message);
        m.insert("admin_token".into(), Value::from("t"));
        assert!(Config::from_map(m).is_ok());
    }

    #[test]
    fn tokens_come_from_the_environment_as_json_and_a_numeric_admin_token_stays_text() {
        let hash = "a".repeat(64);
        let vars = vec![
            ("STEWARD_ADMIN_TOKEN".to_string(), "12345".to_string()),
            (
                "STEWARD_TOKENS".to_string(),
                format!(r#"[{{"name": "ci", "role": "operator", "sha256": "{hash}"}}]"#),
            ),
        ];
        let layer = env_layer(&as_map(&Config::default()), vars.into_iter()).unwrap();
        let config = Config::from_map(layer).unwrap();
        assert_eq!(config.admin_token.as_deref(), Some("12345"));
        assert_eq!(config.tokens[0].name, "ci");
        assert!(!format!("{config:?}").contains("12345"));
        let mut m = Map::new();
        m.insert(
            "tokens".into(),
            serde_json::json!([{"name": "ci", "role": "operator", "token": "plain"}]),
        );
        assert_eq!(Config::from_map(m).unwrap_err().key, "tokens");
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut m = Map::new();
        m.insert("max_parallel_tasks".into(), Value::from(0));
        assert_eq!(Config::from_map(m).unwrap_err().key, "max_parallel_tasks");
        let mut m = Map::new();
        m.insert("max_cpu_percent".into(), Value::from(150));
        assert_eq!(Config::from_map(m).unwrap_err().key, "max_cpu_percent");
        let mut m = Map::new();
        m.insert("no_such_key".into(), Value::from(1));
        assert!(Config::from_map(m)
            .unwrap_err()
            .message
            .contains("no_such_key"));
        let vars = vec![("STEWARD_MAX_PARALLEL_TASKS".to_string(), "many".to_string())];
        let err = env_layer(&as_map(&Config::default()), vars.into_iter()).unwrap_err();
        assert_eq!(err.key, "max_parallel_tasks");
    }
}
