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

/// The socket address of `scheme://host:port[/...]` (or `host:port`): the first address the
/// host resolves to, IPv4 first (`localhost` is 127.0.0.1, as Mesher's own clients assume).
pub fn socket_addr(url: &str) -> Result<std::net::SocketAddr> {
    use std::net::ToSocketAddrs;
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let Some((host, port)) = split_host_port(authority) else {
        bail!("{url:?}: needs host:port");
    };
    let host = if host.eq_ignore_ascii_case("localhost") { "127.0.0.1" } else { host };
    let addrs: Vec<std::net::SocketAddr> = match (host, port).to_socket_addrs() {
        Ok(a) => a.collect(),
        Err(e) => bail!("{url:?}: cannot resolve {host}: {e}"),
    };
    match addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()) {
        Some(a) => Ok(*a),
        None => bail!("{url:?}: {host} resolves to no address"),
    }
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
        assert_eq!(socket_addr("http://localhost:8080/x").unwrap().to_string(), "127.0.0.1:8080");
        assert_eq!(socket_addr("ws://[::1]:8081").unwrap().to_string(), "[::1]:8081");
        assert!(socket_addr("http://nohost").is_err());
    }
}
