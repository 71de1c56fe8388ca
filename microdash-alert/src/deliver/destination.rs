//! Where webhooks may go. A channel's URL is written by a tenant, but the request leaves from
//! the server: without a limit, a tenant could make it call the cloud's metadata service
//! (`169.254.169.254`) or anything else only the server can reach (server-side request
//! forgery). The check runs on the addresses actually connected to (a resolver of our own in
//! the HTTP client, so a name that resolves differently the second time cannot slip past it)
//! and on literal addresses in the URL.

use std::error::Error;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which addresses webhooks may be sent to (`webhook_destinations`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Destinations {
    /// Only public, globally routable addresses: for a server whose tenants are not trusted
    /// with its network.
    Public,
    /// Public addresses and this host's and private networks (loopback, RFC 1918, CGNAT,
    /// IPv6 unique local), since small deployments send to receivers next to them; not
    /// link-local or the other addresses where cloud metadata services answer, nor
    /// unspecified, multicast or broadcast addresses. The default: it trusts tenants with
    /// the server's network (a refusing receiver's first 300 bytes show in their delivery
    /// log), so a server whose tenants are not trusted should use [`Destinations::Public`].
    #[default]
    Private,
    /// Any address, link-local included.
    Any,
}

impl Destinations {
    /// Whether a webhook may connect to `ip`.
    pub fn allows(self, ip: IpAddr) -> bool {
        match (self, Class::of(ip)) {
            (Destinations::Any, _) | (_, Class::Public) => true,
            (Destinations::Private, Class::Private) => true,
            (Destinations::Private | Destinations::Public, _) => false,
        }
    }

    /// The setting's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Destinations::Public => "public",
            Destinations::Private => "private",
            Destinations::Any => "any",
        }
    }
}

impl fmt::Display for Destinations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Destinations {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "public" => Ok(Destinations::Public),
            "private" => Ok(Destinations::Private),
            "any" => Ok(Destinations::Any),
            other => Err(format!("webhook destinations must be public, private or any, not {other:?}")),
        }
    }
}

/// Cloud metadata services outside the link-local range: Alibaba Cloud's (in CGNAT space,
/// which the `private` setting otherwise allows).
const METADATA_V4: [Ipv4Addr; 1] = [Ipv4Addr::new(100, 100, 100, 200)];
/// AWS's metadata service over IPv6 (in unique-local space).
const METADATA_V6: [Ipv6Addr; 1] = [Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)];

/// What kind of network an address belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Public,
    /// Loopback and private ranges.
    Private,
    /// Link-local, unspecified, multicast, broadcast: never a webhook receiver's address
    /// unless the operator says so.
    Special,
}

impl Class {
    fn of(ip: IpAddr) -> Class {
        match ip {
            IpAddr::V4(v4) => Class::of_v4(v4),
            IpAddr::V6(v6) => Class::of_v6(v6),
        }
    }

    fn of_v4(ip: Ipv4Addr) -> Class {
        let [a, b, ..] = ip.octets();
        if ip.is_link_local()
            || ip.is_unspecified()
            || ip.is_multicast()
            || ip.is_broadcast()
            || a == 0
            || METADATA_V4.contains(&ip)
        {
            Class::Special
        } else if ip.is_loopback() || ip.is_private() || (a == 100 && (64..128).contains(&b)) {
            Class::Private
        } else {
            Class::Public
        }
    }

    fn of_v6(ip: Ipv6Addr) -> Class {
        let segments = ip.segments();
        let first = segments[0];
        if ip.is_loopback() {
            return Class::Private;
        }
        if ip.is_unspecified() || ip.is_multicast() || (first & 0xffc0) == 0xfe80 || METADATA_V6.contains(&ip) {
            return Class::Special;
        }
        // Addresses that carry an IPv4 address reach it: IPv4-mapped and -compatible
        // (`::ffff:a.b.c.d`, `::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) and 6to4 (`2002:AABB:CCDD::`).
        let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
        if let Some(v4) = ip.to_ipv4() {
            return Class::of_v4(v4);
        }
        if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
            return Class::of_v4(embedded(segments[6], segments[7]));
        }
        if first == 0x2002 {
            return Class::of_v4(embedded(segments[1], segments[2]));
        }
        if (first & 0xfe00) == 0xfc00 { Class::Private } else { Class::Public }
    }
}

/// Why a webhook was not sent: its destination is not allowed. Carried through the HTTP
/// client's error chain so the attempt fails for good rather than being retried.
#[derive(Debug)]
pub(super) struct Refused {
    pub(super) host: String,
    pub(super) destinations: Destinations,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is not an address webhooks may reach (webhook_destinations = {})", self.host, self.destinations)
    }
}

