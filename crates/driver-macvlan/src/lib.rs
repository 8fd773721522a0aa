//! The `macvlan` driver: each container gets a macvlan interface of a
//! parent link, born inside its sandbox as `eth0` (or `ethN`), with its
//! own MAC on the parent's LAN, as `docker network create -d macvlan`
//! does. The parent is an existing interface, an 802.1q sub-interface
//! berth makes (`-o parent=eth0.10`), or, without one, a dummy link that
//! makes the network internal.
#![deny(missing_docs)]

use std::sync::Arc;

use berth_core::link::Link;
use berth_core::parent::{self, ParentNet, SubLinks};
use berth_core::rtnetlink::LinkMacVlan;
use berth_core::rtnetlink::packet_route::link::{LinkMessage, MacVlanMode};
use berth_core::{
    Capabilities, Claim, Endpoint, Error, Feature, Features, Network, NetworkDriver, NetworkHandle, Place,
    Ports, Result, SubLink, async_trait, check_options,
};

/// Every option the macvlan driver accepts.
pub const OPTIONS: &[&str] = &["parent", "macvlan_mode"];

/// The `macvlan` network mode.
#[derive(Debug, Default)]
pub struct Macvlan;

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
    /// Reads `macvlan_mode`.
    fn parse(net: &Network) -> Result<Self> {
        match net.options.get("macvlan_mode").map(String::as_str) {
            None | Some("bridge") => Ok(Mode::Bridge),
            Some("private") => Ok(Mode::Private),
            Some("vepa") => Ok(Mode::Vepa),
            Some("passthru") => Ok(Mode::Passthru),
            Some(other) => Err(Error::BadOptionValue {
                key: "macvlan_mode".into(),
                value: other.to_owned(),
                accepted: "bridge, private, vepa, passthru",
            }),
        }
    }

    /// The option's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Bridge => "bridge",
            Mode::Private => "private",
            Mode::Vepa => "vepa",
            Mode::Passthru => "passthru",
        }
    }

    fn kernel(self) -> MacVlanMode {
        match self {
            Mode::Bridge => MacVlanMode::Bridge,
            Mode::Private => MacVlanMode::Private,
            Mode::Vepa => MacVlanMode::Vepa,
            Mode::Passthru => MacVlanMode::Passthrough,
        }
    }
}

impl SubLinks for Mode {
    fn build(&self, ep: &Endpoint<'_>, parent: u32) -> LinkMessage {
        LinkMacVlan::new(ep.ifname.as_str(), parent, self.kernel())
            .address(ep.mac.octets().to_vec())
            .build()
    }
}

/// A macvlan network, opened: its parent, and its mode.
pub type MacvlanNet = ParentNet<Mode>;

/// Parses and checks a macvlan network's options and address plan.
pub fn open(net: &Network) -> Result<MacvlanNet> {
    check_options("macvlan", &net.options, OPTIONS)?;
    let mode = Mode::parse(net)?;
    ParentNet::open(net, SubLink::Macvlan, mode.as_str(), mode)
}

#[async_trait]
impl NetworkDriver for Macvlan {
    fn name(&self) -> &str {
        "macvlan"
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
        f.require(Feature::Macvlan)
    }

    async fn open(&self, net: &Network) -> Result<Arc<dyn NetworkHandle>> {
        Ok(Arc::new(open(net)?))
    }

    fn claim(&self, place: Place, links: &[Link]) -> Vec<(u32, Claim)> {
        parent::claim(SubLink::Macvlan, place, links)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn net(opts: &[(&str, &str)]) -> Network {
        Network::with_options(&"ab".repeat(32), "m", "macvlan", opts)
    }

    #[test]
    fn modes_and_options() {
        assert_eq!(open(&net(&[])).unwrap().links(), &Mode::Bridge);
        assert_eq!(
            open(&net(&[("macvlan_mode", "passthru")])).unwrap().links(),
            &Mode::Passthru
        );
        let e = open(&net(&[("macvlan_mode", "bridged")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("accepted: bridge, private, vepa, passthru"), "{e}");
        let e = open(&net(&[("ipvlan_mode", "l2")])).unwrap_err().to_string();
        assert!(
            e.contains("unknown option \"ipvlan_mode\" for driver macvlan (accepted: parent, macvlan_mode)"),
            "{e}"
        );
    }

    #[test]
    fn a_parent_needs_a_subnet() {
        let e = open(&net(&[("parent", "eth0")])).unwrap_err().to_string();
        assert!(e.contains("needs --subnet"), "{e}");
        assert!(open(&net(&[])).unwrap().forces_internal());
        let mut lan = net(&[("parent", "eth0")]);
        lan.ipam.push(berth_core::IpamConfig {
            subnet: "10.5.0.0/24".parse().unwrap(),
            gateway: None,
            ip_range: None,
            aux_addresses: BTreeMap::new(),
        });
        assert!(!open(&lan).unwrap().forces_internal());
    }
}
