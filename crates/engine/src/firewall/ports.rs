//! Published ports (`-p`, `-P`, `--expose`), as `docker run` takes them:
//! parsing, the choice of free host ports, and conflicts with other
//! containers and with the host's own processes.
//!
//! A binding is checked against every other container's bindings (same
//! protocol and family, overlapping ports, the same host address or either
//! one the wildcard) and against the host: berth binds a socket to each host
//! port in the daemon's namespace, the way Docker reserves a port, and
//! refuses one that a process holds, naming it. The socket is closed again;
//! from then on the DNAT maps take the traffic before any local listener.

use std::collections::HashSet;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use berth_core::{FwPort, Proto};

use crate::store::model::{ContainerRecord, PortBinding};
use crate::{Error, HostPort, PortFault, Process, Result};

/// One `-p` as given: `[HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/PROTO]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSpec {
    /// The host address; every address when `None`.
    pub host_ip: Option<IpAddr>,
    /// Host ports; a free ephemeral one (or block) when `None`.
    pub host: Option<(u16, u16)>,
    /// Container ports.
    pub container: (u16, u16),
    /// The protocol.
    pub proto: Proto,
}

fn bad(spec: &str, fault: PortFault) -> Error {
    Error::BadPublish {
        spec: spec.to_owned(),
        fault,
    }
}

fn port(spec: &str, s: &str) -> Result<u16> {
    match s.parse::<u32>() {
        Ok(p @ 1..=65535) => Ok(p as u16),
        Ok(p) => Err(bad(spec, PortFault::OutOfRange(p))),
        Err(_) => Err(bad(spec, PortFault::NotANumber(s.to_owned()))),
    }
}

fn range(spec: &str, s: &str) -> Result<(u16, u16)> {
    match s.split_once('-') {
        None => port(spec, s).map(|p| (p, p)),
        Some((a, b)) => {
            let (a, b) = (port(spec, a)?, port(spec, b)?);
            if b < a {
                return Err(bad(spec, PortFault::Reversed(a, b)));
            }
            Ok((a, b))
        }
    }
}

/// Parses a protocol name.
pub fn proto(spec: &str, s: &str) -> Result<Proto> {
    match s.to_ascii_lowercase().as_str() {
        "tcp" => Ok(Proto::Tcp),
        "udp" => Ok(Proto::Udp),
        "sctp" => Ok(Proto::Sctp),
        other => Err(bad(spec, PortFault::UnknownProtocol(other.to_owned()))),
    }
}

fn len((a, b): (u16, u16)) -> u32 {
    u32::from(b) - u32::from(a) + 1
}

/// Parses one `-p`.
pub fn parse(spec: &str) -> Result<PortSpec> {
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, proto(spec, p)?),
        None => (spec, Proto::Tcp),
    };
    let (ip, rest) = if let Some(v6) = rest.strip_prefix('[') {
        let (ip, after) = v6
            .split_once(']')
            .ok_or_else(|| bad(spec, PortFault::NoClosingBracket))?;
        let after = after
            .strip_prefix(':')
            .ok_or_else(|| bad(spec, PortFault::NoColonAfterAddress))?;
        (Some(ip), after)
    } else {
        match rest.matches(':').count() {
            0 | 1 => (None, rest),
            2 => {
                let (ip, after) = rest.split_once(':').unwrap_or_default();
                (Some(ip), after)
            }
            _ => return Err(bad(spec, PortFault::NeedsBrackets)),
        }
    };
    let host_ip = match ip {
        None | Some("") => None,
        Some(ip) => Some(
            ip.parse::<IpAddr>()
                .map_err(|_| bad(spec, PortFault::NotAnAddress(ip.to_owned())))?,
        ),
    };
    let (host, container) = match rest.split_once(':') {
        Some(("", c)) => (None, c),
        Some((h, c)) => (Some(h), c),
        None => (None, rest),
    };
    if container.is_empty() {
        return Err(bad(spec, PortFault::NoContainerPort));
    }
    let container = range(spec, container)?;
    let host = host.map(|h| range(spec, h)).transpose()?;
    if let Some(h) = host
        && len(h) != len(container)
        && len(container) != 1
    {
        return Err(bad(spec, PortFault::RangeLengths { host: h, container }));
    }
    Ok(PortSpec {
        host_ip,
        host,
        container,
        proto,
    })
}