impl Error for Refused {}

/// The HTTP client's resolver: the system's, keeping only allowed addresses.
pub(super) struct Resolver(pub(super) Destinations);

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let destinations = self.0;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found.iter().copied().filter(|a| destinations.allows(a.ip())).collect();
            if allowed.is_empty() && !found.is_empty() {
                let addresses: Vec<String> = found.iter().map(|a| a.ip().to_string()).collect();
                let host = format!("{host} ({})", addresses.join(", "));
                return Err(Box::new(Refused { host, destinations }) as Box<dyn Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The refusal for a URL whose host is a literal address that is not allowed (the resolver
/// never sees those).
pub(super) fn check_literal(url: &reqwest::Url, destinations: Destinations) -> Result<(), Refused> {
    let host = url.host_str().unwrap_or_default();
    let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() else { return Ok(()) };
    if destinations.allows(ip) { Ok(()) } else { Err(Refused { host: ip.to_string(), destinations }) }
}

/// Whether `err`'s chain holds a [`Refused`].
pub(super) fn refused<'a>(err: &'a (dyn Error + 'static)) -> Option<&'a Refused> {
    let mut source = Some(err);
    while let Some(err) = source {
        if let Some(refused) = err.downcast_ref::<Refused>() {
            return Some(refused);
        }
        source = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_setting_allows_its_networks() {
        let cases: &[(&str, [bool; 3])] = &[
            // address, allowed by [public, private, any]
            ("93.184.216.34", [true, true, true]),
            ("2606:2800:220:1:248:1893:25c8:1946", [true, true, true]),
            ("127.0.0.1", [false, true, true]),
            ("::1", [false, true, true]),
            ("10.1.2.3", [false, true, true]),
            ("172.16.0.1", [false, true, true]),
            ("172.32.0.1", [true, true, true]),
            ("192.168.1.10", [false, true, true]),
            ("100.64.0.1", [false, true, true]),
            ("100.128.0.1", [true, true, true]),
            ("fd12:3456::1", [false, true, true]),
            ("169.254.169.254", [false, false, true]),
            ("fe80::1", [false, false, true]),
            ("::ffff:169.254.169.254", [false, false, true]),
            ("::ffff:127.0.0.1", [false, true, true]),
            ("0.0.0.0", [false, false, true]),
            ("0.1.2.3", [false, false, true]),
            ("::", [false, false, true]),
            ("224.0.0.1", [false, false, true]),
            ("ff02::1", [false, false, true]),
            ("255.255.255.255", [false, false, true]),
            ("100.100.100.200", [false, false, true]),
            ("fd00:ec2::254", [false, false, true]),
            ("64:ff9b::a9fe:a9fe", [false, false, true]),
            ("64:ff9b::a00:5", [false, true, true]),
            ("64:ff9b::5db8:d822", [true, true, true]),
            ("2002:a9fe:a9fe::1", [false, false, true]),
            ("2002:7f00:1::", [false, true, true]),
            ("::10.0.0.5", [false, true, true]),
        ];
        for (address, expected) in cases {
            let ip: IpAddr = address.parse().unwrap();
            let got = [Destinations::Public, Destinations::Private, Destinations::Any].map(|d| d.allows(ip));
            assert_eq!(&got, expected, "{address}");
        }
    }

    #[test]
    fn the_setting_reads_as_it_is_written() {
        for d in [Destinations::Public, Destinations::Private, Destinations::Any] {
            assert_eq!(d.as_str().parse::<Destinations>(), Ok(d));
        }
        assert_eq!(Destinations::default(), Destinations::Private);
        assert!("lan".parse::<Destinations>().unwrap_err().contains("public, private or any"));
    }

    #[test]
    fn literal_addresses_in_urls_are_checked() {
        let url = |u: &str| reqwest::Url::parse(u).unwrap();
        assert!(check_literal(&url("http://169.254.169.254/latest/meta-data"), Destinations::Private).is_err());
        assert!(check_literal(&url("http://[fe80::1]:8080/"), Destinations::Private).is_err());
        assert!(check_literal(&url("http://127.0.0.1:9/"), Destinations::Private).is_ok());
        assert!(check_literal(&url("http://127.0.0.1:9/"), Destinations::Public).is_err());
        assert!(check_literal(&url("https://hooks.example.com/x"), Destinations::Public).is_ok());
    }
}
