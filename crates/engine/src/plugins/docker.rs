//! Docker network plugins: Docker's remote network-driver protocol
//! (HTTP+JSON on a unix socket), so that existing Docker network plugins
//! work as berth drivers.
//!
//! Discovery follows Docker's: sockets `NAME.sock` (or `NAME/NAME.sock`) in
//! the socket directories (`/run/docker/plugins`), then `NAME.spec` (a URL)
//! and `NAME.json` (`{"Name": …, "Addr": …}`) files, or the same under
//! `NAME/`, in the spec directories (`/etc/docker/plugins`,
//! `/usr/lib/docker/plugins`); the first definition of a name wins. Only
//! `unix://` addresses are reached; a plugin is activated with
//! `POST /Plugin.Activate`, and one that implements `NetworkDriver` and
//! states its scope (`GetCapabilities`) becomes the driver `-d NAME`.
//!
//! The engine's IPAM gives out the addresses. An attach is
//! `CreateEndpoint`, `Join`, then the engine's own kernel work: the
//! interface the plugin made in the host (`SrcName`) is moved into the
//! sandbox as `DstPrefix` + N, gets its MAC, addresses, default route
//! (through the plugin's gateway, else the network's, unless
//! `DisableGatewayService`) and static routes; then
//! `ProgramExternalConnectivity`. Every call is bounded by a timeout
//! (10 s, or `BERTH_PLUGIN_TIMEOUT_MS`). An attach that fails partway is
//! undone: the interface deleted, `Leave` and `DeleteEndpoint` sent where
//! the plugin may have acted. As in Docker, a 404 on an optional method
//! means "not supported" and is fine, a 404 on a required one is an error,
//! and errors of `Leave`, `DeleteEndpoint` and `DeleteNetwork` are logged
//! rather than stopping the teardown.

mod http;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Docker's request and answer shapes, which the functions here take.
pub use berth_core::protocol;
use berth_core::protocol::{
    CapabilitiesResponse, CreateEndpointRequest, CreateEndpointResponse, CreateNetworkRequest,
    DeleteNetworkRequest, EndpointInterface, EndpointRequest, ErrorResponse, JoinRequest, JoinResponse,
    method,
};
use berth_core::{
    Attachment, Capabilities, Context, Endpoint, Error, IfName, Mac, Network, NetworkDriver, NetworkHandle,
    Result, Scope, async_trait, link,
};
use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use http::{Response as HttpResponse, Transport, parse_response};

use super::{Found, PluginConfig, PluginInfo, TIMEOUT_ENV, one_line, timeout};

/// The subsystem a plugin must implement to be a network driver.
const NETWORK_DRIVER: &str = "NetworkDriver";

/// Optional methods (a 404 is fine): after a `Join` that gives the
/// sandbox its default route, and before the `Leave`.
const PROGRAM_EXTERNAL_CONNECTIVITY: &str = "ProgramExternalConnectivity";
/// See [`PROGRAM_EXTERNAL_CONNECTIVITY`].
const REVOKE_EXTERNAL_CONNECTIVITY: &str = "RevokeExternalConnectivity";

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

