//! Which addresses outbound HTTP (rule targets, webhook subscriptions) may
//! reach.
//!
//! A rule's target or a webhook is a URL someone typed into an API; without
//! a policy it could make sluice call the cloud metadata service or sluice's
//! own admin ports. Denied by default: link-local addresses (the metadata
//! services live there), the unspecified and broadcast addresses, the
//! well-known metadata addresses of other clouds, and the calling service's
//! own listen addresses. Operators add their own entries
//! (`SLUICE_TARGETS_DENY`, e.g. the other services' addresses) and may
//! re-allow (`SLUICE_TARGETS_ALLOW`, checked first).
//!
//! An entry is a network (`169.254.0.0/16`, `10.1.2.3`, `fe80::/10`: any
//! port), an address with a port (`127.0.0.1:8080`, `[::1]:8080`), or a host
//! name with or without a port (`sluice-gateway:8080`, `metadata.internal`).
//! A URL is checked when the rule is written (its literal host) and again
//! at every delivery: the name resolves through a resolver that refuses
//! denied networks, so DNS cannot point an accepted name at them later.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;

/// One allow or deny entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A network: every address in it, any port.
    Net(IpNet),
    /// One address and port.
    Socket(SocketAddr),
    /// A host name (lower case), one port or any.
    Host(String, Option<u16>),
}

impl FromStr for Entry {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("empty entry".into());
        }
        if let Ok(net) = t.parse::<IpNet>() {
            return Ok(Self::Net(net));
        }
        if let Ok(ip) = t.parse::<IpAddr>() {
            return Ok(Self::Net(IpNet::from(ip)));
        }
        if let Ok(sa) = t.parse::<SocketAddr>() {
            return Ok(Self::Socket(sa));
        }
        let (host, port) = match t.rsplit_once(':') {
            Some((h, p)) => (
                h,
                Some(
                    p.parse::<u16>()
                        .map_err(|_| format!("{t:?}: the port is not a number"))?,
                ),
            ),
            None => (t, None),
        };
        let valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
        if !valid {
            return Err(format!(
                "{t:?} is not a network, an address with a port, or a host name"
            ));
        }
        Ok(Self::Host(host.to_ascii_lowercase(), port))
    }
}

/// Parses a comma-separated list of entries.
pub fn parse_list(text: &str) -> Result<Vec<Entry>, String> {
    text.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(Entry::from_str)
        .collect()
}

/// Networks denied whatever the configuration adds.
pub const DEFAULT_DENY: &str = "169.254.0.0/16,fe80::/10,0.0.0.0/32,::/128,255.255.255.255/32,\
100.100.100.200/32,fd00:ec2::254/128,metadata.google.internal,metadata";

/// The policy of a service listening on `own`: the defaults, its own
/// addresses (both loopbacks when it listens on all), then `deny`; `allow`
/// is checked first.
pub fn service_policy(own: &[SocketAddr], allow: Vec<Entry>, deny: &[Entry]) -> Policy {
    let mut all = parse_list(DEFAULT_DENY).unwrap_or_default();
    for own in own {
        if own.ip().is_unspecified() {
            for ip in [
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ] {
                all.push(Entry::Socket(SocketAddr::new(ip, own.port())));
            }
        } else {
            all.push(Entry::Socket(*own));
        }
    }
    all.extend(deny.iter().cloned());
    Policy::new(allow, all)
}

/// The policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    allow: Vec<Entry>,
    deny: Vec<Entry>,
}

/// A host as written in a URL.
#[derive(Debug, Clone, Copy)]
pub enum Host<'a> {
    /// A literal address.
    Ip(IpAddr),
    /// A name.
    Name(&'a str),
}

impl Policy {
    /// A policy denying `deny` unless `allow` says otherwise.
    pub fn new(allow: Vec<Entry>, deny: Vec<Entry>) -> Self {
        Self { allow, deny }
    }

    fn matches(list: &[Entry], host: Host<'_>, port: Option<u16>) -> bool {
        list.iter().any(|e| match (e, host) {
            (Entry::Net(net), Host::Ip(ip)) => net.contains(&ip),
            (Entry::Socket(sa), Host::Ip(ip)) => {
                sa.ip() == ip && port.is_none_or(|p| p == sa.port())
            }
            (Entry::Host(h, p), Host::Name(name)) => {
                h.eq_ignore_ascii_case(name.trim_end_matches('.'))
                    && (p.is_none() || port.is_none() || *p == port)
            }
            _ => false,
        })
    }

