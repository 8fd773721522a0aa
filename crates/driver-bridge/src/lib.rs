//! The `bridge` driver, berth's default: a Linux bridge in the host
//! namespace, one veth per container with its peer born inside the sandbox
//! as `eth0`, an address and a default route via the bridge, masquerading
//! out, isolation from every other bridge network. Docker's `bridge`
//! driver, on nftables sets.
#![deny(missing_docs)]

mod config;

use std::sync::Arc;

use berth_core::link::{self, Link};
use berth_core::{
    Attachment, Capabilities, Claim, Context, Endpoint, Error, FwNetwork, Mac, Network, NetworkDriver,
    NetworkHandle, Place, Ports, Result, async_trait,
};

pub use config::{Config, OPTIONS};

/// The `bridge` network mode.
#[derive(Debug, Default)]
pub struct Bridge;

/// The alias berth writes on the bridges it creates, so that it knows its
/// own after a crash and never touches anyone else's.
pub fn alias(net: &Network) -> String {
    format!("berth:{}", net.id)
}

/// The host-side veth of an endpoint: `veth` and 11 hex digits of its id.
pub fn veth_name(endpoint_id: &str) -> String {
    format!("veth{}", &endpoint_id[..endpoint_id.len().min(11)])
}

/// A fixed, locally administered MAC for the bridge, taken from the
/// network id, so that the bridge never takes a port's MAC.
fn bridge_mac(net: &Network) -> Mac {
    let mut mac = [0x02, 0xb7, 0, 0, 0, 0];
    for (i, b) in mac[2..].iter_mut().enumerate() {
        *b = u8::from_str_radix(net.id.get(2 * i..2 * i + 2).unwrap_or("00"), 16).unwrap_or(0);
    }
    Mac(mac)
}

fn firewall(cfg: &Config, net: &Network) -> FwNetwork {
    FwNetwork {
        bridge: cfg.name.clone(),
        masquerade: if cfg.masquerade && !net.internal {
            net.ipam.iter().map(|c| c.subnet).collect()
        } else {
            Vec::new()
        },
        internal: net.internal,
        icc: cfg.icc,
    }
}

/// A bridge network, opened: its options parsed once.
#[derive(Debug)]
pub struct BridgeNet {
    net: Network,
    cfg: Config,
}

impl BridgeNet {
    /// The parsed options.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    async fn make_bridge(&self, ctx: &Context) -> Result<(u32, bool)> {
        let (net, cfg) = (&self.net, &self.cfg);
        let ours = alias(net);
        match link::get(&ctx.handle, cfg.name.as_str()).await? {
            Some(l) if l.alias.as_deref() == Some(ours.as_str()) => {
                // Its MAC, if someone changed it.
                if l.mac != Some(bridge_mac(net)) {
                    link::set_mac(&ctx.handle, l.index, bridge_mac(net)).await?;
                }
                Ok((l.index, false))
            }
            Some(l) => Err(Error::BridgeNameTaken {
                name: cfg.name.to_string(),
                network: l
                    .alias
                    .as_deref()
                    .and_then(|a| a.strip_prefix("berth:"))
                    .map(str::to_owned),
            }),
            None => {
                let index = link::add_bridge(&ctx.handle, &cfg.name, bridge_mac(net), cfg.mtu, &ours).await?;
                Ok((index, true))
            }
        }
    }
}

#[async_trait]
impl NetworkDriver for Bridge {
    fn name(&self) -> &str {
        "bridge"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            options: OPTIONS,
            ports: Ports::Forwarded,
            ..Capabilities::own_sandbox()
        }
    }

    async fn open(&self, net: &Network) -> Result<Arc<dyn NetworkHandle>> {
        Ok(Arc::new(BridgeNet {
            net: net.clone(),
            cfg: Config::parse(net)?,
        }))
    }

    /// Its bridges (marked with [`alias`]) and the veths on them (named
    /// by [`veth_name`]).
    fn claim(&self, place: Place, links: &[Link]) -> Vec<(u32, Claim)> {
        if place != Place::Host {
            return Vec::new();
        }
        fn ours(l: &Link) -> Option<&str> {
            (l.kind.as_deref() == Some("bridge"))
                .then(|| l.alias.as_deref()?.strip_prefix("berth:"))
                .flatten()
        }
        let bridges: Vec<u32> = links
            .iter()
            .filter(|l| ours(l).is_some())
            .map(|l| l.index)
            .collect();
        links
            .iter()
            .filter_map(|l| {
                if let Some(id) = ours(l) {
                    return Some((l.index, Claim::Network(id.to_owned())));
                }
                let port = l.master.is_some_and(|m| bridges.contains(&m));
                let id = l.name.strip_prefix("veth").filter(|_| port)?;
                Some((l.index, Claim::Endpoint(id.to_owned())))
            })
            .collect()
    }
}

#[async_trait]
impl NetworkHandle for BridgeNet {
    fn network(&self) -> &Network {
        &self.net
    }

    /// Its bridge: berth made it for this network (see [`alias`]).
    fn own_links(&self) -> Vec<String> {
        vec![self.cfg.name.to_string()]
    }

