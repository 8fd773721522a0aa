//! Checking what a Docker plugin answers, as Docker's engine does: the
//! HTTP status and JSON of every call, and the `Join` and `CreateEndpoint`
//! answers that tell the engine what to do in the sandbox.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use berth_core::{IfName, Mac, Result, Scope};
use berth_plugin::protocol::{CapabilitiesResponse, EndpointInterface, ErrorResponse, JoinResponse};
use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::plugins::one_line;

/// `Plugin.Activate` answer: the subsystems a plugin implements.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ActivateResponse {
    /// `NetworkDriver`, `IpamDriver`, `VolumeDriver`, …
    #[serde(default)]
    pub implements: Vec<String>,
}

/// A plugin's answer that is not the one asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseError {
    /// HTTP 404: the plugin does not have the method.
    NotImplemented,
    /// The plugin said no: `{"Err": "…"}` (one line of it).
    Refused(String),
    /// Another status than 200, without an `Err`.
    Status(u16, String),
    /// A 200 with nothing in it.
    Empty,
    /// Not JSON, or not the shape of the answer.
    Invalid(String),
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotImplemented => f.write_str("the plugin does not implement it (HTTP 404)"),
            Self::Refused(e) => write!(f, "the plugin said: {e}"),
            Self::Status(s, body) if body.is_empty() => write!(f, "the plugin answered HTTP {s}"),
            Self::Status(s, body) => write!(f, "the plugin answered HTTP {s}: {body}"),
            Self::Empty => f.write_str("the plugin's answer is empty"),
            Self::Invalid(why) => write!(f, "the plugin's answer is not valid: {why}"),
        }
    }
}

/// Decodes a plugin's HTTP answer as Docker's plugin client does: 404 is
/// [`ResponseError::NotImplemented`]; any other status than 200 is an
/// error, with the `Err` of its body if it has one; a 200 must be a JSON
/// object, and a non-empty `Err` in it is a refusal. Bytes from a plugin:
/// it never panics, and its errors print as one line.
pub fn decode_response<T: DeserializeOwned>(status: u16, body: &[u8]) -> Result<T, ResponseError> {
    if status == 404 {
        return Err(ResponseError::NotImplemented);
    }
    if status != 200 {
        if let Ok(e) = serde_json::from_slice::<ErrorResponse>(body)
            && !e.err.trim().is_empty()
        {
            return Err(ResponseError::Refused(one_line(&e.err)));
        }
        return Err(ResponseError::Status(
            status,
            one_line(&String::from_utf8_lossy(body)),
        ));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ResponseError::Empty);
    }
    let v: Value =
        serde_json::from_slice(body).map_err(|e| ResponseError::Invalid(one_line(&e.to_string())))?;
    let Value::Object(obj) = &v else {
        return Err(ResponseError::Invalid("expected a JSON object".into()));
    };
    match obj.get("Err") {
        None | Some(Value::Null) => {}
        Some(Value::String(e)) if e.trim().is_empty() => {}
        Some(Value::String(e)) => return Err(ResponseError::Refused(one_line(e))),
        Some(_) => return Err(ResponseError::Invalid("Err is not a string".into())),
    }
    serde_json::from_value(v).map_err(|e| ResponseError::Invalid(one_line(&e.to_string())))
}

