//! A Docker plugin as a berth driver: the calls of each operation, the
//! engine's own kernel work after `Join`, and the rollback of an attach
//! that fails partway.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_core::{
    Attachment, Capabilities, Context, Endpoint, Error, IfName, Kind, Network, NetworkDriver, NetworkHandle,
    Result, Scope, Vanish, async_trait, link,
};
use berth_plugin::protocol::{
    self, CreateEndpointRequest, CreateEndpointResponse, CreateNetworkRequest, DeleteNetworkRequest,
    EndpointInterface, EndpointRequest, ErrorResponse, JoinRequest, JoinResponse, method,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::answers::{
    BadAnswer, Chosen, Joined, ResponseError, check_endpoint, decode_response, sandbox_name,
};
use super::http::{self, Transport};
use super::{NETWORK_DRIVER, PROGRAM_EXTERNAL_CONNECTIVITY, REVOKE_EXTERNAL_CONNECTIVITY};
use crate::plugins::TIMEOUT_ENV;

/// Why a call did not give the answer asked for.
#[derive(Debug)]
pub(super) enum CallError {
    Transport(Transport),
    Response(ResponseError),
    /// The request could not be encoded.
    Encode(serde_json::Error),
    /// The answer came but cannot be used (a bad `Join` answer, …).
    Bad(BadAnswer),
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

/// A Docker network plugin: where to reach it and what it said of itself.
pub(super) struct DockerPlugin {
    pub(super) name: String,
    pub(super) socket: PathBuf,
    pub(super) scope: Scope,
    pub(super) timeout: Duration,
}

impl DockerPlugin {
    /// `POST /NAME` with `req`, the answer decoded.
    pub(super) async fn call<T: DeserializeOwned>(
        &self,
        name: &str,
        req: &impl Serialize,
    ) -> Result<T, CallError> {
        let body = serde_json::to_vec(req).map_err(CallError::Encode)?;
        let resp = http::post(&self.socket, &format!("/{name}"), &body, self.timeout)
            .await
            .map_err(CallError::Transport)?;
        decode_response(resp.status, &resp.body).map_err(CallError::Response)
    }

    /// A `NetworkDriver.METHOD` call.
    pub(super) async fn driver_call<T: DeserializeOwned>(
        &self,
        m: &str,
        req: &impl Serialize,
    ) -> Result<T, CallError> {
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
    pub(super) fn error(&self, m: &str, e: CallError) -> Error {
        let socket = self.socket.display();
        let failed = match e {
            CallError::Transport(Transport::Unreachable(io)) => {
                Error::io(format!("no route to the plugin's socket {socket}"), io)
            }
            CallError::Transport(Transport::Broken(io)) => Error::io(
                format!("the connection to the plugin's socket {socket} broke"),
                io,
            ),
            CallError::Transport(t @ Transport::Timeout(_)) => {
                Error::plugin(Kind::Internal, format!("{t} (the limit is set by {TIMEOUT_ENV})"))
            }
            CallError::Transport(t) => Error::plugin(Kind::Internal, t.to_string()),
            CallError::Response(r) => Error::plugin(Kind::Internal, r.to_string()),
            CallError::Encode(source) => Error::Encode {
                what: "the request",
                source,
            },
            CallError::Bad(why) => Error::plugin(Kind::Internal, why.to_string()),
        };
        Error::PluginStep {
            plugin: self.name.clone(),
            step: format!("{m} failed"),
            source: Box::new(failed),
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
        let sb = ep.sandbox.ok_or_else(|| Error::NoSandbox { driver: None })?;
        let Some((src, prefix)) = &joined.interface else {
            // The plugin wired the sandbox itself, through SandboxKey.
            return Ok(Vec::new());
        };
        let name = sandbox_name(prefix, ep.ifname)?;
        link::move_link(&ctx.handle, src.as_str(), &sb.ns, &name).await?;
        *moved = Some(name.clone());
        let index = link::get(&sb.handle, name.as_str())
            .await?
            .ok_or_else(|| Error::Vanished {
                link: name.to_string(),
                when: Vanish::FromSandbox,
            })?
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
        Error::PluginStep {
            plugin: self.name.clone(),
            step: "wiring in the interface from Join".into(),
            source: Box::new(e),
        }
    }
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
pub(super) struct DockerDriver(pub(super) Arc<DockerPlugin>);

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
        let sb = ep.sandbox.ok_or_else(|| Error::NoSandbox { driver: None })?;
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
