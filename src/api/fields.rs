//! Typed access to JSON request bodies and query strings, so that every refusal is a 400
//! naming the offending field rather than a serde message about "line 1 column 37".

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use crate::domain::{parse_rfc3339, Millis, TaskId};
use crate::error::{ApiError, ApiResult, ErrorCode};

/// A JSON object body.
pub struct Body {
    map: Map<String, Value>,
    prefix: String,
}

impl Body {
    pub fn new(v: Value) -> ApiResult<Body> {
        Self::nested(v, "")
    }

    /// An object found inside another (fields are reported as `prefix.name`).
    pub fn nested(v: Value, prefix: &str) -> ApiResult<Body> {
        match v {
            Value::Object(map) => Ok(Body {
                map,
                prefix: prefix.to_string(),
            }),
            other => Err(if prefix.is_empty() {
                ApiError::new(
                    ErrorCode::Validation,
                    format!("the body must be a JSON object, not {}", kind(&other)),
                )
            } else {
                ApiError::field(
                    prefix.trim_end_matches('.'),
                    format!("must be an object, not {}", kind(&other)),
                )
            }),
        }
    }

    fn name(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The first present, non-null value among `keys` (a name and its aliases).
    pub fn get<'k>(&self, keys: &[&'k str]) -> Option<(&'k str, &Value)> {
        keys.iter()
            .find_map(|k| self.map.get(*k).filter(|v| !v.is_null()).map(|v| (*k, v)))
    }

    pub fn has(&self, keys: &[&str]) -> bool {
        self.get(keys).is_some()
    }

    pub fn string(&self, keys: &[&str]) -> ApiResult<Option<String>> {
        match self.get(keys) {
            None => Ok(None),
            Some((_, Value::String(s))) => Ok(Some(s.clone())),
            Some((k, v)) => Err(ApiError::field(
                self.name(k),
                format!("must be a string, not {}", kind(v)),
            )),
        }
    }

    pub fn bool(&self, keys: &[&str]) -> ApiResult<Option<bool>> {
        match self.get(keys) {
            None => Ok(None),
            Some((_, Value::Bool(b))) => Ok(Some(*b)),
            Some((k, v)) => Err(ApiError::field(
                self.name(k),
                format!("must be true or false, not {}", kind(v)),
            )),
        }
    }

    pub fn f64(&self, keys: &[&str]) -> ApiResult<Option<f64>> {
        match self.get(keys) {
            None => Ok(None),
            Some((k, v)) => v
                .as_f64()
                .filter(|f| f.is_finite())
                .map(Some)
                .ok_or_else(|| {
                    ApiError::field(self.name(k), format!("must be a number, not {}", kind(v)))
                }),
        }
    }

    pub fn i64(&self, keys: &[&str]) -> ApiResult<Option<i64>> {
        match self.get(keys) {
            None => Ok(None),
            Some((k, v)) => v.as_i64().map(Some).ok_or_else(|| {
                ApiError::field(self.name(k), format!("must be an integer, not {}", kind(v)))
            }),
        }
    }

    pub fn strings(&self, keys: &[&str]) -> ApiResult<Option<Vec<String>>> {
        match self.get(keys) {
            None => Ok(None),
            Some((k, Value::Array(items))) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(ApiError::field(
                        format!("{}[{i}]", self.name(k)),
                        format!("must be a string, not {}", kind(other)),
                    )),
                })
                .collect::<ApiResult<Vec<_>>>()
                .map(Some),
            Some((k, v)) => Err(ApiError::field(
                self.name(k),
                format!("must be an array of strings, not {}", kind(v)),
            )),
        }
    }

    pub fn string_map(&self, keys: &[&str]) -> ApiResult<Option<BTreeMap<String, String>>> {
        match self.get(keys) {
            None => Ok(None),
            Some((k, Value::Object(m))) => m
                .iter()
                .map(|(mk, v)| match v {
                    Value::String(s) => Ok((mk.clone(), s.clone())),
                    Value::Number(_) | Value::Bool(_) => Ok((mk.clone(), v.to_string())),
                    other => Err(ApiError::field(
                        format!("{}.{mk}", self.name(k)),
                        format!("must be a string, not {}", kind(other)),
                    )),
                })
                .collect::<ApiResult<BTreeMap<_, _>>>()
                .map(Some),
            Some((k, v)) => Err(ApiError::field(
                self.name(k),
                format!("must be an object of strings, not {}", kind(v)),
            )),
        }
    }

    pub fn object(&self, keys: &[&str]) -> ApiResult<Option<Value>> {
        match self.get(keys) {
            None => Ok(None),
            Some((_, v @ Value::Object(_))) => Ok(Some(v.clone())),
            Some((k, v)) => Err(ApiError::field(
                self.name(k),
                format!("must be an object, not {}", kind(v)),
            )),
        }
    }

    pub fn time(&self, keys: &[&str]) -> ApiResult<Option<Millis>> {
        match self.string(keys)? {
            None => Ok(None),
            Some(s) => parse_rfc3339(&s).map(Some).ok_or_else(|| {
                ApiError::field(self.name(keys[0]), format!("'{s}' is not an RFC 3339 time"))
            }),
        }
    }

    pub fn task_ids(&self, keys: &[&str]) -> ApiResult<Option<Vec<TaskId>>> {
        let Some(list) = self.strings(keys)? else {
            return Ok(None);
        };
        list.iter()
            .enumerate()
            .map(|(i, s)| {
                s.parse().map_err(|_| {
                    ApiError::field(
                        format!("{}[{i}]", self.name(keys[0])),
                        format!("'{s}' is not a task id"),
                    )
                })
            })
            .collect::<ApiResult<Vec<_>>>()
            .map(Some)
    }

    /// An optional `priority`: an integer or one of `low`, `normal`, `high`, `urgent`.
    pub fn priority(&self) -> ApiResult<Option<i32>> {
        match self.raw(&["priority"]) {
            None => Ok(None),
            Some(v) => crate::domain::Priority::from_json(v)
                .map(|p| Some(p.0))
                .map_err(|m| ApiError::field(self.name("priority"), m)),
        }
    }

    pub fn raw(&self, keys: &[&str]) -> Option<&Value> {
        self.get(keys).map(|(_, v)| v)
    }

    pub fn field_name(&self, key: &str) -> String {
        self.name(key)
    }

    /// The whole object.
    pub fn raw_object(&self) -> &Map<String, Value> {
        &self.map
    }
}