/// What is wrong with an answer that decoded: a value in it the engine
/// cannot use. The plugin's values are kept made fit for one line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadAnswer {
    /// `GetCapabilities`' scope.
    #[error("invalid capability: Scope is {0:?} (accepted: local, global)")]
    Scope(String),
    /// `Join`'s `InterfaceName.SrcName`, not an interface name.
    #[error("InterfaceName.SrcName {name:?}: {why}")]
    SrcName {
        /// The name.
        name: String,
        /// What is wrong with it.
        why: berth_core::BadIfName,
    },
    /// `Join`'s `InterfaceName.DstPrefix`, not a prefix of names.
    #[error("InterfaceName.DstPrefix {0:?} is not a usable interface name prefix (letters, at most 12)")]
    DstPrefix(String),
    /// `Join`'s `Gateway`.
    #[error("unable to parse Gateway {0:?} (an IPv4 address)")]
    Gateway(String),
    /// `Join`'s `GatewayIPv6`.
    #[error("unable to parse GatewayIPv6 {0:?} (an IPv6 address)")]
    GatewayIpv6(String),
    /// A static route's destination.
    #[error("static route Destination {0:?} is not a CIDR")]
    RouteDestination(String),
    /// A static route's next hop.
    #[error("failed to parse next hop {0:?} of a static route")]
    NextHop(String),
    /// A static route whose next hop is of the other family.
    #[error("static route to {destination} via {hop}: the families differ")]
    RouteFamilies {
        /// The destination.
        destination: IpNet,
        /// The next hop.
        hop: IpAddr,
    },
    /// A static route of a type Docker does not have.
    #[error("static route to {destination}: unknown RouteType {kind} (accepted: 0, 1)")]
    RouteType {
        /// The destination.
        destination: IpNet,
        /// The type.
        kind: u8,
    },
    /// `CreateEndpoint`'s `Interface.Address` or `AddressIPv6`, not an
    /// address with a prefix length.
    #[error("Interface.{what} {value:?} is not an address with a prefix length")]
    Address {
        /// `Address` or `AddressIPv6`.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// An address of the other family.
    #[error("Interface.{what} {address} is of the wrong family")]
    Family {
        /// `Address` or `AddressIPv6`.
        what: &'static str,
        /// The address.
        address: IpNet,
    },
    /// An address the engine chose, changed.
    #[error("the plugin changed the interface's {what} from {ours} to {theirs}")]
    Changed {
        /// `Address` or `AddressIPv6`.
        what: &'static str,
        /// The engine's.
        ours: String,
        /// The plugin's.
        theirs: IpNet,
    },
    /// `Interface.MacAddress`, not a unicast MAC address.
    #[error("Interface.MacAddress {0:?} is not a MAC address")]
    Mac(String),
}

/// The scope a plugin states in its `GetCapabilities` answer.
pub fn parse_scope(caps: &CapabilitiesResponse) -> Result<Scope, BadAnswer> {
    match caps.scope.as_str() {
        "local" => Ok(Scope::Local),
        "global" => Ok(Scope::Global),
        other => Err(BadAnswer::Scope(one_line(other))),
    }
}

/// A route a plugin wants in the sandbox, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticRoute {
    /// The destination prefix.
    pub destination: IpNet,
    /// The next hop; `None` for a connected (on-link) route.
    pub via: Option<IpAddr>,
}

/// A `Join` answer, checked: what the engine does in the sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
    /// The interface to move in: its name in the host and the prefix of
    /// its name in the sandbox. `None` when the plugin wired the sandbox
    /// itself (through `SandboxKey`).
    pub interface: Option<(IfName, String)>,
    /// The IPv4 gateway the plugin chose.
    pub gateway: Option<Ipv4Addr>,
    /// The IPv6 gateway the plugin chose.
    pub gateway_v6: Option<Ipv6Addr>,
    /// Extra routes.
    pub routes: Vec<StaticRoute>,
    /// No default route through this network.
    pub disable_gateway_service: bool,
}

