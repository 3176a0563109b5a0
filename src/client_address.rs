//! The client's address: read once, from the headers Cloudflare's edge sets, so that every place edgekit names the
//! client — the key of `ip` rate limits (`SESSION_IP_POLICY` and the login's among them), the address a session
//! records, the last entry of the `X-Forwarded-For` the origin is sent, and the client an edge-cache fill named (whose
//! 429 reaches only the coalesced waiters of the same address) — names the same client for the same request.
//!
//! What the address is:
//! - `CF-Connecting-IP` read as an IP address, written canonically ([`ClientAddress::named`]): `2001:DB8::0001` is
//!   `2001:db8::1`, and an IPv4 client seen through a dual-stack listener (`::ffff:203.0.113.7`) is that IPv4 address.
//!   Before, the rate limiter read the address this way while the `X-Forwarded-For` and the cache fill's client kept
//!   the header's spelling: `::ffff:203.0.113.7` and `203.0.113.7` were one client to the limiter and two to the
//!   origin, and a fill's 429 for one did not reach the other.
//! - Cloudflare's Pseudo IPv4 ("Overwrite Headers") puts in `CF-Connecting-IP` a class E address (240.0.0.0/4, which
//!   no client on the internet has) hashed from the client's whole IPv6 address, and moves that address to
//!   `CF-Connecting-IPv6`. The named address stays the pseudo one — the zone asked for IPv4 addresses at its origin,
//!   and the origin sees only that one, so its limits (and a fill's 429) are by it — while the address a limit is
//!   taken by ([`ClientAddress::limited`]) is the IPv6 one: by the pseudo address, each of the 2^64 addresses of the
//!   client's /64 had a budget of its own. A `CF-Connecting-IPv6` beside a real address is ignored: a client can send
//!   that header itself, while only Cloudflare sets a class E `CF-Connecting-IP`.
//! - A missing, empty or malformed `CF-Connecting-IP` (never on Cloudflare, which sets it on every request; under
//!   Miniflare a client chooses it) is no address (`None`): an `ip` rate limit refuses the request 400
//!   `client_ip_unknown` (the login's policy is always keyed `ip`, so no session is made, and none records a malformed
//!   address), no `X-Forwarded-For` entry is added, and a cache fill names no client. Before, the limiter keyed such a
//!   value as given (`ip:not-an-address`, a budget per spelling) and the origin was sent it in `X-Forwarded-For`
//!   (`203.0.113.7, 10.0.0.1` made `10.0.0.1` the list's last hop).

use std::net::{IpAddr, Ipv6Addr};

/// The client of one request, as read by [`ClientAddress::read`]. Two `IpAddr`s, `Copy`: holding it costs no
/// allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress {
    named: IpAddr,
    behind_pseudo: Option<Ipv6Addr>,
}

impl ClientAddress {
    /// The client of a request whose `CF-Connecting-IP` is `connecting_ip` and `CF-Connecting-IPv6` is
    /// `connecting_ipv6`; `None` when `connecting_ip` is missing or no IP address. Surrounding whitespace is ignored.
    pub fn read(connecting_ip: Option<&str>, connecting_ipv6: Option<&str>) -> Option<Self> {
        let named = connecting_ip?.trim().parse::<IpAddr>().ok()?.to_canonical();
        let pseudo = matches!(named, IpAddr::V4(v4) if v4.octets()[0] >= 240);
        let behind_pseudo = connecting_ipv6
            .filter(|_| pseudo)
            .and_then(|v6| v6.trim().parse::<Ipv6Addr>().ok());
        Some(Self {
            named,
            behind_pseudo,
        })
    }

    /// The address the client is named by (to the origin, in a session's record, for a cache fill's 429):
    /// `CF-Connecting-IP`, canonical, a pseudo IPv4 one as it is.
    pub fn named(self) -> IpAddr {
        self.named
    }

    /// The address a rate limit is taken by: the IPv6 address behind a pseudo IPv4 one, else the named address
    /// (canonical either way).
    pub fn limited(self) -> IpAddr {
        self.behind_pseudo
            .map_or(self.named, |v6| IpAddr::V6(v6).to_canonical())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(ip: &str, ipv6: Option<&str>) -> Option<(String, String)> {
        ClientAddress::read(Some(ip), ipv6)
            .map(|a| (a.named().to_string(), a.limited().to_string()))
    }

    #[test]
    fn an_address_is_read_in_one_canonical_spelling() {
        for (ip, named) in [
            ("203.0.113.7", "203.0.113.7"),
            (" 203.0.113.7 ", "203.0.113.7"),
            ("2001:DB8:0:0::0001", "2001:db8::1"),
            ("2001:db8::1", "2001:db8::1"),
            ("::ffff:203.0.113.7", "203.0.113.7"),
            ("::FFFF:cb00:7107", "203.0.113.7"),
            ("::1", "::1"),
        ] {
            assert_eq!(
                read(ip, None),
                Some((named.to_owned(), named.to_owned())),
                "{ip:?}"
            );
        }
    }

    #[test]
    fn a_missing_empty_or_malformed_address_is_none() {
        assert_eq!(ClientAddress::read(None, Some("2001:db8::1")), None);
        for ip in [
            "",
            "   ",
            "not-an-address",
            "203.0.113.7, 10.0.0.1",
            "203.0.113.7:443",
            "[2001:db8::1]",
            "fe80::1%eth0",
            "203.0.113",
            "0203.0.113.7",
        ] {
            assert_eq!(read(ip, None), None, "{ip:?}");
        }
    }

    #[test]
    fn behind_a_pseudo_ipv4_address_the_limited_address_is_the_ipv6_one_and_the_named_stays_pseudo()
    {
        let cases = [
            ("240.16.0.1", Some("2001:db8:1:2::a"), "2001:db8:1:2::a"),
            ("255.1.2.3", Some(" 2001:DB8:1:2::1 "), "2001:db8:1:2::1"),
            // A mapped address behind a pseudo one is still that IPv4 address.
            ("240.16.0.1", Some("::ffff:203.0.113.7"), "203.0.113.7"),
            // Without a readable IPv6 address the pseudo one is all there is.
            ("240.16.0.1", Some("not an address"), "240.16.0.1"),
            ("240.16.0.1", Some("203.0.113.7"), "240.16.0.1"),
            ("240.16.0.1", None, "240.16.0.1"),
        ];
        for (ip, ipv6, limited) in cases {
            assert_eq!(
                read(ip, ipv6),
                Some((ip.to_owned(), limited.to_owned())),
                "{ip} {ipv6:?}"
            );
        }
    }

    #[test]
    fn beside_a_real_address_cf_connecting_ipv6_is_the_clients_to_send_and_ignored() {
        for (ip, named) in [
            ("203.0.113.7", "203.0.113.7"),
            ("239.255.255.255", "239.255.255.255"),
            ("2001:db8:3:4::1", "2001:db8:3:4::1"),
            ("::ffff:203.0.113.7", "203.0.113.7"),
        ] {
            assert_eq!(
                read(ip, Some("2001:db8:9::1")),
                Some((named.to_owned(), named.to_owned())),
                "{ip}"
            );
        }
    }
}
