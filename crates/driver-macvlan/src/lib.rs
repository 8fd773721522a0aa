//! The `macvlan` driver: each container gets a macvlan interface of a
//! parent link, born inside its sandbox as `eth0` (or `ethN`), with its
//! own MAC on the parent's LAN, as `docker network create -d macvlan`
//! does. The parent is an existing interface, an 802.1q sub-interface
//! berth makes (`-o parent=eth0.10`), or, without one, a dummy link that
//! makes the network internal.
#![deny(missing_docs)]

use berth_core::parent::{self, Parent};
use berth_core::rtnetlink::LinkMacVlan;
use berth_core::rtnetlink::packet_route::link::MacVlanMode;
use berth_core::{
    Attachment, Capabilities, Context, Endpoint, Error, Features, Network, NetworkDriver, Result,
    SandboxKind, Scope, async_trait, check_options, link,
};

/// Every option the macvlan driver accepts.
pub const OPTIONS: &[&str] = &["parent", "macvlan_mode"];

/// The `macvlan` network mode.
#[derive(Debug, Default)]
pub struct Macvlan;

/// A macvlan network's options, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The parent link.
    pub parent: Parent,
    /// `macvlan_mode`.
    pub mode: Mode,
}

/// `macvlan_mode`, as `ip -d link` prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Children of one parent talk to each other directly (the default).
    Bridge,
    /// Children cannot talk to each other.
    Private,
    /// Children talk through the external switch (reflective relay).
    Vepa,
    /// One child takes the parent over.
    Passthru,
}

impl Mode {
    fn kernel(self) -> MacVlanMode {
        match self {
            Mode::Bridge => MacVlanMode::Bridge,
            Mode::Private => MacVlanMode::Private,
            Mode::Vepa => MacVlanMode::Vepa,
            Mode::Passthru => MacVlanMode::Passthrough,
        }
    }
}

impl Config {
    /// Parses and checks `net.options`.
    pub fn parse(net: &Network) -> Result<Self> {
        check_options("macvlan", &net.options, OPTIONS)?;
        let mode = match net.options.get("macvlan_mode").map(String::as_str) {
            None | Some("bridge") => Mode::Bridge,
            Some("private") => Mode::Private,
            Some("vepa") => Mode::Vepa,
            Some("passthru") => Mode::Passthru,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "invalid value {other:?} for option macvlan_mode (accepted: bridge, private, vepa, passthru)"
                )));
            }
        };
        Ok(Self {
            parent: Parent::of(net)?,
            mode,
        })
    }
}

#[async_trait]
impl NetworkDriver for Macvlan {
    fn name(&self) -> &str {
        "macvlan"
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
        Config::parse(net)?.parent.check_subnet("macvlan", net)
    }

    fn supported(&self, f: &Features) -> std::result::Result<(), String> {
        if f.macvlan {
            Ok(())
        } else {
            Err("this kernel has no macvlan support (CONFIG_MACVLAN)".into())
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
        let msg = LinkMacVlan::new(ep.ifname.as_str(), parent.index, cfg.mode.kernel())
            .address(ep.mac.to_vec())
            .build();
        link::add_sublink_into(
            &ctx.handle,
            msg,
            &sandbox.ns,
            &format!("macvlan {} on {}", ep.ifname, parent.name),
        )
        .await?;
        if let Err(e) = link::configure(&sandbox.handle, ep.ifname, ep.addresses, ep.gateways).await {
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
            id: "ab".repeat(32),
            name: "m".into(),
            driver: "macvlan".into(),
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
    fn modes_and_options() {
        assert_eq!(
            Config::parse(&net(&[("parent", "eth0")])).unwrap().mode,
            Mode::Bridge
        );
        assert_eq!(
            Config::parse(&net(&[("macvlan_mode", "passthru")])).unwrap().mode,
            Mode::Passthru
        );
        let e = Config::parse(&net(&[("macvlan_mode", "bridged")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("accepted: bridge, private, vepa, passthru"), "{e}");
        let e = Config::parse(&net(&[("ipvlan_mode", "l2")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown option \"ipvlan_mode\" for driver macvlan (accepted: parent, macvlan_mode)"),
            "{e}"
        );
    }

    #[test]
    fn a_parent_needs_a_subnet() {
        let e = Macvlan
            .validate(&net(&[("parent", "eth0")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs --subnet"), "{e}");
        Macvlan.validate(&net(&[])).unwrap();
        assert!(Macvlan.forces_internal(&net(&[])));
        assert!(!Macvlan.forces_internal(&net(&[("parent", "eth0")])));
    }
}