/// Parses one `--expose PORT[-END][/PROTO]`.
pub fn parse_expose(s: &str) -> Result<((u16, u16), Proto)> {
    let bad = |fault| Error::BadExpose {
        spec: s.to_owned(),
        fault,
    };
    let (ports, p) = match s.rsplit_once('/') {
        Some((r, p)) => (
            r,
            proto(s, p).map_err(|_| bad(PortFault::UnknownProtocol(p.to_owned())))?,
        ),
        None => (s, Proto::Tcp),
    };
    let one = |x: &str| match x.parse::<u32>() {
        Ok(n @ 1..=65535) => Ok(n as u16),
        _ => Err(bad(PortFault::NotAPort(x.to_owned()))),
    };
    let r = match ports.split_once('-') {
        None => (one(ports)?, one(ports)?),
        Some((a, b)) => (one(a)?, one(b)?),
    };
    if r.1 < r.0 {
        return Err(bad(PortFault::RangeReversed));
    }
    Ok((r, p))
}

/// The process that holds a `tcp`/`udp` port, found through the socket's
/// inode in `/proc/net/*` and the fds in `/proc/*/fd`. Both families are
/// looked at, the probed one first: a dual-stack bind on `[::]` is refused
/// by an IPv4-only listener on `0.0.0.0` too (busybox `nc -l`).
fn holder(proto: Proto, v6: bool, port: u16) -> Option<Process> {
    let files = match proto {
        Proto::Tcp => ["/proc/net/tcp", "/proc/net/tcp6"],
        Proto::Udp => ["/proc/net/udp", "/proc/net/udp6"],
        Proto::Sctp => return None,
    };
    let order = if v6 { [files[1], files[0]] } else { files };
    order.iter().find_map(|f| holder_in(f, port))
}

/// The process holding `port` among the sockets of one `/proc/net` table.
fn holder_in(file: &str, port: u16) -> Option<Process> {
    let table = fs::read_to_string(file).ok()?;
    let inode = table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let local_port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
        (local_port == port)
            .then(|| f.get(9).map(|s| s.to_string()))
            .flatten()
    })?;
    let want = format!("socket:[{inode}]");
    for e in fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = fs::read_dir(e.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy() == want) {
                let comm = fs::read_to_string(e.path().join("comm")).unwrap_or_default();
                return Some(Process {
                    pid,
                    comm: comm.trim().to_owned(),
                });
            }
        }
    }
    None
}

/// Why `ip:port` cannot be bound in the daemon's namespace, or `None`
/// when it can.
fn probe(ip: IpAddr, proto: Proto, port: u16) -> Option<Error> {
    let addr = SocketAddr::new(ip, port);
    // Bound and closed at once. SCTP is not checked: std has no SCTP
    // sockets, and most hosts have no SCTP listeners.
    let bound = match proto {
        Proto::Tcp => std::net::TcpListener::bind(addr).map(drop),
        Proto::Udp => std::net::UdpSocket::bind(addr).map(drop),
        Proto::Sctp => Ok(()),
    };
    match bound {
        Ok(()) => None,
        Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => Some(Error::PortHeld {
            port: HostPort { ip, port, proto },
            holder: holder(proto, ip.is_ipv6(), port),
        }),
        Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Some(Error::NotAHostAddress { ip }),
        Err(e) => Some(Error::io(
            format!("binding {} to check it is free", HostPort { ip, port, proto }),
            e,
        )),
    }
}

/// Whether two bindings want some of the same host ports.
pub fn overlaps(a: &PortBinding, b: &PortBinding) -> bool {
    a.proto == b.proto
        && a.host_ip.is_ipv6() == b.host_ip.is_ipv6()
        && (a.host_ip == b.host_ip || a.host_ip.is_unspecified() || b.host_ip.is_unspecified())
        && a.host_port <= b.host_end
        && b.host_port <= a.host_end
}

/// The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`) of
/// the daemon's namespace.
fn ephemeral() -> (u16, u16) {
    let s = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut it = s.split_whitespace().filter_map(|p| p.parse::<u16>().ok());
    match (it.next(), it.next()) {
        (Some(a), Some(b)) if a <= b => (a, b),
        _ => (32768, 60999),
    }
}

