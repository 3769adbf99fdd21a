//! The role table: which role a request needs, by method and path (SPEC §9). The first rule
//! that matches decides; reading is for every role, changing work is for operators, and
//! administration (configuration, units, deletion, import, maintenance, webhooks) for admins.
//! Routes added later fall under the last rules: a read needs `viewer`, a change `operator`.

use super::tokens::Role;
use Role::*;

/// `(method or "*", path pattern, least role)`. In a pattern `*` is one path segment and a
/// trailing `**` is any number of segments (none included).
const RULES: &[(&str, &str, Role)] = &[
    // Asking for a WebSocket ticket, or searching logs, only reads.
    ("POST", "/api/v1/ws/ticket", Viewer),
    ("POST", "/api/v1/logs/search", Viewer),
    // A worker connecting over WebSocket reports progress and status, as unit callbacks do.
    ("GET", "/api/v1/units/connect", Operator),
    ("GET", "/**", Viewer),
    ("HEAD", "/**", Viewer),
    // Unit callbacks.
    ("POST", "/api/v1/units/*/heartbeat", Operator),
    ("POST", "/api/execution-units/*/heartbeat", Operator),
    // Administration.
    ("DELETE", "/**", Admin),
    ("*", "/api/v1/system/**", Admin),
    ("*", "/api/v1/units/**", Admin),
    ("*", "/api/execution-units/**", Admin),
    ("*", "/api/v1/webhooks/**", Admin),
    ("*", "/api/v1/maintenance/**", Admin),
    ("POST", "/api/v1/schedules/import", Admin),
    ("POST", "/api/tasks/import", Admin),
    // Everything else changes tasks, batches or schedules.
    ("*", "/**", Operator),
];

/// The least role that may make this request.
pub fn required(method: &str, path: &str) -> Role {
    RULES
        .iter()
        .find(|(m, pattern, _)| {
            (*m == "*" || m.eq_ignore_ascii_case(method)) && matches(pattern, path)
        })
        .map(|(_, _, role)| *role)
        .unwrap_or(Admin)
}

fn matches(pattern: &str, path: &str) -> bool {
    let mut want = pattern.split('/').filter(|s| !s.is_empty());
    let mut have = path.split('/').filter(|s| !s.is_empty());
    loop {
        match (want.next(), have.next()) {
            (Some("**"), _) => return true,
            (None, None) => return true,
            (Some("*"), Some(_)) => {}
            (Some(w), Some(h)) if w == h => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_is_for_viewers() {
        for path in [
            "/api/v1/tasks",
            "/api/v1/tasks/01/history",
            "/api/v1/system/config",
            "/api/v1/webhooks",
            "/api/v1/ws",
            "/metrics",
        ] {
            assert_eq!(required("GET", path), Viewer, "{path}");
        }
        assert_eq!(required("POST", "/api/v1/ws/ticket"), Viewer);
        assert_eq!(required("POST", "/api/v1/logs/search"), Viewer);
    }

    #[test]
    fn controlling_work_is_for_operators() {
        for (method, path) in [
            ("POST", "/api/v1/tasks"),
            ("POST", "/api/v1/tasks/01/pause"),
            ("PATCH", "/api/v1/tasks/01"),
            ("POST", "/api/v1/tasks/01/progress"),
            ("POST", "/api/v1/tasks/01/status"),
            ("POST", "/api/v1/batches/b/cancel"),
            ("PUT", "/api/v1/schedules/s"),
            ("POST", "/api/v1/schedules/s/trigger"),
            ("POST", "/api/v1/alerts/a/acknowledge"),
            ("POST", "/api/v1/units/u1/heartbeat"),
            ("GET", "/api/v1/units/connect"),
            ("POST", "/api/v1/backtest/createBatch"),
        ] {
            assert_eq!(required(method, path), Operator, "{method} {path}");
        }
    }

    #[test]
    fn administration_is_for_admins() {
        for (method, path) in [
            ("PUT", "/api/v1/system/config"),
            ("PATCH", "/api/v1/system/config"),
            ("POST", "/api/v1/system/config/validate"),
            ("DELETE", "/api/v1/tasks/01"),
            ("DELETE", "/api/v1/batches/b"),
            ("POST", "/api/v1/units"),
            ("POST", "/api/v1/units/u1/drain"),
            ("POST", "/api/v1/webhooks"),
            ("POST", "/api/v1/maintenance/cleanup"),
            ("POST", "/api/v1/schedules/import"),
            ("POST", "/api/tasks/import"),
            ("POST", "/api/execution-units"),
        ] {
            assert_eq!(required(method, path), Admin, "{method} {path}");
        }
    }

    #[test]
    fn patterns_match_whole_segments() {
        assert!(matches("/api/v1/units/**", "/api/v1/units"));
        assert!(matches(
            "/api/v1/units/*/heartbeat",
            "/api/v1/units/x/heartbeat"
        ));
        assert!(!matches(
            "/api/v1/units/*/heartbeat",
            "/api/v1/units/heartbeat"
        ));
        assert!(!matches("/api/v1/system/**", "/api/v1/systems"));
        assert!(!matches("/api/v1/ws/ticket", "/api/v1/ws/ticket/x"));
    }
}
