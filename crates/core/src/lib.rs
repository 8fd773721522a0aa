//! The driver contract and the kernel plumbing every berth driver shares.
//!
//! A driver implements [`NetworkDriver`]; the engine calls it with a
//! [`Context`] (the host's namespace, a netlink handle there, the
//! [`Firewall`]) and, per container, an [`Endpoint`] in a [`Sandbox`].
//! Kernel work goes through [`netns`] (namespaces by fd, entered only on
//! short-lived threads), [`link`] (links, addresses, routes) and [`nft`]
//! (nftables set elements over netlink).
#![deny(missing_docs)]

mod driver;
mod error;
mod features;
pub mod firewall;
mod ifname;
pub mod link;
mod mac;
pub mod netns;
pub mod nft;
pub mod parent;
pub mod plugin;
pub mod protocol;

pub use async_trait::async_trait;
pub use driver::{
    Attachment, Capabilities, Claim, Context, Endpoint, IpamConfig, Network, NetworkDriver, NetworkHandle,
    Networks, ParentUse, Place, Ports, Sandbox, SandboxKind, Scope, SubLink, check_options, parse_bool,
};
pub use error::{Error, Result, is_errno, netlink_io};
pub use features::Features;
pub use firewall::{Firewall, FwNetwork, FwPort, Proto};
pub use ifname::{IFNAME_MAX, IfName};
pub use ipnet;
pub use mac::Mac;
pub use netns::Netns;
pub use rtnetlink; // Context and Sandbox hold rtnetlink handles: one version for all drivers
