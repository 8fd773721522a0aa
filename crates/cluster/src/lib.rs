//! berth's cluster store: what every host of a cluster shares — global
//! networks, the subnets, numbers (VNIs) and addresses they hold, and
//! where each of their containers is — in etcd, under one prefix.
//!
//! Every allocation is one compare-and-swap transaction, so two hosts
//! creating networks or running containers at the same moment never get
//! the same subnet, number or address. Each host's own records (its host
//! record, its containers' endpoints and addresses) live under a lease it
//! keeps alive ([`Options::lease_ttl`], 10 s by default): when a host dies
//! they disappear with its lease, everywhere at once, and its addresses
//! are free again. Hosts follow the store with a watch ([`Cluster::watch`])
//! that resumes from the last revision it saw, and reads everything again
//! when it cannot (a compacted revision, a long outage).
//!
//! Calls fail fast when etcd does not answer (an attempt of 600 ms on a
//! member, 2 s in all), so a host without its store keeps serving what it
//! has and says why the rest cannot work; it keeps trying in the
//! background and re-registers as soon as etcd answers again.
//!
//! # Layout
//!
//! Under the prefix (`/berth/v1/` unless `--cluster-store-opt prefix=`
//! says otherwise), readable with `etcdctl get --prefix /berth/v1/`:
//!
//! | key | value | lease |
//! |---|---|---|
//! | `hosts/<host id>` | [`Host`] (JSON): name, tunnel endpoint, since | the host's |
//! | `networks/<network id>` | the network's record (JSON, the engine's) | — |
//! | `names/<name>` | the network's id | — |
//! | `subnets/<CIDR>` | the id of the network that holds it | — |
//! | `numbers/<pool>/<n>` | the id of the network that holds it (pool `vni`) | — |
//! | `addresses/<network id>/<IP>` | the id of the endpoint that holds it | its host's |
//! | `endpoints/<network id>/<endpoint id>` | [`Endpoint`] (JSON): container, names, MAC, addresses, host, tunnel endpoint | its host's |
#![deny(missing_docs)]

mod alloc;
mod cluster;
mod error;
mod options;
mod records;
mod watch;

pub use cluster::{Cluster, Health};
pub use error::{Error, Result};
pub use options::{DEFAULT_LEASE_TTL, DEFAULT_PREFIX, OPTIONS, Options, Tls};
pub use records::{Endpoint, Host};
pub use watch::{Change, Snapshot};