/// The scope a plugin states in its `GetCapabilities` answer.
pub fn parse_scope(caps: &CapabilitiesResponse) -> Result<Scope, String> {
    match caps.scope.as_str() {
        "local" => Ok(Scope::Local),
        "global" => Ok(Scope::Global),
        other => Err(format!(
            "invalid capability: Scope is {:?} (accepted: local, global)",
            one_line(other)
        )),
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
    pub fn parse(r: &JoinResponse) -> Result<Self, String> {
        let interface = match &r.interface_name {
            None => None,
            Some(i) => {
                let src = IfName::new(&i.src_name)
                    .map_err(|e| format!("InterfaceName.SrcName {:?}: {e}", one_line(&i.src_name)))?;
                let prefix = &i.dst_prefix;
                if prefix.len() > 12
                    || !prefix
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    || prefix.ends_with(|c: char| c.is_ascii_digit())
                {
                    return Err(format!(
                        "InterfaceName.DstPrefix {:?} is not a usable interface name prefix (letters, at most 12)",
                        one_line(prefix)
                    ));
                }
                Some((src, prefix.clone()))
            }
        };
        let gateway = match r.gateway.as_str() {
            "" => None,
            g => Some(
                g.parse::<Ipv4Addr>()
                    .map_err(|_| format!("unable to parse Gateway {:?} (an IPv4 address)", one_line(g)))?,
            ),
        };
        let gateway_v6 =
            match r.gateway_ipv6.as_str() {
                "" => None,
                g => Some(g.parse::<Ipv6Addr>().map_err(|_| {
                    format!("unable to parse GatewayIPv6 {:?} (an IPv6 address)", one_line(g))
                })?),
            };
        let mut routes = Vec::new();
        for r in &r.static_routes {
            let destination: IpNet = r.destination.parse().map_err(|_| {
                format!(
                    "static route Destination {:?} is not a CIDR",
                    one_line(&r.destination)
                )
            })?;
            let via = match (r.route_type, r.next_hop.as_str()) {
                // Docker's types.NEXTHOP and types.CONNECTED.
                (0, "") | (1, _) => None,
                (0, hop) => {
                    let hop: IpAddr = hop.parse().map_err(|_| {
                        format!("failed to parse next hop {:?} of a static route", one_line(hop))
                    })?;
                    if hop.is_ipv4() != destination.addr().is_ipv4() {
                        return Err(format!(
                            "static route to {destination} via {hop}: the families differ"
                        ));
                    }
                    Some(hop)
                }
                (t, _) => {
                    return Err(format!(
                        "static route to {destination}: unknown RouteType {t} (accepted: 0, 1)"
                    ));
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
pub fn check_endpoint(sent: &EndpointInterface, got: Option<&EndpointInterface>) -> Result<Chosen, String> {
    let mut chosen = Chosen::default();
    let Some(got) = got else { return Ok(chosen) };
    for (what, ours, theirs, v6) in [
        ("Address", &sent.address, &got.address, false),
        ("AddressIPv6", &sent.address_ipv6, &got.address_ipv6, true),
    ] {
        if theirs.is_empty() {
            continue;
        }
        let theirs: IpNet = theirs.parse().map_err(|_| {
            format!(
                "Interface.{what} {:?} is not an address with a prefix length",
                one_line(theirs)
            )
        })?;
        if theirs.addr().is_ipv6() != v6 {
            return Err(format!("Interface.{what} {theirs} is of the wrong family"));
        }
        if ours.is_empty() {
            chosen.addresses.push(theirs);
        } else if ours.parse::<IpNet>().ok() != Some(theirs) {
            return Err(format!(
                "the plugin changed the interface's {what} from {ours} to {theirs}"
            ));
        }
    }
    if !got.mac_address.is_empty() {
        let mac = got
            .mac_address
            .parse::<Mac>()
            .ok()
            .filter(|m| !m.is_multicast())
            .ok_or_else(|| {
                format!(
                    "Interface.MacAddress {:?} is not a MAC address",
                    one_line(&got.mac_address)
                )
            })?;
        chosen.mac = Some(mac);
    }
    Ok(chosen)
}

/// Why a call did not give the answer asked for.
#[derive(Debug)]
enum CallError {
    Transport(Transport),
    Response(ResponseError),
    /// The answer came but cannot be used (a bad `Join` answer, …).
    Bad(String),
}

impl CallError {
    /// Whether the plugin may have done (some of) what was asked, so that
    /// it must be told to undo it.
    fn maybe_done(&self) -> bool {
        !matches!(
            self,
            Self::Transport(Transport::Unreachable(_))
                | Self::Response(ResponseError::NotImplemented | ResponseError::Refused(_))
        )
    }
}

/// `ProgramExternalConnectivity` request.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ConnectivityRequest<'a> {
    #[serde(rename = "NetworkID")]
    network_id: &'a str,
    #[serde(rename = "EndpointID")]
    endpoint_id: &'a str,
    options: BTreeMap<String, Value>,
}

/// A Docker network plugin as a berth driver.
struct DockerPlugin {
    name: String,
    socket: PathBuf,
    scope: Scope,
    timeout: Duration,
}

impl DockerPlugin {
    /// `POST /NAME` with `req`, the answer decoded.
    async fn call<T: DeserializeOwned>(&self, name: &str, req: &impl Serialize) -> Result<T, CallError> {
        let body =
            serde_json::to_vec(req).map_err(|e| CallError::Bad(format!("encoding the request: {e}")))?;
        let resp = http::post(&self.socket, &format!("/{name}"), &body, self.timeout)
            .await
            .map_err(CallError::Transport)?;
        decode_response(resp.status, &resp.body).map_err(CallError::Response)
    }

    /// A `NetworkDriver.METHOD` call.
    async fn driver_call<T: DeserializeOwned>(&self, m: &str, req: &impl Serialize) -> Result<T, CallError> {
        self.call(&format!("{NETWORK_DRIVER}.{m}"), req).await
    }

    /// A call of an optional method: a 404 is "not supported, fine".
    async fn optional_call(&self, m: &str, req: &impl Serialize) -> Result<(), CallError> {
        match self.driver_call::<ErrorResponse>(m, req).await {
            Ok(_) | Err(CallError::Response(ResponseError::NotImplemented)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One line saying which call failed and why, keeping the errno of a
    /// socket that cannot be reached.
    fn error(&self, m: &str, e: CallError) -> Error {
        let what = format!("plugin {}: {m} failed", self.name);
        let socket = self.socket.display();
        match e {
            CallError::Transport(Transport::Unreachable(io)) => {
                Error::kernel(format!("{what}: no route to the plugin's socket {socket}"), io)
            }
            CallError::Transport(Transport::Broken(io)) => Error::kernel(
                format!("{what}: the connection to the plugin's socket {socket} broke"),
                io,
            ),
            CallError::Transport(t @ Transport::Timeout(_)) => {
                Error::Internal(format!("{what}: {t} (the limit is set by {TIMEOUT_ENV})"))
            }
            CallError::Transport(t) => Error::Internal(format!("{what}: {t}")),
            CallError::Response(r) => Error::Internal(format!("{what}: {r}")),
            CallError::Bad(why) => Error::Internal(format!("{what}: {why}")),
        }
    }

    /// Sends a teardown call whose failure does not stop the teardown (as
    /// Docker does: it logs them).
    async fn best_effort(&self, m: &str, req: &impl Serialize) {
        if let Err(e) = self.driver_call::<ErrorResponse>(m, req).await {
            tracing::warn!("{}", self.error(m, e).chain());
        }
    }

    fn endpoint_request(net: &Network, ep: &Endpoint<'_>) -> EndpointRequest {
        EndpointRequest {
            network_id: net.id.clone(),
            endpoint_id: ep.id.to_owned(),
            berth: None,
        }
    }

    /// Tells the plugin to forget a half-made endpoint: `Leave` if it may
    /// have joined, then `DeleteEndpoint`.
    async fn undo(&self, net: &Network, ep: &Endpoint<'_>, joined: bool) {
        let req = Self::endpoint_request(net, ep);
        if joined {
            self.best_effort(method::LEAVE, &req).await;
        }
        self.best_effort(method::DELETE_ENDPOINT, &req).await;
    }

    /// The engine's part of an attach, after `Join`: moves the plugin's
    /// interface into the sandbox and configures it. Reports the name it
    /// has there (to delete on failure) through `moved`; returns the
    /// gateways of its default routes.
    async fn wire(
        &self,
        ctx: &Context,
        ep: &Endpoint<'_>,
        joined: &Joined,
        chosen: &Chosen,
        moved: &mut Option<IfName>,
    ) -> Result<Vec<IpAddr>> {
        let sb = ep
            .sandbox
            .ok_or_else(|| Error::Internal("attach without a sandbox".into()))?;
        let Some((src, prefix)) = &joined.interface else {
            // The plugin wired the sandbox itself, through SandboxKey.
            return Ok(Vec::new());
        };
        let name = sandbox_name(prefix, ep.ifname)?;
        link::move_link(&ctx.handle, src.as_str(), &sb.ns, &name).await?;
        *moved = Some(name.clone());
        let index = link::get(&sb.handle, name.as_str())
            .await?
            .ok_or_else(|| Error::Internal(format!("{name} vanished from the sandbox")))?
            .index;
        link::set_mac(&sb.handle, index, chosen.mac.unwrap_or(ep.mac)).await?;
        let mut addresses = ep.addresses.to_vec();
        addresses.extend(&chosen.addresses);
        // The engine decided whether this network carries the default
        // route; the plugin may name another gateway or refuse one.
        let gateways: Vec<IpAddr> = if joined.disable_gateway_service {
            Vec::new()
        } else {
            ep.gateways
                .iter()
                .map(|g| match g {
                    IpAddr::V4(_) => joined.gateway.map_or(*g, IpAddr::V4),
                    IpAddr::V6(_) => joined.gateway_v6.map_or(*g, IpAddr::V6),
                })
                .collect()
        };
        link::configure(&sb.handle, &name, &addresses, &gateways).await?;
        for r in &joined.routes {
            link::replace_route(
                &sb.handle,
                index,
                r.destination,
                r.via,
                "the plugin's static route",
            )
            .await?;
        }
        Ok(gateways)
    }

    /// An error of the engine's work after `Join`, saying so.
    fn after_join(&self, e: Error) -> Error {
        let p = |s: String| format!("plugin {}: wiring in the interface from Join: {s}", self.name);
        match e {
            Error::Kernel(s, io) => Error::Kernel(p(s), io),
            Error::Internal(s) => Error::Internal(p(s)),
            Error::Invalid(s) => Error::Invalid(p(s)),
            Error::NotFound(s) => Error::NotFound(p(s)),
            Error::Conflict(s) => Error::Conflict(p(s)),
            Error::Unsupported(s) => Error::Unsupported(p(s)),
            other => other,
        }
    }
}

/// The name of the plugin's interface in the sandbox: `DstPrefix` and the
/// number of the engine's name for the endpoint (`eth1` → `PREFIX1`).
fn sandbox_name(prefix: &str, ifname: &IfName) -> Result<IfName> {
    if prefix.is_empty() || prefix == "eth" {
        return Ok(ifname.clone());
    }
    let n = ifname.as_str().trim_start_matches(|c: char| !c.is_ascii_digit());
    IfName::new(&format!("{prefix}{n}"))
}

/// Finds the endpoint's interface in a sandbox: `ifname`, or the one with
/// its number under another prefix (a plugin's `DstPrefix`).
async fn find_interface(
    handle: &berth_core::rtnetlink::Handle,
    ifname: &IfName,
) -> Result<Option<link::Link>> {
    if let Some(l) = link::get(handle, ifname.as_str()).await? {
        return Ok(Some(l));
    }
    let n = ifname.as_str().trim_start_matches(|c: char| !c.is_ascii_digit());
    if n.is_empty() {
        return Ok(None);
    }
    Ok(link::list(handle).await?.into_iter().find(|l| {
        l.name
            .strip_suffix(n)
            .is_some_and(|p| !p.is_empty() && p != "lo" && !p.ends_with(|c: char| c.is_ascii_digit()))
    }))
}

/// A Docker network plugin as a berth driver.
struct DockerDriver(Arc<DockerPlugin>);

/// A network of a Docker plugin: what the plugin's calls for it need.
struct DockerNet {
    plugin: Arc<DockerPlugin>,
    net: Network,
}

#[async_trait]
impl NetworkDriver for DockerDriver {
    fn name(&self) -> &str {
        &self.0.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            scope: self.0.scope,
            ..Capabilities::own_sandbox()
        }
    }

    /// The plugin checks its options itself, in `CreateNetwork`.
    async fn open(&self, net: &Network) -> Result<Arc<dyn NetworkHandle>> {
        Ok(Arc::new(DockerNet {
            plugin: self.0.clone(),
            net: net.clone(),
        }))
    }
}

#[async_trait]
impl NetworkHandle for DockerNet {
    fn network(&self) -> &Network {
        &self.net
    }

    async fn create(&self, ctx: &Context) -> Result<()> {
        self.plugin.create_network(ctx, &self.net).await
    }

    async fn delete(&self, _ctx: &Context) -> Result<()> {
        self.plugin.delete_network(&self.net).await
    }

    async fn attach(&self, ctx: &Context, ep: &Endpoint<'_>) -> Result<Attachment> {
        self.plugin.attach(ctx, &self.net, ep).await
    }

    async fn detach(&self, _ctx: &Context, ep: &Endpoint<'_>) -> Result<()> {
        self.plugin.detach(&self.net, ep).await
    }
}

impl DockerPlugin {
    async fn create_network(&self, ctx: &Context, net: &Network) -> Result<()> {
        let req = CreateNetworkRequest {
            network_id: net.id.clone(),
            options: protocol::network_options(net),
            ipv4_data: protocol::ipam_data(net, false),
            ipv6_data: protocol::ipam_data(net, true),
            berth: None,
        };
        match self
            .driver_call::<ErrorResponse>(method::CREATE_NETWORK, &req)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                // A network the engine already has is being put back after a
                // restart: never delete it because the plugin was slow.
                let known = ctx.networks.contains(&net.id);
                if e.maybe_done() && !known {
                    let del = DeleteNetworkRequest {
                        network_id: net.id.clone(),
                        berth: None,
                    };
                    self.best_effort(method::DELETE_NETWORK, &del).await;
                }
                Err(self.error(method::CREATE_NETWORK, e))
            }
        }
    }

    async fn delete_network(&self, net: &Network) -> Result<()> {
        let req = DeleteNetworkRequest {
            network_id: net.id.clone(),
            berth: None,
        };
        self.best_effort(method::DELETE_NETWORK, &req).await;
        Ok(())
    }

    async fn attach(&self, ctx: &Context, net: &Network, ep: &Endpoint<'_>) -> Result<Attachment> {
        let sb = ep
            .sandbox
            .ok_or_else(|| Error::Internal("attach without a sandbox".into()))?;
        let addr = |v6: bool| {
            ep.addresses
                .iter()
                .find(|a| a.addr().is_ipv6() == v6)
                .map(ToString::to_string)
                .unwrap_or_default()
        };
        let sent = EndpointInterface {
            address: addr(false),
            address_ipv6: addr(true),
            mac_address: ep.mac.to_string(),
        };
        let req = CreateEndpointRequest {
            network_id: net.id.clone(),
            endpoint_id: ep.id.to_owned(),
            interface: Some(sent.clone()),
            options: BTreeMap::new(),
        };
        let chosen = self
            .driver_call::<CreateEndpointResponse>(method::CREATE_ENDPOINT, &req)
            .await
            .and_then(|r| check_endpoint(&sent, r.interface.as_ref()).map_err(CallError::Bad));
        let chosen = match chosen {
            Ok(c) => c,
            Err(e) => {
                if e.maybe_done() {
                    self.undo(net, ep, false).await;
                }
                return Err(self.error(method::CREATE_ENDPOINT, e));
            }
        };
        let req = JoinRequest {
            network_id: net.id.clone(),
            endpoint_id: ep.id.to_owned(),
            sandbox_key: sb.path.to_string_lossy().into_owned(),
            options: BTreeMap::new(),
            berth: None,
        };
        let joined = self
            .driver_call::<JoinResponse>(method::JOIN, &req)
            .await
            .and_then(|r| Joined::parse(&r).map_err(CallError::Bad));
        let joined = match joined {
            Ok(j) => j,
            Err(e) => {
                self.undo(net, ep, e.maybe_done()).await;
                return Err(self.error(method::JOIN, e));
            }
        };
        let mut moved = None;
        let wired = async {
            let gateways = self
                .wire(ctx, ep, &joined, &chosen, &mut moved)
                .await
                .map_err(|e| self.after_join(e))?;
            if !gateways.is_empty() && !net.internal {
                let req = ConnectivityRequest {
                    network_id: &net.id,
                    endpoint_id: ep.id,
                    options: BTreeMap::new(),
                };
                self.optional_call(PROGRAM_EXTERNAL_CONNECTIVITY, &req)
                    .await
                    .map_err(|e| self.error(PROGRAM_EXTERNAL_CONNECTIVITY, e))?;
            }
            Ok::<_, Error>(gateways)
        }
        .await;
        let plugin_chose = joined.gateway.is_some() || joined.gateway_v6.is_some();
        match wired {
            Ok(gateways) => Ok(Attachment {
                host_ifname: None,
                addresses: if chosen.addresses.is_empty() {
                    Vec::new()
                } else {
                    ep.addresses.iter().chain(&chosen.addresses).copied().collect()
                },
                gateways: if plugin_chose { gateways } else { Vec::new() },
                mac: chosen.mac,
                ..Default::default()
            }),
            Err(e) => {
                // The interface is berth's once moved; before that it is
                // still the plugin's, in the host, and goes with Leave.
                let deleted = match &moved {
                    Some(name) => link::del_by_name(&sb.handle, name.as_str()).await,
                    None => match &joined.interface {
                        Some((src, _)) => link::del_by_name(&ctx.handle, src.as_str()).await,
                        None => Ok(()),
                    },
                };
                if let Err(d) = deleted {
                    tracing::warn!(plugin = %self.name, "undoing an attach: {}", d.chain());
                }
                self.undo(net, ep, true).await;
                Err(e)
            }
        }
    }

    async fn detach(&self, net: &Network, ep: &Endpoint<'_>) -> Result<()> {
        let req = Self::endpoint_request(net, ep);
        if let Err(e) = self.optional_call(REVOKE_EXTERNAL_CONNECTIVITY, &req).await {
            tracing::warn!("{}", self.error(REVOKE_EXTERNAL_CONNECTIVITY, e).chain());
        }
        // Docker moves the interface back to the host for the plugin to
        // delete; berth deletes it, as the end of a container's namespace
        // would, so that nothing is left when the plugin is gone.
        let mut deleted = Ok(());
        if let Some(sb) = ep.sandbox {
            deleted = match find_interface(&sb.handle, ep.ifname).await {
                Ok(Some(l)) => link::del(&sb.handle, l.index).await,
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
        }
        self.best_effort(method::LEAVE, &req).await;
        self.best_effort(method::DELETE_ENDPOINT, &req).await;
        deleted
    }
}

/// Where a plugin was found, and the socket to reach it at (or why not).
struct Candidate {
    name: String,
    file: PathBuf,
    socket: Result<PathBuf, String>,
}

fn is_socket(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

/// The socket path of a plugin address: only `unix://` is reached.
fn unix_address(addr: &str) -> Result<PathBuf, String> {
    let addr = addr.trim();
    match addr.split_once("://") {
        Some(("unix", path)) if path.starts_with('/') => Ok(PathBuf::from(path)),
        Some(("unix", _)) => Err(format!("invalid address {addr:?} (accepted: unix:///PATH)")),
        Some((scheme, _)) if !scheme.is_empty() => Err(format!(
            "{scheme} address {addr:?}: berth reaches Docker plugins over unix sockets only (unix:///PATH)"
        )),
        _ => Err(format!(
            "invalid address {addr:?}: no scheme (accepted: unix:///PATH)"
        )),
    }
}

/// A `.spec` file: one URL.
fn read_spec(p: &Path) -> Result<PathBuf, String> {
    let text = std::fs::read_to_string(p).map_err(|e| format!("reading it: {e}"))?;
    unix_address(&text)
}

/// A `.json` file: `{"Name": …, "Addr": …, "TLSConfig": …}`. As in Docker,
/// the file's name names the plugin.
fn read_json_spec(p: &Path) -> Result<PathBuf, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Spec {
        #[serde(default)]
        addr: String,
    }
    let text = std::fs::read(p).map_err(|e| format!("reading it: {e}"))?;
    let spec: Spec = serde_json::from_slice(&text)
        .map_err(|e| format!("not a plugin spec: {}", one_line(&e.to_string())))?;
    if spec.addr.is_empty() {
        return Err("it has no Addr".into());
    }
    unix_address(&spec.addr)
}

/// Every plugin definition in Docker's lookup order: sockets first
/// (`NAME/NAME.sock`, then `NAME.sock`), then in each spec directory
/// `NAME/NAME.spec`, `NAME.spec`, `NAME/NAME.json`, `NAME.json`.
fn candidates(cfg: &PluginConfig) -> Vec<Candidate> {
    /// (name, rank in Docker's order, file) of one directory.
    fn scan(dir: &Path, exts: &[&str], keep: impl Fn(&Path) -> bool) -> Vec<(String, usize, PathBuf)> {
        let mut found = Vec::new();
        let Ok(rd) = std::fs::read_dir(dir) else {
            return found;
        };
        for e in rd.flatten() {
            let entry = e.file_name().to_string_lossy().into_owned();
            let path = dir.join(&entry);
            for (i, ext) in exts.iter().enumerate() {
                let inner = path.join(format!("{entry}.{ext}"));
                if path.is_dir() && keep(&inner) {
                    found.push((entry.clone(), 2 * i, inner));
                }
                if let Some(name) = entry.strip_suffix(&format!(".{ext}"))
                    && !name.is_empty()
                    && keep(&path)
                {
                    found.push((name.to_owned(), 2 * i + 1, path.clone()));
                }
            }
        }
        found.sort();
        found
    }
    let mut out = Vec::new();
    for dir in &cfg.docker_socket_dirs {
        for (name, _, file) in scan(dir, &["sock"], is_socket) {
            out.push(Candidate {
                name,
                socket: Ok(file.clone()),
                file,
            });
        }
    }
    for dir in &cfg.docker_spec_dirs {
        for (name, _, file) in scan(dir, &["spec", "json"], Path::is_file) {
            let socket = if file.extension().is_some_and(|e| e == "spec") {
                read_spec(&file)
            } else {
                read_json_spec(&file)
            };
            out.push(Candidate { name, file, socket });
        }
    }
    out
}

/// Activates one plugin: `Plugin.Activate`, then `GetCapabilities` if it
/// is a network driver.
async fn activate(name: &str, socket: &Path, timeout: Duration) -> Result<DockerPlugin, String> {
    let mut plugin = DockerPlugin {
        name: name.to_owned(),
        socket: socket.to_owned(),
        scope: Scope::Local,
        timeout,
    };
    let act: ActivateResponse = plugin
        .call("Plugin.Activate", &serde_json::json!({}))
        .await
        .map_err(|e| format!("not loaded: {}", plugin.error("Plugin.Activate", e).chain()))?;
    if !act.implements.iter().any(|i| i == NETWORK_DRIVER) {
        return Err(format!(
            "not a network driver: it implements {}",
            if act.implements.is_empty() {
                "nothing".to_owned()
            } else {
                one_line(&act.implements.join(", "))
            }
        ));
    }
    let caps: CapabilitiesResponse = plugin
        .driver_call(method::GET_CAPABILITIES, &serde_json::json!({}))
        .await
        .map_err(|e| {
            format!(
                "not loaded: {}",
                plugin.error(method::GET_CAPABILITIES, e).chain()
            )
        })?;
    plugin.scope = parse_scope(&caps).map_err(|why| format!("not loaded: GetCapabilities: {why}"))?;
    Ok(plugin)
}

/// Finds and activates Docker network plugins. Never fails: a plugin that
/// cannot be used is listed with the reason. Activations run side by side,
/// each bounded by the timeout.
pub async fn discover(cfg: &PluginConfig) -> Vec<Found> {
    let timeout = timeout();
    let mut first: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut jobs = Vec::new();
    for c in candidates(cfg) {
        let info = PluginInfo {
            name: c.name.clone(),
            transport: "docker".into(),
            path: c.file.display().to_string(),
            abi: None,
            status: String::new(),
        };
        if let Some(earlier) = first.get(&c.name) {
            let status = format!("ignored: {} defines plugin {:?} first", earlier.display(), c.name);
            jobs.push(futures_util::future::Either::Left(async move {
                Found {
                    info: PluginInfo { status, ..info },
                    driver: None,
                }
            }));
            continue;
        }
        first.insert(c.name.clone(), c.file.clone());
        jobs.push(futures_util::future::Either::Right(async move {
            let activated = match &c.socket {
                Ok(socket) => activate(&c.name, socket, timeout).await,
                Err(why) => Err(format!("refused: {why}")),
            };
            match activated {
                Ok(p) => Found {
                    info: PluginInfo {
                        status: "loaded".into(),
                        ..info
                    },
                    driver: Some(Arc::new(DockerDriver(Arc::new(p))) as Arc<dyn NetworkDriver>),
                },
                Err(status) => Found {
                    info: PluginInfo { status, ..info },
                    driver: None,
                },
            }
        }));
    }
    futures_util::future::join_all(jobs).await
}

#[cfg(test)]
mod tests {
    use berth_core::protocol::{InterfaceName, StaticRoute as RouteIn};
    use rand::{Rng, SeedableRng};

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
        assert!(Joined::parse(&r).unwrap_err().contains("Gateway"));
        r.gateway.clear();
        r.static_routes[1].next_hop = "fd00::1".into();
        assert!(Joined::parse(&r).unwrap_err().contains("families"));
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
    fn only_unix_addresses_are_reached() {
        assert_eq!(
            unix_address("unix:///run/p.sock\n"),
            Ok(PathBuf::from("/run/p.sock"))
        );
        assert!(
            unix_address("tcp://localhost:8080")
                .unwrap_err()
                .contains("unix sockets only")
        );
        assert!(unix_address("/run/p.sock").unwrap_err().contains("no scheme"));
        assert!(unix_address("unix://relative").is_err());
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