/// A short name for a JSON value's kind, for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Query-string parameters.
pub struct Params(pub HashMap<String, String>);

impl Params {
    pub fn str(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(|s| s.as_str())
            .filter(|s| !s.is_empty())
    }

    pub fn int(&self, key: &str, min: i64, max: i64) -> ApiResult<Option<i64>> {
        let Some(raw) = self.str(key) else {
            return Ok(None);
        };
        let n: i64 = raw
            .parse()
            .map_err(|_| ApiError::field(key, format!("'{raw}' is not an integer")))?;
        if n < min || n > max {
            return Err(ApiError::field(
                key,
                format!("{n} is outside {min}..={max}"),
            ));
        }
        Ok(Some(n))
    }

    pub fn float(&self, key: &str, min: f64, max: f64) -> ApiResult<Option<f64>> {
        let Some(raw) = self.str(key) else {
            return Ok(None);
        };
        let n: f64 = raw
            .parse()
            .ok()
            .filter(|f: &f64| f.is_finite())
            .ok_or_else(|| ApiError::field(key, format!("'{raw}' is not a number")))?;
        if n < min || n > max {
            return Err(ApiError::field(
                key,
                format!("{n} is outside {min}..={max}"),
            ));
        }
        Ok(Some(n))
    }

    pub fn time(&self, key: &str) -> ApiResult<Option<Millis>> {
        let Some(raw) = self.str(key) else {
            return Ok(None);
        };
        parse_rfc3339(raw)
            .or_else(|| raw.parse::<i64>().ok())
            .map(Some)
            .ok_or_else(|| ApiError::field(key, format!("'{raw}' is not an RFC 3339 time")))
    }

    /// A comma list.
    pub fn list(&self, key: &str) -> Vec<String> {
        self.str(key)
            .map(|s| {
                s.split(',')
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `page` (from 1) and `limit` (default 50, at most 1000) as (page, limit, offset).
    pub fn page(&self) -> ApiResult<(i64, i64, i64)> {
        let page = self.int("page", 1, 1_000_000_000)?.unwrap_or(1);
        let limit = self.int("limit", 1, MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT);
        Ok((page, limit, (page - 1) * limit))
    }
}

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 1000;
