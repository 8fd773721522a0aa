//! The berth engine: one process per host, the single writer of berth's
//! state.
//!
//! It keeps networks and containers in a redb [`store`], hands out
//! addresses from Docker's pools ([`ipam`]), makes sandboxes (pinned
//! network namespaces with their `/etc/hosts` and `/etc/resolv.conf`),
//! drives the network drivers, and serves the HTTP API ([`api`], in the
//! types of [`berth_api`]) on a unix socket. On start it reconciles the
//! kernel with the store.
#![deny(missing_docs)]

mod access;
pub mod api;
mod cluster;
mod containers;
pub mod dns;
mod engine;
mod error;
mod firewall;
mod networks;
pub mod plugins;
mod repair;
mod restore;
pub mod serve_docker;
pub mod store;
mod util;

pub use berth_api; // the API's types appear in the engine's signatures
pub use berth_cluster; // and the cluster store's options in its configuration
pub use cluster::ClusterConfig;
pub use containers::dnsopts::check_hostname;
pub use containers::{ContainerCreate, Created, shim_answer, shim_command};
pub use engine::{Config, Engine};
pub use error::{
    AddHostFault, AddressRole, Error, HostPort, HostnameFault, NoPublish, Object, PortFault, Process, Result,
    Unsupported,
};
pub use firewall::BridgeNfCall;
pub use networks::ipam;
pub use store::model;
pub use util::now;
