//! Which URLs steward will call back (SPEC §9): http or https only, and never link-local or
//! cloud-metadata addresses, where a callback could read the host's credentials. Loopback is
//! allowed (local receivers are the common case on one machine). On top of that,
//! `webhook_deny_hosts` refuses more hosts and a non-empty `webhook_allow_hosts` admits only
//! the hosts it names. Names are checked as written, not resolved.

use std::net::{IpAddr, Ipv4Addr};

use actix_web::http::Uri;

use crate::config::{Config, ConfigError};

const METADATA_HOSTS: &[&str] = &["metadata.google.internal", "metadata"];
const METADATA_V4: Ipv4Addr = Ipv4Addr::new(100, 100, 100, 200);

/// One entry of an allow or deny list: a host name, `*.suffix` (any name below it), an IP
/// address, or a CIDR range.
#[derive(Clone, Debug, PartialEq)]
enum HostPattern {
    Name(String),
    Suffix(String),
    Net(IpAddr, u8),
}

impl HostPattern {
    fn parse(raw: &str) -> Option<HostPattern> {
        let raw = raw.trim().trim_end_matches('.').to_ascii_lowercase();
        if raw.is_empty() {
            return None;
        }
        if let Some((ip, bits)) = raw.split_once('/') {
            let ip: IpAddr = ip
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .ok()?;
            let bits: u8 = bits.parse().ok()?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            return (bits <= max).then_some(HostPattern::Net(ip, bits));
        }
        let bare = raw.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            let bits = if ip.is_ipv4() { 32 } else { 128 };
            return Some(HostPattern::Net(ip, bits));
        }
        if let Some(suffix) = raw.strip_prefix("*.").or_else(|| raw.strip_prefix('.')) {
            return valid_name(suffix).then(|| HostPattern::Suffix(suffix.to_string()));
        }
        valid_name(&raw).then_some(HostPattern::Name(raw))
    }

    fn matches(&self, host: &str, ip: Option<IpAddr>) -> bool {
        match (self, ip) {
            (HostPattern::Name(n), _) => n == host,
            (HostPattern::Suffix(s), _) => host
                .strip_suffix(s.as_str())
                .is_some_and(|rest| rest.ends_with('.')),
            (HostPattern::Net(net, bits), Some(ip)) => in_net(ip, *net, *bits),
            (HostPattern::Net(..), None) => false,
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
}

fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// The configured allow and deny lists.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostRules {
    allow: Vec<HostPattern>,
    deny: Vec<HostPattern>,
}

impl HostRules {
    /// The lists of a validated configuration.
    pub fn from_config(c: &Config) -> Self {
        let parse = |l: &[String]| l.iter().filter_map(|h| HostPattern::parse(h)).collect();
        HostRules {
            allow: parse(&c.webhook_allow_hosts),
            deny: parse(&c.webhook_deny_hosts),
        }
    }

    /// Refuses list entries that are not a host, `*.suffix`, IP address or CIDR range.
    pub fn validate(c: &Config) -> Result<(), ConfigError> {
        for (key, list) in [
            ("webhook_allow_hosts", &c.webhook_allow_hosts),
            ("webhook_deny_hosts", &c.webhook_deny_hosts),
        ] {
            if let Some(bad) = list.iter().find(|h| HostPattern::parse(h).is_none()) {
                return Err(ConfigError::new(
                    key,
                    format!("'{bad}' is not a host name, *.domain, IP address or CIDR range"),
                ));
            }
        }
        Ok(())
    }
}

/// Checks a callback or webhook URL against the built-in rules and the configured lists; the
/// error says why it is refused.
pub fn check_url(raw: &str, rules: &HostRules) -> Result<(), String> {
    let host = check_builtin(raw)?;
    let ip = host.parse::<IpAddr>().ok();
    if rules.deny.iter().any(|p| p.matches(&host, ip)) {
        return Err(format!("'{host}' is refused by webhook_deny_hosts"));
    }
    if !rules.allow.is_empty() && !rules.allow.iter().any(|p| p.matches(&host, ip)) {
        return Err(format!("'{host}' is not in webhook_allow_hosts"));
    }
    Ok(())
}

