//! Where a request comes from: the client's address and user agent, for the anonymous rate
//! limit (`ratelimit::AnonymousLimits`) and the audit log.
//!
//! The rule: the client is the TCP peer, unless the peer is one of `REPRISE_TRUSTED_PROXIES`;
//! then it is the last address of `X-Forwarded-For` that is not a trusted proxy (each proxy
//! appends the address it received the request from, so everything left of the last untrusted
//! hop was written by the client and proves nothing). Nobody else's `X-Forwarded-For` is read.

use std::net::IpAddr;

use actix_web::http::header::{HeaderMap, USER_AGENT};
use ipnet::IpNet;

/// The reverse proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Addresses (`10.0.0.5`, `::1`) or networks (`10.0.0.0/8`), separated by commas or spaces.
    pub fn parse(raw: &str) -> Result<Self, String> {
        raw.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|item| !item.is_empty())
            .map(|item| {
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!("{item:?} is not an address or network such as 10.0.0.0/8")
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0.iter().any(|net| net.contains(&address))
    }
}

/// `::ffff:10.0.0.1` is `10.0.0.1`.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// What the tracing middleware learns of each request, kept for the audit log: its id, and
/// where it came from (`client`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    pub request_id: String,
    /// The client's address ([`Client`]).
    pub address: Option<std::net::IpAddr>,
    pub user_agent: Option<String>,
}

/// The longest user agent kept: enough to tell a browser, a script and a crawler apart.
const USER_AGENT_MAX: usize = 200;

/// The client of a request: its address as the rule above says (`None` when the server does
/// not know its peer, as in unit tests) and what it calls itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Client {
    pub address: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl Client {
    pub fn of(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &TrustedProxies) -> Self {
        Self {
            address: peer.map(|peer| address(peer, headers, trusted)),
            user_agent: headers
                .get(USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|ua| {
                    ua.chars()
                        .filter(|c| !c.is_control())
                        .take(USER_AGENT_MAX)
                        .collect::<String>()
                })
                .filter(|ua| !ua.is_empty()),
        }
    }
}

fn address(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let peer = canonical(peer);
    if !trusted.trusts(peer) {
        return peer;
    }
    // Every X-Forwarded-For header, in order, as one list; read from the right.
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(hop) = parse_hop(hop) else {
            // A hop a proxy would not write: what is left of it is not to be believed.
            break;
        };
        client = hop;
        if !trusted.trusts(hop) {
            break;
        }
    }
    client
}

/// `203.0.113.7`, `203.0.113.7:5123`, `2001:db8::1` or `[2001:db8::1]:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(address) = hop.parse::<IpAddr>() {
        return Some(canonical(address));
    }
    hop.parse::<std::net::SocketAddr>()
        .ok()
        .map(|s| canonical(s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        map
    }

    fn ip(raw: &str) -> IpAddr {
        raw.parse().expect("an address")
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client_whatever_it_says() {
        let h = headers(&[("x-forwarded-for", "198.51.100.9")]);
        let c = Client::of(Some(ip("203.0.113.7")), &h, &TrustedProxies::default());
        assert_eq!(c.address, Some(ip("203.0.113.7")));
    }

    #[test]
    fn behind_trusted_proxies_the_last_untrusted_hop_is_the_client() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 192.0.2.1").expect("valid");
        // The client wrote a first hop to pose as someone else; the proxies appended the rest.
        let h = headers(&[
            ("x-forwarded-for", "198.51.100.9, 203.0.113.7"),
            ("x-forwarded-for", "10.1.2.3"),
        ]);
        let c = Client::of(Some(ip("192.0.2.1")), &h, &trusted);
        assert_eq!(c.address, Some(ip("203.0.113.7")));
        // Only trusted hops: the leftmost is the client.
        let h = headers(&[("x-forwarded-for", "10.0.0.7, 10.0.0.8")]);
        let c = Client::of(Some(ip("10.0.0.9")), &h, &trusted);
        assert_eq!(c.address, Some(ip("10.0.0.7")));
        // No header: the proxy itself.
        let c = Client::of(Some(ip("10.0.0.9")), &HeaderMap::new(), &trusted);
        assert_eq!(c.address, Some(ip("10.0.0.9")));
        // Garbage right of the client's hop: stop at the last hop that parses.
        let h = headers(&[("x-forwarded-for", "203.0.113.7, garbage")]);
        let c = Client::of(Some(ip("10.0.0.9")), &h, &trusted);
        assert_eq!(c.address, Some(ip("10.0.0.9")));
        // Ports and brackets, and a v4-mapped peer.
        let h = headers(&[("x-forwarded-for", "[2001:db8::5]:443, 203.0.113.8:5100")]);
        let c = Client::of(Some(ip("::ffff:10.0.0.9")), &h, &trusted);
        assert_eq!(c.address, Some(ip("203.0.113.8")));
    }

    #[test]
    fn proxies_parse_as_addresses_or_networks() {
        assert!(TrustedProxies::parse("").expect("none").is_empty());
        assert_eq!(
            TrustedProxies::parse("127.0.0.1 ::1,10.0.0.0/8")
                .expect("valid")
                .0
                .len(),
            3
        );
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.example").is_err());
    }

    #[test]
    fn the_user_agent_is_kept_short_and_printable() {
        let long = "x".repeat(500);
        let h = headers(&[("user-agent", &long)]);
        let c = Client::of(None, &h, &TrustedProxies::default());
        assert_eq!(c.user_agent.map(|u| u.len()), Some(USER_AGENT_MAX));
        assert_eq!(c.address, None);
    }
}
