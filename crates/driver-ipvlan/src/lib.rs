//! The `ipvlan` driver: each container gets an ipvlan interface of a
//! parent link, born inside its sandbox as `eth0` (or `ethN`), sharing the
//! parent's MAC, as `docker network create -d ipvlan` does. In `l2` mode
//! the container has a default route via the network's gateway; in `l3`
//! and `l3s` the parent routes, and the container's default route goes
//! through its device with no gateway. The parent is chosen as for
//! macvlan (existing, `BASE.VID` made by berth, or a dummy of its own).
#![deny(missing_docs)]

use std::sync::Arc;

use berth_core::link::Link;
use berth_core::parent::{self, ParentNet, SubLinks};
use berth_core::rtnetlink::LinkIpVlan;
use berth_core::rtnetlink::packet_route::link::{IpVlanFlags, IpVlanMode, LinkMessage};
use berth_core::{
    Capabilities, Claim, Endpoint, Error, Feature, Features, Network, NetworkDriver, NetworkHandle, Place,
    Ports, Result, SubLink, async_trait, check_options,
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

impl Mode {
    /// The option's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::L2 => "l2",
            Mode::L3 => "l3",
            Mode::L3s => "l3s",
        }
    }
}

/// What an ipvlan network's sub-interfaces are: its mode and flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Links {
    /// `ipvlan_mode`.
    pub mode: Mode,
    /// `ipvlan_flag`.
    pub flag: Flag,
}

impl SubLinks for Links {
    fn build(&self, ep: &Endpoint<'_>, parent: u32) -> LinkMessage {
        let mode = match self.mode {
            Mode::L2 => IpVlanMode::L2,
            Mode::L3 => IpVlanMode::L3,
            Mode::L3s => IpVlanMode::L3S,
        };
        let flag = match self.flag {
            Flag::Bridge => IpVlanFlags::empty(),
            Flag::Private => IpVlanFlags::Private,
            Flag::Vepa => IpVlanFlags::Vepa,
        };
        LinkIpVlan::new(ep.ifname.as_str(), parent, mode)
            .flag(flag)
            .build()
    }

    /// L3: the parent routes; every destination is on-link.
    fn on_link(&self) -> bool {
        self.mode != Mode::L2
    }
}

/// An ipvlan network, opened: its parent, mode and flag.
pub type IpvlanNet = ParentNet<Links>;

/// Parses and checks an ipvlan network's options and address plan.
pub fn open(net: &Network) -> Result<IpvlanNet> {
    check_options("ipvlan", &net.options, OPTIONS)?;
    let mode = match net.options.get("ipvlan_mode").map(String::as_str) {
        None | Some("l2") => Mode::L2,
        Some("l3") => Mode::L3,
        Some("l3s") => Mode::L3s,
        Some(other) => {
            return Err(Error::BadOptionValue {
                key: "ipvlan_mode".into(),
                value: other.to_owned(),
                accepted: "l2, l3, l3s",
            });
        }
    };
    let flag = match net.options.get("ipvlan_flag").map(String::as_str) {
        None | Some("bridge") => Flag::Bridge,
        Some("private") => Flag::Private,
        Some("vepa") => Flag::Vepa,
        Some(other) => {
            return Err(Error::BadOptionValue {
                key: "ipvlan_flag".into(),
                value: other.to_owned(),
                accepted: "bridge, private, vepa",
            });
        }
    };
    ParentNet::open(net, SubLink::Ipvlan, mode.as_str(), Links { mode, flag })
}

#[async_trait]
impl NetworkDriver for Ipvlan {
    fn name(&self) -> &str {
        "ipvlan"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            options: OPTIONS,
            ports: Ports::OwnAddress,
            parent: true,
            ..Capabilities::own_sandbox()
        }
    }

    fn supported(&self, f: &Features) -> Result<()> {
        f.require(Feature::Ipvlan)
    }

    async fn open(&self, net: &Network) -> Result<Arc<dyn NetworkHandle>> {
        Ok(Arc::new(open(net)?))
    }

    fn claim(&self, place: Place, links: &[Link]) -> Vec<(u32, Claim)> {
        parent::claim(SubLink::Ipvlan, place, links)
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn net(opts: &[(&str, &str)]) -> Network {
        Network::with_options(&"cd".repeat(32), "i", "ipvlan", opts)
    }

    #[test]
    fn modes_flags_and_options() {
        let c = open(&net(&[("ipvlan_mode", "l3s"), ("ipvlan_flag", "private")])).unwrap();
        assert_eq!((c.links().mode, c.links().flag), (Mode::L3s, Flag::Private));
        let e = open(&net(&[("ipvlan_mode", "l4")])).unwrap_err().to_string();
        assert!(e.contains("accepted: l2, l3, l3s"), "{e}");
        let e = open(&net(&[("ipvlan_flag", "open")])).unwrap_err().to_string();
        assert!(e.contains("accepted: bridge, private, vepa"), "{e}");
        let e = open(&net(&[("parent", "eth0")])).unwrap_err().to_string();
        assert!(e.contains("needs --subnet"), "{e}");
    }
}
