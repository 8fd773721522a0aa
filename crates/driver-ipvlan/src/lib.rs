//! The `ipvlan` driver: each container gets an ipvlan interface of a
//! parent link, born inside its sandbox as `eth0` (or `ethN`), sharing the
//! parent's MAC, as `docker network create -d ipvlan` does. In `l2` mode
//! the container has a default route via the network's gateway; in `l3`
//! and `l3s` the parent routes, and the container's default route goes
//! through its device with no gateway. The parent is chosen as for
//! macvlan (existing, `BASE.VID` made by berth, or a dummy of its own).
#![deny(missing_docs)]

use berth_core::parent::{self, Parent};
use berth_core::rtnetlink::LinkIpVlan;
use berth_core::rtnetlink::packet_route::link::{IpVlanFlags, IpVlanMode};
use berth_core::{
    Attachment, Capabilities, Context, Endpoint, Error, Features, Network, NetworkDriver, Result,
    SandboxKind, Scope, async_trait, check_options, link,
};

/// Every option the ipvlan driver accepts.
pub const OPTIONS: &[&str] = &["parent", "ipvlan_mode", "ipvlan_flag"];

/// The `ipvlan` network mode.
#[derive(Debug, Default)]
pub struct Ipvlan;

/// `ipvlan_mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Switching on the parent's MAC (the default).
    L2,
    /// Routing at layer 3 inside the parent.
    L3,
    /// Like L3, with netfilter connection tracking.
    L3s,
}

/// `ipvlan_flag`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    /// Children talk to each other (the default).
    Bridge,
    /// Children cannot talk to each other.
    Private,
    /// Children talk through the external switch.
    Vepa,
}

/// An ipvlan network's options, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The parent link.
    pub parent: Parent,
    /// `ipvlan_mode`.
    pub mode: Mode,
    /// `ipvlan_flag`.
    pub flag: Flag,
}

impl Config {
    /// Parses and checks `net.options`.
    pub fn parse(net: &Network) -> Result<Self> {
        check_options("ipvlan", &net.options, OPTIONS)?;
        let mode = match net.options.get("ipvlan_mode").map(String::as_str) {
            None | Some("l2") => Mode::L2,
            Some("l3") => Mode::L3,
            Some("l3s") => Mode::L3s,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "invalid value {other:?} for option ipvlan_mode (accepted: l2, l3, l3s)"
                )));
            }
        };
        let flag = match net.options.get("ipvlan_flag").map(String::as_str) {
            None | Some("bridge") => Flag::Bridge,
            Some("private") => Flag::Private,
            Some("vepa") => Flag::Vepa,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "invalid value {other:?} for option ipvlan_flag (accepted: bridge, private, vepa)"
                )));
            }
        };
        Ok(Self {
            parent: Parent::of(net)?,
            mode,
            flag,
        })
    }
}

#[async_trait]
impl NetworkDriver for Ipvlan {
    fn name(&self) -> &str {
        "ipvlan"
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
        Config::parse(net)?.parent.check_subnet("ipvlan", net)
    }

    fn supported(&self, f: &Features) -> std::result::Result<(), String> {
        if f.ipvlan {
            Ok(())
        } else {
            Err("this kernel has no ipvlan support (CONFIG_IPVLAN)".into())
        }
    }

    fn forces_internal(&self, net: &Network) -> bool {
        !net.options.contains_key(parent::OPTION)
    }

    async fn create_network(&self, ctx: &Context, net: &Network) -> Result<()> {
        Config::parse(net)?.parent.create(ctx, net).await
    }

    async fn delete_network(&self, ctx: &Context, net: &Network) -> Result<()> {
        Config::parse(net)?.parent.release(ctx, net).await
    }

    async fn attach(&self, ctx: &Context, net: &Network, ep: &Endpoint<'_>) -> Result<Attachment> {
        let cfg = Config::parse(net)?;
        let sandbox = ep
            .sandbox
            .ok_or_else(|| Error::Internal("attach without a sandbox".into()))?;
        let parent = cfg.parent.find(ctx, net).await?;
        let mode = match cfg.mode {
            Mode::L2 => IpVlanMode::L2,
            Mode::L3 => IpVlanMode::L3,
            Mode::L3s => IpVlanMode::L3S,
        };
        let flag = match cfg.flag {
            Flag::Bridge => IpVlanFlags::empty(),
            Flag::Private => IpVlanFlags::Private,
            Flag::Vepa => IpVlanFlags::Vepa,
        };
        let msg = LinkIpVlan::new(ep.ifname.as_str(), parent.index, mode)
            .flag(flag)
            .build();
        link::add_sublink_into(
            &ctx.handle,
            msg,
            &sandbox.ns,
            &format!("ipvlan {} on {}", ep.ifname, parent.name),
        )
        .await?;
        let configured = async {
            if cfg.mode == Mode::L2 {
                return link::configure(&sandbox.handle, ep.ifname, ep.addresses, ep.gateways).await;
            }
            // L3: the parent routes; every destination is on-link.
            link::configure(&sandbox.handle, ep.ifname, ep.addresses, &[]).await?;
            if !ep.gateways.is_empty() {
                let index = link::get(&sandbox.handle, ep.ifname.as_str())
                    .await?
                    .ok_or_else(|| Error::Internal(format!("{} vanished", ep.ifname)))?
                    .index;
                for v6 in [false, true] {
                    if ep.addresses.iter().any(|a| a.addr().is_ipv6() == v6) {
                        link::add_default_route_dev(&sandbox.handle, index, v6).await?;
                    }
                }
            }
            Ok(())
        };
        if let Err(e) = configured.await {
            let _ = link::del_by_name(&sandbox.handle, ep.ifname.as_str()).await;
            return Err(e);
        }
        Ok(Attachment::default())
    }

    async fn detach(&self, _: &Context, _: &Network, ep: &Endpoint<'_>) -> Result<()> {
        match ep.sandbox {
            Some(sb) => link::del_by_name(&sb.handle, ep.ifname.as_str()).await,
            None => Ok(()), // gone with its namespace
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn net(opts: &[(&str, &str)]) -> Network {
        Network {
            id: "cd".repeat(32),
            name: "i".into(),
            driver: "ipvlan".into(),
            options: opts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            ipam: vec![],
            ipv6: false,
            internal: false,
        }
    }

    #[test]
    fn modes_flags_and_options() {
        let c = Config::parse(&net(&[("ipvlan_mode", "l3s"), ("ipvlan_flag", "private")])).unwrap();
        assert_eq!((c.mode, c.flag), (Mode::L3s, Flag::Private));
        let e = Config::parse(&net(&[("ipvlan_mode", "l4")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("accepted: l2, l3, l3s"), "{e}");
        let e = Config::parse(&net(&[("ipvlan_flag", "open")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("accepted: bridge, private, vepa"), "{e}");
        let e = Ipvlan
            .validate(&net(&[("parent", "eth0")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs --subnet"), "{e}");
    }
}
