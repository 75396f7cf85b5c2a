//! Who may ask the admin server for an action (drain, undrain, plugin reload): loopback
//! callers only, unless a token is configured — then every caller presents it as a bearer
//! token, compared in constant time.

use std::net::IpAddr;
use subtle::ConstantTimeEq;

/// Shortest admin token accepted (bytes).
pub const TOKEN_MIN_LEN: usize = 16;

/// Why an action is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No token is configured and the caller is not on loopback (HTTP 403).
    NotLoopback,
    /// A token is configured and the caller presented none or another (HTTP 401).
    BadToken,
}

impl Refusal {
    /// What the caller is told.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::NotLoopback => "admin actions are accepted from loopback only (start the host with --admin-token)",
            Refusal::BadToken => "a valid bearer token is required (Authorization: Bearer TOKEN)",
        }
    }
}

/// Whether `peer`, presenting `authorization` (the header's value), may act, given the
/// configured `token`.
pub fn check(peer: IpAddr, authorization: Option<&[u8]>, token: Option<&str>) -> Result<(), Refusal> {
    let Some(token) = token else {
        let loopback = match peer {
            IpAddr::V4(v4) => v4.is_loopback(),
            IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        };
        return if loopback { Ok(()) } else { Err(Refusal::NotLoopback) };
    };
    let presented = authorization.and_then(|value| value.strip_prefix(b"Bearer ")).unwrap_or_default();
    if bool::from(presented.ct_eq(token.as_bytes())) && !presented.is_empty() {
        Ok(())
    } else {
        Err(Refusal::BadToken)
    }
}

/// Whether an HTTP `Host` header names an IP address or `localhost` (with or without a port):
/// a browser tricked by DNS rebinding sends the attacker's host name.
pub fn host_is_address(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => return v6.split_once(']').is_some_and(|(ip, _)| ip.parse::<std::net::Ipv6Addr>().is_ok()),
        None => {
            host.rsplit_once(':').map_or(host, |(name, port)| if port.parse::<u16>().is_ok() { name } else { host })
        }
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok()
}

/// Checks a configured token's strength.
pub fn validate_token(token: &str) -> Result<(), String> {
    if token.len() < TOKEN_MIN_LEN {
        return Err(format!("--admin-token must be at least {TOKEN_MIN_LEN} bytes (got {})", token.len()));
    }
    if token.bytes().any(|b| !(0x21..0x7f).contains(&b)) {
        return Err("--admin-token must be printable ASCII without spaces (it travels in an HTTP header)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef-secret";

    #[test]
    fn without_a_token_only_loopback_acts() {
        assert_eq!(check("127.0.0.1".parse().unwrap(), None, None), Ok(()));
        assert_eq!(check("127.0.0.9".parse().unwrap(), None, None), Ok(()));
        assert_eq!(check("::1".parse().unwrap(), None, None), Ok(()));
        assert_eq!(check("::ffff:127.0.0.1".parse().unwrap(), None, None), Ok(()));
        assert_eq!(check("10.254.1.1".parse().unwrap(), None, None), Err(Refusal::NotLoopback));
        assert_eq!(check("::ffff:10.0.0.1".parse().unwrap(), None, None), Err(Refusal::NotLoopback));
        // A header is no way around the address.
        let header = format!("Bearer {TOKEN}");
        assert_eq!(check("10.254.1.1".parse().unwrap(), Some(header.as_bytes()), None), Err(Refusal::NotLoopback));
    }

    #[test]
    fn with_a_token_every_caller_presents_it() {
        let remote: IpAddr = "10.254.1.1".parse().unwrap();
        let good = format!("Bearer {TOKEN}");
        assert_eq!(check(remote, Some(good.as_bytes()), Some(TOKEN)), Ok(()));
        assert_eq!(check("127.0.0.1".parse().unwrap(), None, Some(TOKEN)), Err(Refusal::BadToken));
        for bad in ["", "Bearer ", "Bearer 0123456789abcdef", "bearer 0123456789abcdef-secret", TOKEN] {
            assert_eq!(check(remote, Some(bad.as_bytes()), Some(TOKEN)), Err(Refusal::BadToken), "{bad:?}");
        }
        let longer = format!("Bearer {TOKEN}x");
        assert_eq!(check(remote, Some(longer.as_bytes()), Some(TOKEN)), Err(Refusal::BadToken));
    }

    #[test]
    fn only_addresses_and_localhost_are_hosts_of_an_action() {
        for ok in ["127.0.0.1:9464", "127.0.0.1", "localhost:9464", "LOCALHOST", "[::1]:9464", "10.254.3.1:9465"] {
            assert!(host_is_address(ok), "{ok}");
        }
        for bad in ["evil.example:9464", "evil.example", "127.0.0.1.evil.example", "[nonsense]:1", ""] {
            assert!(!host_is_address(bad), "{bad}");
        }
    }

    #[test]
    fn weak_tokens_are_refused() {
        assert!(validate_token("short").is_err());
        assert!(validate_token("has a space in it!!").is_err());
        assert!(validate_token(TOKEN).is_ok());
    }
}
