//! Client addresses as limits count them.

use std::net::{IpAddr, Ipv6Addr};

/// What a client's connections and sign-ins are counted by: an IPv4 address, or the /64
/// network of an IPv6 one, since a single host usually holds a whole /64 and could otherwise
/// take a fresh address for every connection.
pub(crate) fn client_network(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::client_network;

    #[test]
    fn an_ipv6_host_is_counted_by_its_64() {
        let net = |s: &str| client_network(s.parse().unwrap()).to_string();
        assert_eq!(net("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::");
        assert_eq!(net("2001:db8:1:2:ffff::1"), "2001:db8:1:2::");
        assert_eq!(net("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(net("192.0.2.7"), "192.0.2.7");
    }
}
