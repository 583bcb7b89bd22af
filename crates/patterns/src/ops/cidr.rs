//! `cidr`: IPv4 and IPv6 ranges, parsed as event-ruler parses them.

use std::net::IpAddr;

/// An IP range.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cidr {
    v6: bool,
    lo: u128,
    hi: u128,
}

impl Cidr {
    /// Parses `a.b.c.d/m` (m < 32) or `x:y::z/m` (m < 128), as event-ruler does.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut parts = text.split('/');
        let (Some(addr), Some(mask), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err("Malformed CIDR, one '/' required".into());
        };
        let bits: u32 = mask
            .parse()
            .map_err(|_| "Malformed CIDR, mask bits must be an integer".to_string())?;
        let (v6, value, width) = parse_ip_strict(addr)?;
        if bits >= width {
            return Err(format!(
                "{} mask bits must be < {width}",
                if v6 { "IPv6" } else { "IPv4" }
            ));
        }
        let host = width - bits;
        let mask = if host >= 128 {
            u128::MAX
        } else {
            (1u128 << host) - 1
        };
        Ok(Self {
            v6,
            lo: value & !mask,
            hi: value | mask,
        })
    }

    pub(crate) fn contains(&self, s: &str) -> bool {
        let Ok(ip) = s.parse::<IpAddr>() else {
            return false;
        };
        let (v6, v) = match ip {
            IpAddr::V4(a) => (false, u128::from(u32::from(a))),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => (false, u128::from(u32::from(v4))),
                None => (true, u128::from(a)),
            },
        };
        v6 == self.v6 && (self.lo..=self.hi).contains(&v)
    }
}

/// Returns (is IPv6, value, bit width).
fn parse_ip_strict(addr: &str) -> Result<(bool, u128, u32), String> {
    let looks_v4 = addr.split('.').count() == 4
        && addr
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if looks_v4 {
        let mut v: u32 = 0;
        for p in addr.split('.') {
            let octet: u32 = p.parse().unwrap_or(256);
            if octet > 255 {
                return Err(format!("Invalid IP address: {addr}"));
            }
            v = (v << 8) | octet;
        }
        return Ok((false, u128::from(v), 32));
    }
    let looks_v6 = addr.contains(':') && addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
    if looks_v6 {
        return match addr.parse::<std::net::Ipv6Addr>() {
            Ok(a) => Ok((true, u128::from(a), 128)),
            Err(_) => Err(format!("Invalid IP address: {addr}")),
        };
    }
    Err(format!("Nonstandard IP address: {addr}"))
}
