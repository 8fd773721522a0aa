//! The data [`Error`](crate::Error)'s variants hold beside names and
//! addresses: what is wrong with a value, why ports cannot be published,
//! what berth does not do, a host port, a process; and the pieces of
//! messages that depend on the data.

use std::fmt;
use std::net::IpAddr;

use berth_core::Proto;
use ipnet::IpNet;

/// A network's or a container's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Object {
    /// A network.
    Network,
    /// A container.
    Container,
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Object::Network => "network",
            Object::Container => "container",
        })
    }
}

/// What is wrong with a hostname ([`Error::BadHostname`](crate::Error::BadHostname)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostnameFault {
    /// Empty or longer than 253 bytes.
    Length,
    /// A label empty or longer than 63 bytes.
    LabelLength(String),
    /// A character other than a letter, digit or `-`.
    Contains(char),
    /// A label that starts or ends with `-`.
    Hyphen(String),
}

impl fmt::Display for HostnameFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostnameFault::Length => f.write_str("it must be 1 to 253 bytes long"),
            HostnameFault::LabelLength(l) => write!(f, "label {l:?} must be 1 to 63 bytes long"),
            HostnameFault::Contains(c) => write!(f, "it contains {c:?}"),
            HostnameFault::Hyphen(l) => write!(f, "label {l:?} starts or ends with '-'"),
        }
    }
}

/// What is wrong with an `--add-host` ([`Error::BadAddHost`](crate::Error::BadAddHost)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddHostFault {
    /// No `:` or `=` in it.
    NoSeparator,
    /// The name is not a host name.
    NotAHostName(String),
    /// The address is not an IP address.
    NotAnAddress(String),
}

impl fmt::Display for AddHostFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddHostFault::NoSeparator => f.write_str("no ':' between the name and the address"),
            AddHostFault::NotAHostName(n) => write!(f, "{n:?} is not a host name"),
            AddHostFault::NotAnAddress(a) => write!(f, "{a:?} is not an IP address"),
        }
    }
}

/// Which special address of a subnet an address is
/// ([`Error::SpecialAddress`](crate::Error::SpecialAddress)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressRole {
    /// The first address.
    Network,
    /// The last IPv4 address.
    Broadcast,
}

impl fmt::Display for AddressRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressRole::Network => "network",
            AddressRole::Broadcast => "broadcast",
        })
    }
}

/// What is wrong with a `-p` or `--expose` ([`Error::BadPublish`](crate::Error::BadPublish),
/// [`Error::BadExpose`](crate::Error::BadExpose)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortFault {
    /// A port number out of 1-65535.
    OutOfRange(u32),
    /// Not a port number.
    NotANumber(String),
    /// An `--expose` port that is not a number from 1 to 65535.
    NotAPort(String),
    /// A `-p` range whose end is before its start.
    Reversed(u16, u16),
    /// An `--expose` range whose end is before its start.
    RangeReversed,
    /// A protocol other than tcp, udp and sctp.
    UnknownProtocol(String),
    /// `[` without `]`.
    NoClosingBracket,
    /// A host address not followed by `:`.
    NoColonAfterAddress,
    /// An IPv6 host address without brackets.
    NeedsBrackets,
    /// A host address that is not an IP address.
    NotAnAddress(String),
    /// No container port.
    NoContainerPort,
    /// Host and container ranges of different lengths.
    RangeLengths {
        /// The host range.
        host: (u16, u16),
        /// The container range.
        container: (u16, u16),
    },
}

impl fmt::Display for PortFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = |(a, b): (u16, u16)| u32::from(b) - u32::from(a) + 1;
        match self {
            PortFault::OutOfRange(p) => write!(f, "port {p} is out of range (1 to 65535)"),
            PortFault::NotANumber(s) => write!(f, "{s:?} is not a port number"),
            PortFault::NotAPort(s) => write!(f, "{s:?} is not a port from 1 to 65535"),
            PortFault::Reversed(a, b) => write!(f, "port range {a}-{b} is reversed"),
            PortFault::RangeReversed => f.write_str("the range is reversed"),
            PortFault::UnknownProtocol(p) => write!(f, "unknown protocol {p:?} (known: tcp, udp, sctp)"),
            PortFault::NoClosingBracket => f.write_str("an IPv6 host address needs its closing ']'"),
            PortFault::NoColonAfterAddress => f.write_str("a host address must be followed by ':'"),
            PortFault::NeedsBrackets => f.write_str("write an IPv6 host address in brackets, [::1]:8080:80"),
            PortFault::NotAnAddress(ip) => write!(f, "{ip:?} is not an IP address"),
            PortFault::NoContainerPort => f.write_str("no container port"),
            PortFault::RangeLengths { host, container } => write!(
                f,
                "the host range {}-{} has {} ports but the container range {}-{} has {}",
                host.0,
                host.1,
                len(*host),
                container.0,
                container.1,
                len(*container)
            ),
        }
    }
}

/// Why ports cannot be published on a network ([`Error::CannotPublish`](crate::Error::CannotPublish)),
/// from what its driver says `-p` does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoPublish {
    /// An `--internal` network.
    Internal {
        /// The network's name.
        network: String,
    },
    /// `--network host`.
    HostNetwork,
    /// `--network none`.
    NoInterface,
    /// A network whose containers have their own address on a parent
    /// link.
    OwnAddress {
        /// The network's name.
        network: String,
        /// Its driver.
        driver: String,
    },
    /// A driver that does not publish ports.
    Unsupported {
        /// The network's name.
        network: String,
        /// Its driver.
        driver: String,
    },
}