/// Host ports in use by containers, by protocol and port: the host
/// address and the container's name. Ranges have an entry per port, so a
/// check costs the same however many containers publish ports.
#[derive(Default)]
pub struct PortIndex(std::collections::HashMap<(Proto, u16), Vec<(IpAddr, String)>>);

impl PortIndex {
    /// Records `owner`'s bindings.
    pub fn add(&mut self, owner: &str, bindings: &[PortBinding]) {
        for b in bindings {
            for p in b.host_port..=b.host_end {
                self.0
                    .entry((b.proto, p))
                    .or_default()
                    .push((b.host_ip, owner.to_owned()));
            }
        }
    }

    /// Forgets `owner`'s bindings.
    pub fn remove(&mut self, owner: &str, bindings: &[PortBinding]) {
        for b in bindings {
            for p in b.host_port..=b.host_end {
                if let Some(v) = self.0.get_mut(&(b.proto, p)) {
                    v.retain(|(ip, o)| !(o == owner && *ip == b.host_ip));
                    if v.is_empty() {
                        self.0.remove(&(b.proto, p));
                    }
                }
            }
        }
    }

    /// Who publishes some of `b`'s host ports, if anyone.
    pub fn holder(&self, b: &PortBinding) -> Option<(&str, u16)> {
        (b.host_port..=b.host_end).find_map(|p| {
            self.0.get(&(b.proto, p))?.iter().find_map(|(ip, o)| {
                (ip.is_ipv6() == b.host_ip.is_ipv6()
                    && (*ip == b.host_ip || ip.is_unspecified() || b.host_ip.is_unspecified()))
                .then_some((o.as_str(), p))
            })
        })
    }
}

/// Turns the specs of a new container into bindings: chooses host ports
/// where none were given, and checks every binding against `taken`
/// (other containers' bindings) and the host. `v6` says whether the
/// network has IPv6: a spec without a host address then publishes on
/// `0.0.0.0` and `::` alike, on the same port.
pub fn allocate(specs: &[PortSpec], v6: bool, taken: &PortIndex) -> Result<Vec<PortBinding>> {
    let mut out: Vec<PortBinding> = Vec::new();
    let (lo, hi) = ephemeral();
    let conflict = |b: &PortBinding, out: &[PortBinding]| -> Option<Error> {
        if let Some((who, p)) = taken.holder(b) {
            return Some(Error::PortPublished {
                port: HostPort {
                    ip: b.host_ip,
                    port: p,
                    proto: b.proto,
                },
                container: who.to_owned(),
            });
        }
        if out.iter().any(|o| overlaps(o, b)) {
            return Some(Error::PortPublishedTwice {
                port: HostPort {
                    ip: b.host_ip,
                    port: b.host_port,
                    proto: b.proto,
                },
            });
        }
        None
    };
    for spec in specs {
        let ips: Vec<IpAddr> = match spec.host_ip {
            Some(ip) => vec![ip],
            None if v6 => vec![
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            ],
            None => vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)],
        };
        let n = len(spec.container) as u16;
        let make = |ip: IpAddr, start: u16| PortBinding {
            proto: spec.proto,
            host_ip: ip,
            host_port: start,
            host_end: start + (n - 1),
            container_port: spec.container.0,
        };
        // Where to look: the given port (or range: any block of n in it),
        // else the ephemeral range.
        let (first, last, fixed) = match spec.host {
            Some((a, b)) if len((a, b)) == u32::from(n) => (a, a, true),
            Some((a, b)) => (a, b.saturating_sub(n - 1), false),
            None => (lo, hi.saturating_sub(n - 1), false),
        };
        let mut chosen = None;
        let mut last_err = None;
        for start in first..=last {
            let try_all = || -> Option<Error> {
                for &ip in &ips {
                    let b = make(ip, start);
                    if let Some(e) = conflict(&b, &out) {
                        return Some(e);
                    }
                }
                for &ip in &ips {
                    for p in start..=start + (n - 1) {
                        if let Some(e) = probe(ip, spec.proto, p) {
                            return Some(e);
                        }
                    }
                }
                None
            };
            match try_all() {
                None => {
                    chosen = Some(start);
                    break;
                }
                Some(e @ Error::NotAHostAddress { .. }) => return Err(e),
                Some(e) if fixed => return Err(e),
                Some(e) => last_err = Some(e),
            }
        }
        let Some(start) = chosen else {
            return Err(match spec.host {
                None => Error::NoEphemeralPorts {
                    count: n,
                    first: lo,
                    last: hi,
                },
                Some((first, last)) => Error::NoFreePort {
                    first,
                    last,
                    last_refusal: last_err.map(Box::new),
                },
            });
        };
        for &ip in &ips {
            out.push(make(ip, start));
        }
    }
    Ok(out)
}

