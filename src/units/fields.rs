//! Reading typed fields out of a unit's JSON config, each refusal naming its field.

use serde_json::Value;

use super::{opt_field, ConfigError};

/// The config must be a JSON object.
pub fn object(config: &Value) -> Result<(), ConfigError> {
    if config.is_object() {
        Ok(())
    } else {
        Err(ConfigError {
            field: "config".into(),
            message: "must be an object".into(),
        })
    }
}

/// An optional non-empty string.
pub fn opt_str(config: &Value, field: &str) -> Result<Option<String>, ConfigError> {
    match opt_field(config, field) {
        None => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
        Some(v) => Err(ConfigError::new(
            field,
            format!("must be a non-empty string, not {v}"),
        )),
    }
}

/// A required non-empty string.
pub fn req_str(config: &Value, field: &str) -> Result<String, ConfigError> {
    opt_str(config, field)?.ok_or_else(|| ConfigError::new(field, "is required"))
}

/// An optional boolean with its default.
pub fn bool_or(config: &Value, field: &str, default: bool) -> Result<bool, ConfigError> {
    match opt_field(config, field) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(ConfigError::new(
            field,
            format!("must be true or false, not {v}"),
        )),
    }
}

/// An optional number within `min..=max`.
pub fn opt_num(
    config: &Value,
    field: &str,
    min: f64,
    max: f64,
) -> Result<Option<f64>, ConfigError> {
    match opt_field(config, field) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(ConfigError::new(
                field,
                format!("must be a number from {min} to {max}, not {v}"),
            )),
        },
    }
}

/// An optional integer within `min..=max`.
pub fn opt_int(
    config: &Value,
    field: &str,
    min: i64,
    max: i64,
) -> Result<Option<i64>, ConfigError> {
    match opt_field(config, field) {
        None => Ok(None),
        Some(v) => match v.as_i64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(ConfigError::new(
                field,
                format!("must be an integer from {min} to {max}, not {v}"),
            )),
        },
    }
}
