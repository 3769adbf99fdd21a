//! Row validation rules for `data_processing` (seed 004 §2.3.1's `validationRules`): each rule
//! names a check and the columns it applies to, and a row failing any check is rejected.

use serde_json::Value;

use super::ConfigError;

/// The checks a rule can name.
pub const KNOWN_RULES: &[&str] = &["email", "phone", "required"];

/// One check on the columns it applies to.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    pub check: String,
    /// The column the rule names; `None` means every column whose header contains the check's
    /// name (`"email"` checks `email`, `work_email`, ...).
    pub field: Option<String>,
}

/// Parses `validationRules`: `["email", "phone"]` or `[{"rule": "email", "field": "contact"}]`.
pub fn parse(v: Option<&Value>) -> Result<Vec<Rule>, ConfigError> {
    let items = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(ConfigError::new(
                "validationRules",
                format!("must be an array of rule names, not {other}"),
            ))
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let field = format!("validationRules[{i}]");
            let (check, column) = match item {
                Value::String(s) => (s.clone(), None),
                Value::Object(m) => {
                    let check = m.get("rule").and_then(Value::as_str).ok_or_else(|| {
                        ConfigError::new(&field, "needs a string 'rule' (e.g. \"email\")")
                    })?;
                    let column = match m.get("field") {
                        None | Some(Value::Null) => None,
                        Some(Value::String(f)) => Some(f.clone()),
                        Some(o) => {
                            return Err(ConfigError::new(
                                &field,
                                format!("'field' must be a string, not {o}"),
                            ))
                        }
                    };
                    (check.to_string(), column)
                }
                other => {
                    return Err(ConfigError::new(
                        &field,
                        format!("must be a rule name, not {other}"),
                    ))
                }
            };
            let check = check.to_ascii_lowercase();
            if !KNOWN_RULES.contains(&check.as_str()) {
                return Err(ConfigError::new(
                    &field,
                    format!("unknown rule '{check}' (known: {})", KNOWN_RULES.join(", ")),
                ));
            }
            if check == "required" && column.is_none() {
                return Err(ConfigError::new(&field, "'required' needs a 'field'"));
            }
            Ok(Rule {
                check,
                field: column,
            })
        })
        .collect()
}

/// One rule applied to one column.
struct Check {
    column: usize,
    /// `rule:header`, as the rejects file names the failure.
    name: String,
    passes: fn(&str) -> bool,
}

/// Rules bound to column indexes of one file's header.
pub struct Bound {
    checks: Vec<Check>,
}

impl Bound {
    /// Binds the rules to the header; returns the rules that match no column, for a warning.
    pub fn bind(rules: &[Rule], headers: &[String]) -> (Bound, Vec<String>) {
        let mut checks = Vec::new();
        let mut unmatched = Vec::new();
        for rule in rules {
            let f: fn(&str) -> bool = match rule.check.as_str() {
                "email" => is_email,
                "phone" => is_phone,
                _ => |s: &str| !s.trim().is_empty(),
            };
            let before = checks.len();
            for (i, h) in headers.iter().enumerate() {
                let h_low = h.to_ascii_lowercase();
                let hit = match &rule.field {
                    Some(col) => h.eq_ignore_ascii_case(col),
                    None => h_low.contains(&rule.check),
                };
                if hit {
                    checks.push(Check {
                        column: i,
                        name: format!("{}:{h}", rule.check),
                        passes: f,
                    });
                }
            }
            if checks.len() == before {
                unmatched.push(rule.field.clone().unwrap_or_else(|| rule.check.clone()));
            }
        }
        (Bound { checks }, unmatched)
    }

    /// The names of the checks a record fails (empty when valid).
    pub fn failures(&self, record: &csv::StringRecord) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|c| !(c.passes)(record.get(c.column).unwrap_or("")))
            .map(|c| c.name.as_str())
            .collect()
    }
}

/// A plain address check: one `@`, a non-empty local part, a dotted domain, no spaces.
pub fn is_email(s: &str) -> bool {
    let s = s.trim();
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let Some((host, tld)) = domain.rsplit_once('.') else {
        return false;
    };
    !local.is_empty()
        && !host.is_empty()
        && tld.len() >= 2
        && !domain.contains('@')
        && !s.chars().any(char::is_whitespace)
        && !domain.starts_with('.')
        && !domain.contains("..")
}

/// A phone number: optional leading `+`, 7 to 15 digits, separated by spaces, dashes, dots or
/// parentheses.
pub fn is_phone(s: &str) -> bool {
    let s = s.trim();
    let body = s.strip_prefix('+').unwrap_or(s);
    let digits = body.chars().filter(char::is_ascii_digit).count();
    (7..=15).contains(&digits)
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.' | '(' | ')'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn emails_and_phones_are_checked_plainly() {
        assert!(is_email("a.b@example.com"));
        assert!(!is_email("a@b"));
        assert!(!is_email("no-at.example.com"));
        assert!(!is_email("a @example.com"));
        assert!(is_phone("+1 (555) 123-4567"));
        assert!(!is_phone("12345"));
        assert!(!is_phone("555-CALL-NOW"));
    }

    #[test]
    fn unknown_rule_is_refused_with_its_index() {
        let e = parse(Some(&json!(["email", "zip"]))).unwrap_err();
        assert_eq!(e.field, "config.validationRules[1]");
    }
}