impl fmt::Display for NoPublish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoPublish::Internal { network } => write!(
                f,
                "network {network} is --internal: nothing outside it may reach its containers"
            ),
            NoPublish::HostNetwork => f.write_str(
                "with --network host the container shares the host's ports: a process listening in it is reachable as it is",
            ),
            NoPublish::NoInterface => {
                f.write_str("with --network none the container has no interface to forward ports to")
            }
            NoPublish::OwnAddress { network, driver } => write!(
                f,
                "containers on network {network} (driver {driver}) have their own address on the parent link: reach them there, there is no host port to forward"
            ),
            NoPublish::Unsupported { network, driver } => write!(
                f,
                "network {network} uses driver {driver}; ports can be published on bridge networks only"
            ),
        }
    }
}

/// What a Docker client may ask for and berth does not do
/// ([`Error::Unsupported`](crate::Error::Unsupported)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unsupported {
    /// `--ingress`.
    Ingress,
    /// `--config-only`.
    ConfigOnly,
    /// `--config-from NETWORK`.
    ConfigFrom(String),
    /// `--ipv4=false`.
    NoIpv4,
    /// A scope other than `local` or `global`.
    Scope(String),
    /// `--ipam-opt`.
    IpamOptions,
    /// `--link` on `network connect`.
    ConnectLinks,
    /// `--driver-opt` on `network connect`.
    ConnectDriverOptions,
    /// `--link-local-ip`.
    LinkLocalAddresses,
    /// A container created from an image.
    Image(String),
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsupported::Ingress => f.write_str(
                "ingress networks need swarm mode, which berth does not have (--ingress is not supported)",
            ),
            Unsupported::ConfigOnly => f.write_str("config-only networks are not supported (--config-only)"),
            Unsupported::ConfigFrom(n) => write!(
                f,
                "--config-from {n} is not supported: give the network's options directly"
            ),
            Unsupported::NoIpv4 => f.write_str(
                "networks without IPv4 are not supported (--ipv4=false): berth networks always have IPv4",
            ),
            Unsupported::Scope(s) => write!(f, "invalid scope {s:?} (accepted: local, global; berth has no swarm)"),
            Unsupported::IpamOptions => f.write_str("IPAM driver options are not supported (--ipam-opt)"),
            Unsupported::ConnectLinks => f.write_str(
                "--link on network connect is not supported: links are given at berth run (--alias gives another name)",
            ),
            Unsupported::ConnectDriverOptions => {
                f.write_str("driver options on network connect are not supported (--driver-opt)")
            }
            Unsupported::LinkLocalAddresses => {
                f.write_str("link-local addresses are not supported (--link-local-ip)")
            }
            Unsupported::Image(i) => write!(
                f,
                "berth runs no images (asked for {i:?}): a container runs a host command, started with berth run -- CMD"
            ),
        }
    }
}

/// A host port as `docker ps` shows it: `0.0.0.0:8080/tcp`,
/// `[::]:8080/tcp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostPort {
    /// The host address.
    pub ip: IpAddr,
    /// The port.
    pub port: u16,
    /// The protocol.
    pub proto: Proto,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            IpAddr::V4(a) => write!(f, "{a}:{}/{}", self.port, self.proto.as_str()),
            IpAddr::V6(a) => write!(f, "[{a}]:{}/{}", self.port, self.proto.as_str()),
        }
    }
}

/// A process on the host, as [`Error::PortHeld`](crate::Error::PortHeld) names it: `pid 42 (nc)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    /// Its pid.
    pub pid: u32,
    /// Its command name (`/proc/PID/comm`).
    pub comm: String,
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} ({})", self.pid, self.comm)
    }
}

/// " by container NAME" or nothing.
pub(super) struct By<'a>(pub(super) Option<&'a str>);

impl fmt::Display for By<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(c) => write!(f, " by container {c}"),
            None => Ok(()),
        }
    }
}

/// " (pid PID)" or nothing.
pub(super) struct Pid<'a>(pub(super) Option<&'a str>);

impl fmt::Display for Pid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(p) => write!(f, " (pid {p})"),
            None => Ok(()),
        }
    }
}

/// ": pid PID (COMM)" or nothing.
pub(super) struct Holder<'a>(pub(super) Option<&'a Process>);

impl fmt::Display for Holder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(p) => write!(f, ": {p}"),
            None => Ok(()),
        }
    }
}

/// "container a is attached", "containers a, b are attached".
pub(super) struct Attached<'a>(pub(super) &'a [String]);

impl fmt::Display for Attached<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [one] => write!(f, "container {one} is attached"),
            many => write!(f, "containers {} are attached", many.join(", ")),
        }
    }
}

/// "any subnet: give --subnet too" or "any --subnet (A, B)".
pub(super) struct AnySubnet<'a>(pub(super) &'a [IpNet]);

impl fmt::Display for AnySubnet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("any subnet: give --subnet too")
        } else {
            write!(f, "any --subnet ({})", Joined(self.0))
        }
    }
}

/// Subnets joined by ", ".
pub(super) struct Joined<'a>(pub(super) &'a [IpNet]);

impl fmt::Display for Joined<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{s}")?;
        }
        Ok(())
    }
}

/// "FIELD: " or nothing.
pub(super) struct Field<'a>(pub(super) Option<&'a str>);

impl fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(p) => write!(f, "{p}: "),
            None => Ok(()),
        }
    }
}

/// The message of [`Error::WrongFamily`](crate::Error::WrongFamily), from the address given.
pub(super) struct WrongFamily(pub(super) IpAddr);

impl fmt::Display for WrongFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V6(ip) => write!(f, "--ip {ip} is not an IPv4 address (use --ip6)"),
            IpAddr::V4(ip) => write!(f, "--ip6 {ip} is not an IPv6 address (use --ip)"),
        }
    }
}
