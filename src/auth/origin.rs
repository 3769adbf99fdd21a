//! The `Origin` check for WebSocket upgrades (SPEC §9). A browser sends `Origin` with every
//! WebSocket handshake, and a page on another site could otherwise open a socket to steward
//! with the user's network position. A handshake with an `Origin` must come from the server's
//! own host or from one of `allowed_origins`; clients that send none (CLI, workers) pass.

use actix_web::http::Uri;

/// Whether a WebSocket handshake with `origin` may proceed on a server reached as `host`
/// (the `Host` header) over `scheme`.
pub fn allowed(origin: &str, host: &str, scheme: &str, allowed: &[String]) -> bool {
    let origin = origin.trim();
    if allowed
        .iter()
        .any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some((o_scheme, o_host, o_port)) = parse_origin(origin) else {
        return false;
    };
    let Some((h_host, h_port)) = split_host(host, default_port(scheme)) else {
        return false;
    };
    // The page's scheme may differ from ours only by TLS (a proxy terminating https).
    matches!(o_scheme.as_str(), "http" | "https")
        && o_host.eq_ignore_ascii_case(&h_host)
        && (o_port == h_port || o_port == default_port(&o_scheme) && h_port == default_port(scheme))
}

fn default_port(scheme: &str) -> u16 {
    match scheme {
        "https" | "wss" => 443,
        _ => 80,
    }
}

fn parse_origin(origin: &str) -> Option<(String, String, u16)> {
    let uri: Uri = origin.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let host = uri.host()?.to_string();
    let port = uri.port_u16().unwrap_or_else(|| default_port(&scheme));
    Some((scheme, host, port))
}

fn split_host(host: &str, default: u16) -> Option<(String, u16)> {
    let uri: Uri = format!("http://{host}").parse().ok()?;
    Some((uri.host()?.to_string(), uri.port_u16().unwrap_or(default)))
}

#[cfg(test)]
mod tests {
    use super::allowed;

    #[test]
    fn the_servers_own_host_is_allowed() {
        assert!(allowed(
            "http://127.0.0.1:8080",
            "127.0.0.1:8080",
            "http",
            &[]
        ));
        assert!(allowed(
            "http://Steward.Example",
            "steward.example",
            "http",
            &[]
        ));
        assert!(allowed(
            "https://steward.example",
            "steward.example",
            "http",
            &[]
        ));
        assert!(allowed("http://[::1]:8080", "[::1]:8080", "http", &[]));
    }

    #[test]
    fn other_origins_need_the_list() {
        assert!(!allowed(
            "http://evil.example",
            "127.0.0.1:8080",
            "http",
            &[]
        ));
        assert!(!allowed(
            "http://127.0.0.1:9999",
            "127.0.0.1:8080",
            "http",
            &[]
        ));
        assert!(!allowed("null", "127.0.0.1:8080", "http", &[]));
        let list = vec!["https://dash.example/".to_string()];
        assert!(allowed(
            "https://dash.example",
            "127.0.0.1:8080",
            "http",
            &list
        ));
        assert!(!allowed(
            "https://other.example",
            "127.0.0.1:8080",
            "http",
            &list
        ));
    }
}
