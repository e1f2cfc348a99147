//! The client's address behind reverse proxies. Only when the TCP peer is
//! one of `server.trusted_proxies` (addresses or CIDR ranges) is the
//! address taken from `X-Forwarded-For` (or, without it, `Forwarded`):
//! the right-most entry that is not itself a trusted proxy, since each
//! proxy appends the address it saw and only the trusted ones' appends can
//! be believed. From anyone else those headers are ignored: a client could
//! write any address into them. The per-IP connection limit, the
//! connection record, the audit log and the logs all use this address.

use std::net::{IpAddr, SocketAddr};

use actix_web::http::header::HeaderMap;

/// `server.trusted_proxies`, parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrustedProxies(Vec<(IpAddr, u8)>);

impl TrustedProxies {
    /// Parses `203.0.113.9`, `10.0.0.0/8`, `::1`, `fd00::/8`.
    pub fn parse(list: &[String]) -> Result<Self, String> {
        let mut ranges = Vec::with_capacity(list.len());
        for item in list {
            let (addr, bits) = match item.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (item.as_str(), None),
            };
            let ip: IpAddr = addr.trim().parse().map_err(|_| {
                format!("server.trusted_proxies: {item:?} is not an IP address or CIDR range")
            })?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                None => max,
                Some(b) => b
                    .trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| {
                        format!("server.trusted_proxies: {item:?} has a bad prefix length")
                    })?,
            };
            ranges.push((ip, bits));
        }
        Ok(TrustedProxies(ranges))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0
            .iter()
            .any(|(net, bits)| in_range(ip, canonical(*net), *bits))
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) as the IPv4 they are.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn in_range(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Where a request comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientAddr {
    pub ip: IpAddr,
    /// As recorded and logged: `ip:port` when it is the TCP peer, the IP
    /// alone when a proxy passed it on.
    pub shown: String,
}

/// The client's address: the peer's, or (from a trusted proxy) the one the
/// proxies passed on.
pub fn client_addr(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
) -> Option<ClientAddr> {
    let peer = peer?;
    let direct = ClientAddr {
        ip: peer.ip(),
        shown: peer.to_string(),
    };
    if trusted.is_empty() || !trusted.contains(peer.ip()) {
        return Some(direct);
    }
    let chain = forwarded_for(headers);
    let client = chain
        .iter()
        .rev()
        .find(|ip| !trusted.contains(**ip))
        // Every hop trusted: the left-most is as far back as it goes.
        .or_else(|| chain.first());
    Some(match client {
        Some(ip) => ClientAddr {
            ip: *ip,
            shown: ip.to_string(),
        },
        None => direct,
    })
}

/// The addresses of `X-Forwarded-For` (every such header, in order), or of
/// `Forwarded`'s `for=` when there is no `X-Forwarded-For`. An entry that
/// is not an address (`unknown`, an obfuscated name) ends the chain there:
/// nothing left of it can be placed.
fn forwarded_for(headers: &HeaderMap) -> Vec<IpAddr> {
    let xff: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let entries: Vec<String> = if !xff.is_empty() {
        xff.into_iter().map(String::from).collect()
    } else {
        headers
            .get_all("forwarded")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (k, v) = pair.trim().split_once('=')?;
                    k.eq_ignore_ascii_case("for")
                        .then(|| v.trim().trim_matches('"').to_string())
                })
            })
            .collect()
    };
    let mut chain = Vec::new();
    for entry in entries.iter().rev() {
        match parse_node(entry) {
            Some(ip) => chain.push(ip),
            None => break,
        }
    }
    chain.reverse();
    chain
}

/// `1.2.3.4`, `1.2.3.4:5678`, `[2001:db8::1]`, `[2001:db8::1]:80`, `2001:db8::1`.
fn parse_node(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = entry.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|rest| rest.split(']').next())
        .and_then(|ip| ip.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn trusted(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn headers(list: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in list {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn from(peer: &str, t: &TrustedProxies, h: &[(&str, &str)]) -> String {
        client_addr(Some(peer.parse().unwrap()), &headers(h), t)
            .unwrap()
            .shown
    }

    #[test]
    fn ranges_match_v4_v6_and_mapped_addresses() {
        let t = trusted(&["10.0.0.0/8", "192.0.2.7", "fd00::/8"]);
        assert!(t.contains("10.200.1.1".parse().unwrap()));
        assert!(!t.contains("11.0.0.1".parse().unwrap()));
        assert!(t.contains("192.0.2.7".parse().unwrap()));
        assert!(!t.contains("192.0.2.8".parse().unwrap()));
        assert!(t.contains("fd12::1".parse().unwrap()));
        assert!(t.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(trusted(&["0.0.0.0/0"]).contains("8.8.8.8".parse().unwrap()));
        for bad in ["nope", "10.0.0.0/33", "::/129", "10.0.0.0/x"] {
            assert!(TrustedProxies::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_count_only_from_a_trusted_peer() {
        let t = trusted(&["127.0.0.1"]);
        let xff = [("X-Forwarded-For", "203.0.113.5")];
        assert_eq!(from("127.0.0.1:4000", &t, &xff), "203.0.113.5");
        assert_eq!(from("198.51.100.2:4000", &t, &xff), "198.51.100.2:4000");
        assert_eq!(
            from("127.0.0.1:4000", &TrustedProxies::default(), &xff),
            "127.0.0.1:4000"
        );
        assert_eq!(
            from("127.0.0.1:4000", &t, &[]),
            "127.0.0.1:4000",
            "no header"
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let t = trusted(&["127.0.0.1", "10.0.0.0/8"]);
        // The client wrote a fake first entry; the proxies appended theirs.
        let h = [("X-Forwarded-For", "1.1.1.1, 203.0.113.5, 10.0.0.3")];
        assert_eq!(from("127.0.0.1:80", &t, &h), "203.0.113.5");
        let split = [
            ("X-Forwarded-For", "1.1.1.1"),
            ("X-Forwarded-For", "203.0.113.5"),
        ];
        assert_eq!(from("127.0.0.1:80", &t, &split), "203.0.113.5");
        let all_trusted = [("X-Forwarded-For", "10.0.0.9, 10.0.0.3")];
        assert_eq!(from("127.0.0.1:80", &t, &all_trusted), "10.0.0.9");
        let garbage = [("X-Forwarded-For", "203.0.113.5, unknown")];
        assert_eq!(from("127.0.0.1:80", &t, &garbage), "127.0.0.1:80");
    }

    #[test]
    fn forwarded_is_read_when_there_is_no_x_forwarded_for() {
        let t = trusted(&["127.0.0.1"]);
        let h = [(
            "Forwarded",
            r#"for=198.51.100.17;proto=https, for="[2001:db8::7]:4711""#,
        )];
        assert_eq!(from("127.0.0.1:80", &t, &h), "2001:db8::7");
        let v4port = [("Forwarded", "for=198.51.100.17:5000")];
        assert_eq!(from("127.0.0.1:80", &t, &v4port), "198.51.100.17");
    }
}
