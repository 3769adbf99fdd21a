//! Secrets kept out of what people read (SPEC §9: "secrets never appear in logs or task
//! views"): a task's config keeps its credentials for the work, and every view of it shows
//! them as `***`.

use serde_json::Value;

/// What a masked value reads as.
pub const MASK: &str = "***";

/// Parts of a key (compared without case) that name a credential: an HTTP header such as
/// `Authorization` or `X-Api-Key`, an environment variable such as `DB_PASSWORD` or
/// `API_TOKEN`, a config field such as `secret`.
const SECRET_WORDS: [&str; 10] = [
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "api_key",
    "apikey",
    "api-key",
    "cookie",
    "credential",
];

/// Whether a key names a credential (a key naming the environment variable that holds one,
/// such as `passwordEnv`, does not).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    (SECRET_WORDS.iter().any(|w| k.contains(w)) || k.contains("private_key")) && !k.ends_with("env")
}

/// `v` with every value under a credential key replaced by [`MASK`] (at any depth), and the
/// password of any URL-shaped string (`scheme://user:password@host`) masked too.
pub fn redacted(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| {
                    let shown = if is_secret_key(k) && !v.is_null() {
                        Value::String(MASK.into())
                    } else {
                        redacted(v)
                    };
                    (k.clone(), shown)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(redacted).collect()),
        Value::String(s) => Value::String(url_without_password(s)),
        other => other.clone(),
    }
}

/// A URL with its password, if it has one, shown as [`MASK`]; any other text as it is.
pub fn url_without_password(s: &str) -> String {
    let Some((scheme, rest)) = s.split_once("://") else {
        return s.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return s.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:{MASK}@{host}{tail}"),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn credentials_are_masked_at_any_depth_and_the_rest_kept() {
        let config = json!({
            "url": "https://api.example.com/x?page=1",
            "headers": {"Authorization": "Bearer abc", "X-Api-Key": "k", "Accept": "text/plain"},
            "env": {"DB_PASSWORD": "pw", "API_TOKEN": "t", "HOME": "/root"},
            "args": ["--verbose"],
            "secs": 3,
            "token": null,
            "passwordEnv": "PGPASSWORD",
            "dsn": "postgres://app:hunter2@db:5432/app",
        });
        assert_eq!(
            redacted(&config),
            json!({
                "url": "https://api.example.com/x?page=1",
                "headers": {"Authorization": "***", "X-Api-Key": "***", "Accept": "text/plain"},
                "env": {"DB_PASSWORD": "***", "API_TOKEN": "***", "HOME": "/root"},
                "args": ["--verbose"],
                "secs": 3,
                "token": null,
                "passwordEnv": "PGPASSWORD",
                "dsn": "postgres://app:***@db:5432/app",
            })
        );
    }

    #[test]
    fn text_that_is_not_a_url_with_a_password_is_left_alone() {
        for s in [
            "plain",
            "http://host/a@b",
            "mailto:a@b",
            "http://user@host/",
        ] {
            assert_eq!(url_without_password(s), s);
        }
    }
}
