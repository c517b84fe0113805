//! IP networks in CIDR notation, for `relay.networks` (the `ipnet` crate's type; a bare address
//! means that one address).

pub use ipnet::IpNet;

/// Parses "192.0.2.0/24", "2001:db8::/32" or a single address.
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let bad = || {
        format!(
            "\"{s}\" is not a network; write an address (192.0.2.10) or a CIDR block (192.0.2.0/24, 2001:db8::/32)"
        )
    };
    let t = s.trim();
    if t.contains('/') {
        return t.parse::<IpNet>().map_err(|_| bad());
    }
    let ip: std::net::IpAddr = t.parse().map_err(|_| bad())?;
    Ok(IpNet::from(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(net: &str, ip: &str) -> bool {
        parse_net(net)
            .unwrap()
            .contains(&ip.parse::<std::net::IpAddr>().unwrap())
    }

    #[test]
    fn networks_contain_their_addresses_and_no_others() {
        assert!(has("192.0.2.0/24", "192.0.2.200"));
        assert!(!has("192.0.2.0/24", "192.0.3.1"));
        assert!(has("10.1.2.3", "10.1.2.3"));
        assert!(!has("10.1.2.3", "10.1.2.4"));
        assert!(has("2001:db8::/32", "2001:db8:1::5"));
        assert!(!has("2001:db8::/32", "192.0.2.1"));
        assert!(has("0.0.0.0/0", "203.0.113.1"));
    }

    #[test]
    fn malformed_networks_are_refused_with_an_example() {
        for bad in ["192.0.2.0/33", "example.com", "192.0.2/24", "::/129", ""] {
            let e = parse_net(bad).unwrap_err();
            assert!(e.contains("CIDR"), "{bad}: {e}");
        }
    }
}
