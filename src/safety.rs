//! Safety rules shared by every stage: load only ever goes to loopback addresses unless the
//! user passed `--allow-remote`.

use anyhow::{Result, bail};
use std::net::IpAddr;

/// Split `host:port` (IPv6 in brackets: `[::1]:8080`). `None` if there is no valid port.
pub fn split_host_port(authority: &str) -> Option<(&str, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']')?;
        (&rest[..end], rest[end + 1..].strip_prefix(':')?)
    } else {
        authority.rsplit_once(':')?
    };
    if host.is_empty() {
        return None;
    }
    Some((host, port.parse().ok()?))
}

/// True for 127.0.0.0/8, ::1 and `localhost`.
pub fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<IpAddr>().map(|ip| ip.is_loopback()).unwrap_or(false)
}

/// Refuse a non-loopback target unless `allow_remote`.
pub fn check_target(url: &str, allow_remote: bool) -> Result<()> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let Some((host, _)) = split_host_port(authority) else {
        bail!("target URL {url:?} has no host:port");
    };
    if !allow_remote && !is_loopback_host(host) {
        bail!(
            "refusing to send load to {host} ({url}): only loopback addresses (127.0.0.0/8, ::1, localhost) \
             are allowed unless you pass --allow-remote"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_rule() {
        assert!(check_target("http://127.0.0.1:8080", false).is_ok());
        assert!(check_target("http://127.3.4.5:8080/x", false).is_ok());
        assert!(check_target("ws://[::1]:8081", false).is_ok());
        assert!(check_target("http://localhost:8080", false).is_ok());
        assert!(check_target("http://10.0.0.1:8080", false).is_err());
        assert!(check_target("http://example.com:80", false).is_err());
        assert!(check_target("http://10.0.0.1:8080", true).is_ok());
        assert_eq!(split_host_port("[::1]:80"), Some(("::1", 80)));
        assert_eq!(split_host_port("h:x"), None);
    }
}
