//! The `bridge` driver, berth's default: a Linux bridge in the host
//! namespace, one veth per container with its peer born inside the sandbox
//! as `eth0`, an address and a default route via the bridge, masquerading
//! out, isolation from every other bridge network. Docker's `bridge`
//! driver, on nftables sets.
#![deny(missing_docs)]

mod config;

use berth_core::{
    Attachment, Capabilities, Context, Endpoint, Error, FwNetwork, Network, NetworkDriver, Result,
    SandboxKind, Scope, async_trait, link,
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
fn bridge_mac(net: &Network) -> [u8; 6] {
    let mut mac = [0x02, 0xb7, 0, 0, 0, 0];
    for (i, b) in mac[2..].iter_mut().enumerate() {
        *b = u8::from_str_radix(net.id.get(2 * i..2 * i + 2).unwrap_or("00"), 16).unwrap_or(0);
    }
    mac
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

impl Bridge {
    async fn make_bridge(&self, ctx: &Context, net: &Network, cfg: &Config) -> Result<(u32, bool)> {
        let ours = alias(net);
        match link::get(&ctx.handle, cfg.name.as_str()).await? {
            Some(l) if l.alias.as_deref() == Some(ours.as_str()) => Ok((l.index, false)),
            Some(l) => Err(Error::Conflict(format!(
                "cannot use bridge name {}: an interface with that name already exists{}",
                cfg.name,
                match l.alias.as_deref().and_then(|a| a.strip_prefix("berth:")) {
                    Some(id) => format!(" (the bridge of berth network {})", &id[..id.len().min(12)]),
                    None => String::new(),
                }
            ))),
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
            scope: Scope::Local,
            sandbox: SandboxKind::Own,
            ipam: true,
            options: OPTIONS,
            multi_network: true,
        }
    }

    fn validate(&self, net: &Network) -> Result<()> {
        Config::parse(net).map(drop)
    }

    async fn create_network(&self, ctx: &Context, net: &Network) -> Result<()> {
        let cfg = Config::parse(net)?;
        let (index, made) = self.make_bridge(ctx, net, &cfg).await?;
        let rest = async {
            for c in &net.ipam {
                if let Some(gw) = c.gateway {
                    let addr = berth_core::ipnet::IpNet::new(gw, c.subnet.prefix_len())
                        .map_err(|e| Error::invalid(format!("gateway {gw}: {e}")))?;
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
            ctx.firewall.add_network(&firewall(&cfg, net))
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

    async fn delete_network(&self, ctx: &Context, net: &Network) -> Result<()> {
        let cfg = Config::parse(net)?;
        let fw = ctx.firewall.remove_network(&firewall(&cfg, net));
        if let Some(l) = link::get(&ctx.handle, cfg.name.as_str()).await?
            && l.alias.as_deref() == Some(alias(net).as_str())
        {
            link::del(&ctx.handle, l.index).await?;
        }
        fw
    }

    async fn attach(&self, ctx: &Context, net: &Network, ep: &Endpoint<'_>) -> Result<Attachment> {
        let cfg = Config::parse(net)?;
        let bridge = link::get(&ctx.handle, cfg.name.as_str()).await?.ok_or_else(|| {
            Error::NotFound(format!("bridge {} of network {} is missing", cfg.name, net.name))
        })?;
        let host_if = veth_name(ep.id);
        let sandbox = ep
            .sandbox
            .ok_or_else(|| Error::Internal("attach without a sandbox".into()))?;
        link::add_veth_into(&ctx.handle, &host_if, cfg.mtu, &sandbox.ns, ep.ifname, ep.mac).await?;
        // The sandbox side first, then the bridge port: the kernel's work
        // for a new port walks every other port, and done last it does not
        // hold up the sandbox's setup.
        let rest = async {
            link::configure(&sandbox.handle, ep.ifname, ep.addresses, ep.gateways).await?;
            if cfg.icc {
                link::attach_port(&ctx.handle, &host_if, Some(bridge.index)).await
            } else {
                // Isolated before it comes up, so that not one frame passes.
                link::enslave_isolated(&ctx.handle, &host_if, bridge.index).await
            }
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

    async fn detach(&self, ctx: &Context, _: &Network, ep: &Endpoint<'_>) -> Result<()> {
        link::del_by_name(&ctx.handle, &veth_name(ep.id)).await
    }
}
