//! Which URLs steward will call back (SPEC §9): http or https only, and never link-local or
//! cloud-metadata addresses, where a callback could read the host's credentials. Loopback is
//! allowed (local receivers are the common case on one machine). Names are checked as
//! written, not resolved.

use std::net::{IpAddr, Ipv4Addr};

use actix_web::http::Uri;

const METADATA_HOSTS: &[&str] = &["metadata.google.internal", "metadata"];
const METADATA_V4: Ipv4Addr = Ipv4Addr::new(100, 100, 100, 200);

/// Checks a callback or webhook URL; the error says why it is refused.
pub fn check_url(raw: &str) -> Result<(), String> {
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
    Ok(())
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
    use super::check_url;

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