/// Expands `-P`: every exposed port not already published gets an
/// ephemeral host port.
pub fn publish_all(exposed: &[((u16, u16), Proto)], specs: &mut Vec<PortSpec>) {
    let mut have: HashSet<(u16, Proto)> = HashSet::new();
    for s in specs.iter() {
        for p in s.container.0..=s.container.1 {
            have.insert((p, s.proto));
        }
    }
    for &((a, b), proto) in exposed {
        for p in a..=b {
            if have.insert((p, proto)) {
                specs.push(PortSpec {
                    host_ip: None,
                    host: None,
                    container: (p, p),
                    proto,
                });
            }
        }
    }
}

/// The firewall's view of a container's bindings: each to the container's
/// address of the binding's family on the network it publishes on.
pub fn fw_ports(c: &ContainerRecord) -> Vec<FwPort> {
    let Some(ep) = c.endpoint(&c.ports_network) else {
        return Vec::new();
    };
    c.ports
        .iter()
        .filter_map(|b| {
            let addr = if b.host_ip.is_ipv6() { ep.ipv6() } else { ep.ipv4() }?.addr();
            Some(FwPort {
                host_ip: b.host_ip,
                proto: b.proto,
                host_port: b.host_port,
                host_end: b.host_end,
                addr,
                port: b.container_port,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PortSpec {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_docker_forms() {
        assert_eq!(p("80").container, (80, 80));
        assert_eq!(p("80").host, None);
        assert_eq!(p("8080:80").host, Some((8080, 8080)));
        assert_eq!(p("8080:80/udp").proto, Proto::Udp);
        assert_eq!(p("127.0.0.1:8080:80").host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(p("127.0.0.1::80").host, None);
        assert_eq!(p("[::1]:8080:80").host_ip, Some("::1".parse().unwrap()));
        assert_eq!(p("8000-8009:9000-9009/sctp").container, (9000, 9009));
        assert_eq!(p("8000-8009:80").host, Some((8000, 8009)));
    }

    #[test]
    fn refuses_bad_specs_with_a_reason() {
        for (s, want) in [
            ("0:80", "out of range"),
            ("70000:80", "out of range"),
            ("90-80:90-80", "reversed"),
            (
                "8000-8005:80-90",
                "has 6 ports but the container range 80-90 has 11",
            ),
            ("80/icmp", "unknown protocol"),
            ("x:80", "not a port"),
            ("1.2.3:80:80", "not an IP address"),
            ("8080:", "no container port"),
        ] {
            let e = parse(s).unwrap_err().to_string();
            assert!(e.contains(want), "{s}: {e}");
        }
    }

    #[test]
    fn overlap_follows_address_family_and_wildcards() {
        let b = |ip: &str, a: u16, e: u16| PortBinding {
            proto: Proto::Tcp,
            host_ip: ip.parse().unwrap(),
            host_port: a,
            host_end: e,
            container_port: 80,
        };
        assert!(overlaps(&b("0.0.0.0", 80, 80), &b("10.0.0.1", 80, 80)));
        assert!(overlaps(&b("10.0.0.1", 70, 90), &b("10.0.0.1", 80, 80)));
        assert!(!overlaps(&b("10.0.0.1", 80, 80), &b("10.0.0.2", 80, 80)));
        assert!(!overlaps(&b("0.0.0.0", 80, 80), &b("::", 80, 80)));
        assert!(!overlaps(&b("0.0.0.0", 80, 89), &b("0.0.0.0", 90, 99)));
    }

    #[test]
    fn expose_parses_ranges_and_protocols() {
        assert_eq!(parse_expose("80").unwrap(), ((80, 80), Proto::Tcp));
        assert_eq!(parse_expose("53/udp").unwrap(), ((53, 53), Proto::Udp));
        assert!(parse_expose("0").is_err());
    }
}