    async fn create(&self, ctx: &Context) -> Result<()> {
        let (net, cfg) = (&self.net, &self.cfg);
        let (index, made) = self.make_bridge(ctx).await?;
        let rest = async {
            for c in &net.ipam {
                if let Some(gw) = c.gateway {
                    let addr = berth_core::ipnet::IpNet::new(gw, c.subnet.prefix_len())
                        .map_err(|source| Error::BadGateway { gateway: gw, source })?;
                    link::add_address(&ctx.handle, index, addr).await?;
                }
            }
            link::set_up(&ctx.handle, index).await?;
            ctx.host.sysctl("net/ipv4/ip_forward", "1")?;
            // Published ports answer on 127.0.0.1 too: a packet from
            // 127.0.0.1 may leave only through a link with route_localnet
            // (ip-sysctl.rst), and only this bridge gets it, as Docker does.
            ctx.host
                .sysctl(&format!("net/ipv4/conf/{}/route_localnet", cfg.name), "1")?;
            if net.ipv6 {
                ctx.host.sysctl("net/ipv6/conf/all/forwarding", "1")?;
            }
            ctx.firewall.add_network(&firewall(cfg, net))
        };
        match rest.await {
            Ok(()) => Ok(()),
            Err(e) => {
                if made {
                    let _ = link::del(&ctx.handle, index).await;
                }
                Err(e)
            }
        }
    }

    async fn delete(&self, ctx: &Context) -> Result<()> {
        let (net, cfg) = (&self.net, &self.cfg);
        let fw = ctx.firewall.remove_network(&firewall(cfg, net));
        if let Some(l) = link::get(&ctx.handle, cfg.name.as_str()).await?
            && l.alias.as_deref() == Some(alias(net).as_str())
        {
            link::del(&ctx.handle, l.index).await?;
        }
        fw
    }

    async fn attach(&self, ctx: &Context, ep: &Endpoint<'_>) -> Result<Attachment> {
        let cfg = &self.cfg;
        let bridge = self.bridge(ctx).await?;
        let host_if = veth_name(ep.id);
        let sandbox = ep.sandbox.ok_or(Error::NoSandbox { driver: None })?;
        link::add_veth_into(&ctx.handle, &host_if, cfg.mtu, &sandbox.ns, ep.ifname, ep.mac).await?;
        // The sandbox side first, then the bridge port: the kernel's work
        // for a new port walks every other port, and done last it does not
        // hold up the sandbox's setup.
        let rest = async {
            link::configure(&sandbox.handle, ep.ifname, ep.addresses, ep.gateways).await?;
            self.port(ctx, &host_if, bridge.index).await
        };
        if let Err(e) = rest.await {
            let _ = link::del_by_name(&ctx.handle, &host_if).await;
            return Err(e);
        }
        Ok(Attachment {
            host_ifname: Some(host_if),
            ..Default::default()
        })
    }

    /// Answers once the veth (and its peer in the sandbox) can no longer
    /// be seen; the kernel's slow part of the deletion goes on after, in
    /// `ctx.lingering`.
    async fn detach(&self, ctx: &Context, ep: &Endpoint<'_>) -> Result<()> {
        link::del_by_name_early(&ctx.handle, &ctx.host, &ctx.lingering, &veth_name(ep.id)).await
    }

    /// The veth back on the bridge and up (a bridge deleted and made again
    /// lost its ports), the sandbox side up with its addresses and route;
    /// a veth that is gone (and its peer with it) is made again.
    async fn repair(&self, ctx: &Context, ep: &Endpoint<'_>) -> Result<()> {
        let sandbox = ep.sandbox.ok_or(Error::NoSandbox { driver: None })?;
        let host_if = veth_name(ep.id);
        let Some(port) = link::get(&ctx.handle, &host_if).await? else {
            link::del_by_name(&sandbox.handle, ep.ifname.as_str()).await?;
            self.attach(ctx, ep).await?;
            return Ok(());
        };
        let bridge = self.bridge(ctx).await?;
        link::configure(&sandbox.handle, ep.ifname, ep.addresses, ep.gateways).await?;
        if port.master != Some(bridge.index) || !port.up {
            self.port(ctx, &host_if, bridge.index).await?;
        }
        Ok(())
    }
}

impl BridgeNet {
    /// The network's bridge, which must be there.
    async fn bridge(&self, ctx: &Context) -> Result<Link> {
        link::get(&ctx.handle, self.cfg.name.as_str())
            .await?
            .ok_or_else(|| Error::LinkMissing {
                role: "bridge",
                link: self.cfg.name.to_string(),
                network: self.net.name.clone(),
            })
    }

    /// Makes the host side `host_if` a port of the bridge `bridge`, and up;
    /// without inter-container traffic, isolated before it comes up, so
    /// that not one frame passes.
    async fn port(&self, ctx: &Context, host_if: &str, bridge: u32) -> Result<()> {
        if self.cfg.icc {
            link::attach_port(&ctx.handle, host_if, Some(bridge)).await
        } else {
            link::enslave_isolated(&ctx.handle, host_if, bridge).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: u32, name: &str, kind: &str, alias: Option<&str>, master: Option<u32>) -> Link {
        Link {
            index,
            name: name.into(),
            alias: alias.map(str::to_owned),
            master,
            kind: Some(kind.into()),
            mtu: 1500,
            up: true,
            mac: None,
        }
    }

    #[test]
    fn it_claims_its_bridges_and_their_veths_only() {
        let id = "ab".repeat(32);
        let links = [
            link(1, "br-abababababab", "bridge", Some(&format!("berth:{id}")), None),
            link(2, "veth0123456789a", "veth", None, Some(1)),
            link(3, "docker0", "bridge", None, None),
            link(4, "vethcafecafecaf", "veth", None, Some(3)),
            link(5, "eth0", "veth", None, Some(1)),
        ];
        assert_eq!(
            Bridge.claim(Place::Host, &links),
            [
                (1, Claim::Network(id)),
                (2, Claim::Endpoint("0123456789a".into()))
            ]
        );
        assert!(Bridge.claim(Place::Sandbox, &links).is_empty());
    }
}