impl Joined {
    /// Checks a `Join` answer as Docker does: the interface names, the
    /// gateways (plain addresses of their family) and the static routes.
    pub fn parse(r: &JoinResponse) -> Result<Self, BadAnswer> {
        let interface = match &r.interface_name {
            None => None,
            Some(i) => {
                let src = IfName::check(&i.src_name).map_err(|why| BadAnswer::SrcName {
                    name: one_line(&i.src_name),
                    why,
                })?;
                let prefix = &i.dst_prefix;
                if prefix.len() > 12
                    || !prefix
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    || prefix.ends_with(|c: char| c.is_ascii_digit())
                {
                    return Err(BadAnswer::DstPrefix(one_line(prefix)));
                }
                Some((src, prefix.clone()))
            }
        };
        let gateway = match r.gateway.as_str() {
            "" => None,
            g => Some(
                g.parse::<Ipv4Addr>()
                    .map_err(|_| BadAnswer::Gateway(one_line(g)))?,
            ),
        };
        let gateway_v6 = match r.gateway_ipv6.as_str() {
            "" => None,
            g => Some(
                g.parse::<Ipv6Addr>()
                    .map_err(|_| BadAnswer::GatewayIpv6(one_line(g)))?,
            ),
        };
        let mut routes = Vec::new();
        for r in &r.static_routes {
            let destination: IpNet = r
                .destination
                .parse()
                .map_err(|_| BadAnswer::RouteDestination(one_line(&r.destination)))?;
            let via = match (r.route_type, r.next_hop.as_str()) {
                // Docker's types.NEXTHOP and types.CONNECTED.
                (0, "") | (1, _) => None,
                (0, hop) => {
                    let hop: IpAddr = hop.parse().map_err(|_| BadAnswer::NextHop(one_line(hop)))?;
                    if hop.is_ipv4() != destination.addr().is_ipv4() {
                        return Err(BadAnswer::RouteFamilies { destination, hop });
                    }
                    Some(hop)
                }
                (t, _) => {
                    return Err(BadAnswer::RouteType { destination, kind: t });
                }
            };
            routes.push(StaticRoute {
                destination: destination.trunc(),
                via,
            });
        }
        Ok(Self {
            interface,
            gateway,
            gateway_v6,
            routes,
            disable_gateway_service: r.disable_gateway_service,
        })
    }
}

/// What a `CreateEndpoint` answer adds to what the engine sent: the
/// plugin may fill in values the request left empty, not change the
/// addresses the engine's IPAM chose.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chosen {
    /// Addresses the plugin added (of a family the engine gave none of).
    pub addresses: Vec<IpNet>,
    /// The MAC the plugin chose.
    pub mac: Option<Mac>,
}

/// Checks a `CreateEndpoint` answer against the request's interface.
pub fn check_endpoint(
    sent: &EndpointInterface,
    got: Option<&EndpointInterface>,
) -> Result<Chosen, BadAnswer> {
    let mut chosen = Chosen::default();
    let Some(got) = got else { return Ok(chosen) };
    for (what, ours, theirs, v6) in [
        ("Address", &sent.address, &got.address, false),
        ("AddressIPv6", &sent.address_ipv6, &got.address_ipv6, true),
    ] {
        if theirs.is_empty() {
            continue;
        }
        let theirs: IpNet = theirs.parse().map_err(|_| BadAnswer::Address {
            what,
            value: one_line(theirs),
        })?;
        if theirs.addr().is_ipv6() != v6 {
            return Err(BadAnswer::Family {
                what,
                address: theirs,
            });
        }
        if ours.is_empty() {
            chosen.addresses.push(theirs);
        } else if ours.parse::<IpNet>().ok() != Some(theirs) {
            return Err(BadAnswer::Changed {
                what,
                ours: ours.clone(),
                theirs,
            });
        }
    }
    if !got.mac_address.is_empty() {
        let mac = got
            .mac_address
            .parse::<Mac>()
            .ok()
            .filter(|m| !m.is_multicast())
            .ok_or_else(|| BadAnswer::Mac(one_line(&got.mac_address)))?;
        chosen.mac = Some(mac);
    }
    Ok(chosen)
}

/// The name of the plugin's interface in the sandbox: `DstPrefix` and the
/// number of the engine's name for the endpoint (`eth1` → `PREFIX1`).
pub(super) fn sandbox_name(prefix: &str, ifname: &IfName) -> Result<IfName> {
    if prefix.is_empty() || prefix == "eth" {
        return Ok(ifname.clone());
    }
    let n = ifname.as_str().trim_start_matches(|c: char| !c.is_ascii_digit());
    IfName::new(&format!("{prefix}{n}"))
}

#[cfg(test)]
mod tests {
    use berth_plugin::protocol::{CreateEndpointResponse, InterfaceName, StaticRoute as RouteIn};
    use rand::{Rng, SeedableRng};

