//! The driver contract and the kernel plumbing every berth driver shares.
//!
//! A driver implements [`NetworkDriver`]: it turns a network's spec into a
//! [`NetworkHandle`] once ([`NetworkDriver::open`]), and the engine calls
//! the handle with a [`Context`] (the host's namespace, a netlink handle
//! there, the [`Firewall`]) and, per container, an [`Endpoint`] in a
//! [`Sandbox`]. Kernel work goes through [`netns`] (namespaces by fd,
//! entered only on short-lived threads), [`link`] (links, addresses,
//! routes), [`parent`] (the parent links of macvlan and ipvlan) and
//! [`nft`] (nftables tables, chains, rules and set elements over
//! netlink). [`export_driver!`] turns any driver into a shared-library
//! plugin; what crosses that boundary is the `berth-plugin` crate's,
//! re-exported here ([`Network`], [`Attachment`], [`Mac`], [`protocol`],
//! …).
#![deny(missing_docs)]

mod driver;
mod error;
pub mod export;
mod features;
pub mod firewall;
mod ifname;
pub mod linger;
pub mod link;
pub mod netns;
pub mod nft;
pub mod parent;
pub mod vxlan;

pub use async_trait::async_trait;
pub use berth_plugin::{
    Attachment, InvalidMac, IpamConfig, Mac, Network, Ports, SandboxKind, Scope, abi, protocol,
};
pub use driver::{
    Capabilities, Claim, ClusterContext, Context, Endpoint, NetworkDriver, NetworkHandle, Networks, Numbers,
    ParentUse, Peer, Place, Sandbox, SubLink, Underlay, check_options, option_pair, parse_bool, parse_mtu,
};
pub use error::{BadIfName, Error, IfNameFault, Kind, Master, Result, Vanish, chain, is_errno, netlink_io};
pub use features::{Feature, Features};
pub use firewall::{Firewall, FwNetwork, FwPort, Proto};
pub use ifname::{IFNAME_MAX, IfName};
pub use ipnet;
pub use linger::Lingering;
pub use netns::Netns;
pub use rtnetlink; // Context and Sandbox hold rtnetlink handles: one version for all drivers