/// The scheme, metadata and link-local checks; answers the host as compared.
fn check_builtin(raw: &str) -> Result<String, String> {
    let uri: Uri = raw.parse().map_err(|_| format!("'{raw}' is not a URL"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        Some(other) => {
            return Err(format!(
                "the scheme '{other}' is not allowed; use http or https"
            ))
        }
        None => return Err(format!("'{raw}' is not an absolute http(s) URL")),
    }
    let host = uri
        .host()
        .ok_or_else(|| format!("'{raw}' has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if METADATA_HOSTS.contains(&host.as_str()) {
        return Err(format!("'{host}' is a cloud metadata address"));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        if forbidden(ip) {
            return Err(format!("{ip} is a link-local or metadata address"));
        }
    }
    Ok(host)
}

fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local() || v4 == METADATA_V4 || v4.is_unspecified(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden(IpAddr::V4(v4));
            }
            (v6.segments()[0] & 0xffc0) == 0xfe80 || v6.is_unspecified()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{check_url as check, Config, HostRules};

    fn check_url(raw: &str) -> Result<(), String> {
        check(raw, &HostRules::default())
    }

    fn rules(allow: &[&str], deny: &[&str]) -> HostRules {
        let c = Config {
            webhook_allow_hosts: allow.iter().map(|s| s.to_string()).collect(),
            webhook_deny_hosts: deny.iter().map(|s| s.to_string()).collect(),
            ..Config::default()
        };
        HostRules::validate(&c).unwrap();
        HostRules::from_config(&c)
    }

    #[test]
    fn the_deny_list_refuses_names_suffixes_and_ranges() {
        let r = rules(&[], &["internal.example", "*.corp", "10.0.0.0/8", "::1"]);
        for bad in [
            "http://internal.example/",
            "http://a.b.corp/x",
            "http://10.1.2.3:9000/",
            "http://[::1]/",
            "http://[::ffff:10.0.0.1]/",
        ] {
            assert!(check(bad, &r).is_err(), "{bad} was accepted");
        }
        for ok in ["http://corp/", "http://11.0.0.1/", "http://example.com/"] {
            assert_eq!(check(ok, &r), Ok(()), "{ok}");
        }
    }

    #[test]
    fn a_non_empty_allow_list_admits_only_its_hosts() {
        let r = rules(&["hooks.example.com", "127.0.0.0/8"], &[]);
        assert_eq!(check("https://hooks.example.com/x", &r), Ok(()));
        assert_eq!(check("http://127.0.0.1:9000/", &r), Ok(()));
        assert!(check("https://example.com/", &r).is_err());
        // The built-in refusals stay, whatever the allow list says.
        let r = rules(&["169.254.0.0/16"], &[]);
        assert!(check("http://169.254.169.254/", &r).is_err());
    }

    #[test]
    fn malformed_list_entries_are_refused() {
        for bad in ["", "10.0.0.0/33", "http://x/", "a b"] {
            let c = Config {
                webhook_deny_hosts: vec![bad.to_string()],
                ..Config::default()
            };
            assert_eq!(
                HostRules::validate(&c).unwrap_err().key,
                "webhook_deny_hosts",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn loopback_and_public_urls_pass() {
        for ok in [
            "http://127.0.0.1:9000/hook",
            "https://example.com/x?y=1",
            "http://[::1]:80/",
            "http://localhost/",
        ] {
            assert_eq!(check_url(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn other_schemes_and_metadata_addresses_are_refused() {
        for bad in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "example.com/hook",
            "http://169.254.169.254/latest/meta-data",
            "http://[fe80::1]/",
            "http://100.100.100.200/",
            "http://metadata.google.internal./computeMetadata",
            "http://[::ffff:169.254.1.1]/",
        ] {
            assert!(check_url(bad).is_err(), "{bad} was accepted");
        }
    }
}