    use super::super::http::parse_response;
    use super::*;

    #[test]
    fn answers_decode_as_docker_reads_them() {
        let ok: ErrorResponse = decode_response(200, b"{}").unwrap();
        assert!(ok.err.is_empty());
        assert_eq!(
            decode_response::<ErrorResponse>(404, b"404 page not found"),
            Err(ResponseError::NotImplemented)
        );
        assert_eq!(
            decode_response::<ErrorResponse>(200, br#"{"Err":"no\nway"}"#),
            Err(ResponseError::Refused("no way".into()))
        );
        assert_eq!(
            decode_response::<ErrorResponse>(500, br#"{"Err":"boom"}"#),
            Err(ResponseError::Refused("boom".into()))
        );
        assert_eq!(
            decode_response::<ErrorResponse>(500, b"oops"),
            Err(ResponseError::Status(500, "oops".into()))
        );
        assert_eq!(
            decode_response::<ErrorResponse>(200, b"  \n"),
            Err(ResponseError::Empty)
        );
        assert!(matches!(
            decode_response::<ErrorResponse>(200, b"[1]"),
            Err(ResponseError::Invalid(_))
        ));
        assert!(matches!(
            decode_response::<ErrorResponse>(200, b"{\"Err\":3}"),
            Err(ResponseError::Invalid(_))
        ));
        let act: ActivateResponse = decode_response(200, br#"{"Implements":["NetworkDriver"]}"#).unwrap();
        assert_eq!(act.implements, ["NetworkDriver"]);
        let caps: CapabilitiesResponse = decode_response(200, br#"{"Scope":"global"}"#).unwrap();
        assert_eq!(parse_scope(&caps), Ok(Scope::Global));
        assert!(parse_scope(&CapabilitiesResponse::default()).is_err());
    }

    #[test]
    fn join_answers_are_checked() {
        let mut r = JoinResponse {
            interface_name: Some(InterfaceName {
                src_name: "vp1".into(),
                dst_prefix: "eth".into(),
            }),
            gateway: "10.0.0.1".into(),
            static_routes: vec![
                RouteIn {
                    destination: "10.9.0.0/16".into(),
                    route_type: 1,
                    next_hop: String::new(),
                },
                RouteIn {
                    destination: "10.8.0.0/16".into(),
                    route_type: 0,
                    next_hop: "10.0.0.254".into(),
                },
            ],
            ..Default::default()
        };
        let j = Joined::parse(&r).unwrap();
        assert_eq!(j.gateway, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(j.routes[0].via, None);
        assert_eq!(j.routes[1].via, Some("10.0.0.254".parse().unwrap()));
        r.gateway = "10.0.0.1/24".into();
        assert!(Joined::parse(&r).unwrap_err().to_string().contains("Gateway"));
        r.gateway.clear();
        r.static_routes[1].next_hop = "fd00::1".into();
        assert!(Joined::parse(&r).unwrap_err().to_string().contains("families"));
        r.static_routes.clear();
        r.interface_name = Some(InterfaceName {
            src_name: "a/b".into(),
            dst_prefix: "eth".into(),
        });
        assert!(Joined::parse(&r).is_err());
        let eth1 = IfName::new("eth1").unwrap();
        assert_eq!(sandbox_name("eth", &eth1).unwrap().as_str(), "eth1");
        assert_eq!(sandbox_name("ens", &eth1).unwrap().as_str(), "ens1");
    }

    #[test]
    fn endpoint_answers_may_fill_in_not_change() {
        let sent = EndpointInterface {
            address: "10.0.0.2/24".into(),
            address_ipv6: String::new(),
            mac_address: "02:42:0a:00:00:02".into(),
        };
        assert_eq!(check_endpoint(&sent, None), Ok(Chosen::default()));
        let same = sent.clone();
        assert_eq!(check_endpoint(&sent, Some(&same)).unwrap().addresses, []);
        let other = EndpointInterface {
            address: "10.0.0.3/24".into(),
            ..Default::default()
        };
        assert!(
            check_endpoint(&sent, Some(&other))
                .unwrap_err()
                .to_string()
                .contains("changed")
        );
        let v6 = EndpointInterface {
            address_ipv6: "fd00::2/64".into(),
            mac_address: "02:00:00:00:00:01".into(),
            ..Default::default()
        };
        let c = check_endpoint(&sent, Some(&v6)).unwrap();
        assert_eq!(c.addresses, ["fd00::2/64".parse::<IpNet>().unwrap()]);
        assert_eq!(c.mac, Some(Mac([2, 0, 0, 0, 0, 1])));
        let bad = EndpointInterface {
            mac_address: "01:00:00:00:00:01".into(),
            ..Default::default()
        };
        assert!(check_endpoint(&sent, Some(&bad)).is_err(), "a multicast MAC");
    }

    #[test]
    fn one_line_keeps_messages_short_and_flat() {
        assert_eq!(one_line("a\r\n\tb\u{7}c"), "a b c");
        let long = "x".repeat(1000);
        assert_eq!(one_line(&long).chars().count(), crate::plugins::MAX_TEXT + 1);
    }

    /// Valid answers of every method, mangled at random: decoding and
    /// checking never panic, and every error is one line. Seeded and
    /// bounded; `cargo xtask fuzz docker_response` searches further.
    #[test]
    fn mangled_answers_never_panic() {
        let seeds: &[&[u8]] = &[
            br#"{"Implements":["NetworkDriver","IpamDriver"]}"#,
            br#"{"Scope":"local","ConnectivityScope":"global"}"#,
            br#"{"Interface":{"Address":"10.0.0.2/24","AddressIPv6":"fd00::2/64","MacAddress":"02:42:0a:00:00:02"}}"#,
            br#"{"InterfaceName":{"SrcName":"vp1","DstPrefix":"eth"},"Gateway":"10.0.0.1","GatewayIPv6":"fd00::1","StaticRoutes":[{"Destination":"10.9.0.0/16","RouteType":0,"NextHop":"10.0.0.254"}],"DisableGatewayService":false}"#,
            br#"{"Err":"no"}"#,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        ];
        let junk: &[&[u8]] = &[
            b"{", b"}", b"[", b"\"", b"null", b"1e999", b"\\u0000", b"\xff", b":", b",", b"\r\n",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(0xbe27);
        let sent = EndpointInterface {
            address: "10.0.0.2/24".into(),
            ..Default::default()
        };
        for _ in 0..20_000 {
            let mut b = seeds[rng.random_range(0..seeds.len())].to_vec();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..=b.len());
                match rng.random_range(0..4) {
                    0 if !b.is_empty() => {
                        let i = rng.random_range(0..b.len());
                        b[i] = rng.random();
                    }
                    1 => b.truncate(at),
                    2 => {
                        let j = junk[rng.random_range(0..junk.len())];
                        b.splice(at..at, j.iter().copied());
                    }
                    _ => {
                        let end = rng.random_range(at..=b.len());
                        b.drain(at..end);
                    }
                }
            }
            let status = [200, 200, 200, 404, 500][rng.random_range(0..5)];
            let flat = |e: &dyn fmt::Display| assert!(!e.to_string().contains('\n'), "{e}");
            match decode_response::<ActivateResponse>(status, &b) {
                Ok(_) => {}
                Err(e) => flat(&e),
            }
            if let Ok(c) = decode_response::<CapabilitiesResponse>(status, &b)
                && let Err(e) = parse_scope(&c)
            {
                flat(&e);
            }
            if let Ok(r) = decode_response::<CreateEndpointResponse>(status, &b)
                && let Err(e) = check_endpoint(&sent, r.interface.as_ref())
            {
                flat(&e);
            }
            match decode_response::<JoinResponse>(status, &b).map(|r| Joined::parse(&r)) {
                Ok(Err(e)) => flat(&e),
                Err(e) => flat(&e),
                Ok(Ok(_)) => {}
            }
            if let Err(e) = parse_response(&b, true) {
                flat(&e);
            }
        }
    }
}