    /// Why `host:port` (as a URL names it) may not be called, if it may not.
    /// `localhost` counts as the loopback addresses.
    pub fn refuses(&self, host: Host<'_>, port: u16) -> Option<String> {
        let mut candidates = vec![host];
        if let Host::Name(n) = host {
            let n = n.trim_end_matches('.').to_ascii_lowercase();
            if n == "localhost" || n.ends_with(".localhost") {
                candidates.push(Host::Ip(IpAddr::from([127, 0, 0, 1])));
                candidates.push(Host::Ip(IpAddr::from(std::net::Ipv6Addr::LOCALHOST)));
            }
        }
        for h in candidates {
            let h = match h {
                // An IPv4-mapped IPv6 address is the IPv4 address.
                Host::Ip(IpAddr::V6(v6)) => v6
                    .to_ipv4_mapped()
                    .map(|v4| Host::Ip(IpAddr::V4(v4)))
                    .unwrap_or(h),
                other => other,
            };
            if Self::matches(&self.allow, h, Some(port)) {
                continue;
            }
            if Self::matches(&self.deny, h, Some(port)) {
                let what = match h {
                    Host::Ip(ip) => format!("{ip} port {port}"),
                    Host::Name(n) => format!("{n} port {port}"),
                };
                return Some(format!(
                    "{what} is not an allowed target (SLUICE_TARGETS_DENY; SLUICE_TARGETS_ALLOW can allow it)"
                ));
            }
        }
        None
    }

    /// Whether a resolved address may be connected to (any port: the
    /// resolver does not know the port, so only networks count here).
    pub fn refuses_resolved(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            other => other,
        };
        let net_match = |list: &[Entry]| {
            list.iter()
                .any(|e| matches!(e, Entry::Net(net) if net.contains(&ip)))
        };
        !net_match(&self.allow) && net_match(&self.deny)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &str, deny: &str) -> Policy {
        let mut d = parse_list(DEFAULT_DENY).unwrap();
        d.extend(parse_list(deny).unwrap());
        Policy::new(parse_list(allow).unwrap(), d)
    }

    fn ip(s: &str) -> Host<'static> {
        Host::Ip(s.parse().unwrap())
    }

    #[test]
    fn metadata_and_link_local_addresses_are_refused_by_default() {
        let p = policy("", "");
        assert!(p.refuses(ip("169.254.169.254"), 80).is_some());
        assert!(p.refuses(ip("fe80::1"), 80).is_some());
        assert!(p.refuses(ip("::ffff:169.254.169.254"), 80).is_some());
        assert!(p
            .refuses(Host::Name("metadata.google.internal"), 80)
            .is_some());
        assert!(p
            .refuses(Host::Name("Metadata.Google.Internal."), 80)
            .is_some());
        assert!(p.refuses(ip("0.0.0.0"), 80).is_some());
        assert!(p.refuses(ip("127.0.0.1"), 9000).is_none());
        assert!(p.refuses(Host::Name("example.com"), 443).is_none());
        assert!(p.refuses_resolved("169.254.169.254".parse().unwrap()));
        assert!(!p.refuses_resolved("93.184.216.34".parse().unwrap()));
    }

    #[test]
    fn service_ports_are_refused_on_their_port_only() {
        let p = policy("", "127.0.0.1:8080,sluice-gateway:8080");
        assert!(p.refuses(ip("127.0.0.1"), 8080).is_some());
        assert!(p.refuses(Host::Name("localhost"), 8080).is_some());
        assert!(p.refuses(ip("127.0.0.1"), 8081).is_none());
        assert!(p.refuses(Host::Name("sluice-gateway"), 8080).is_some());
        assert!(p.refuses(Host::Name("sluice-gateway"), 9090).is_none());
    }

    #[test]
    fn allow_entries_win() {
        let p = policy("169.254.10.0/24", "");
        assert!(p.refuses(ip("169.254.10.7"), 80).is_none());
        assert!(p.refuses(ip("169.254.169.254"), 80).is_some());
        assert!(!p.refuses_resolved("169.254.10.7".parse().unwrap()));
    }

    #[test]
    fn bad_entries_are_explained() {
        assert!(parse_list("10.0.0.0/8,[::1]:80,host:99").is_ok());
        assert!(parse_list("host:port").unwrap_err().contains("port"));
        assert!(parse_list("a b").is_err());
    }
}
