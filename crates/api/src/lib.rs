//! The types of berth's HTTP API, written once: the daemon answers with
//! them and the CLI asks and prints with them.
//!
//! The `/networks` routes, `/containers/json`, `/_ping`, `/version` and
//! `/info` speak the Docker Engine API (versions [`MIN_API_VERSION`] to
//! [`API_VERSION`]), so the `docker` CLI and Docker SDKs drive berth with
//! `DOCKER_HOST=unix:///PATH/berth.sock`. The rest is berth's own
//! (`/containers/create`, the started/exited reports, network checks,
//! plugins) and says so on each type.
//!
//! | route | request | answer |
//! |---|---|---|
//! | `GET, HEAD /_ping` | | `OK`, with the [`PING_HEADERS`] |
//! | `GET /version` | | [`SystemVersion`] |
//! | `GET /info` | | [`SystemInfo`] |
//! | `GET /networks?filters=` | [`Filters`] | `[`[`Network`]`]` |
//! | `GET /networks/{id}` | | [`Network`] |
//! | `POST /networks/create` | [`NetworkCreateRequest`] | [`NetworkCreateResponse`] (201) |
//! | `DELETE /networks/{id}` | | 204 |
//! | `POST /networks/prune?filters=` | [`Filters`] | [`NetworkPruneResponse`] |
//! | `POST /networks/{id}/connect` | [`NetworkConnectRequest`] | 200 |
//! | `POST /networks/{id}/disconnect` | [`NetworkDisconnectRequest`] | 200 |
//! | `POST /networks/{id}/check` | | `[`[`NetworkCheck`]`]` (berth) |
//! | `POST /containers/create` | [`ContainerCreateRequest`] (berth) | [`ContainerCreateResponse`] (201) |
//! | `GET /containers/json?all=` | | `[`[`ContainerSummary`]`]` |
//! | `GET /containers/{id}/json` | | [`ContainerInspect`] |
//! | `DELETE /containers/{id}?force=` | | 204 |
//! | `POST /containers/{id}/started` | [`ContainerStarted`] (berth) | 204 |
//! | `POST /containers/{id}/exited` | [`ContainerExited`] (berth) | 204 |
//! | `POST /containers/{id}/start` | | 204 (Docker's; runs the command again, detached) |
//! | `POST /containers/{id}/stop?t=`, `/restart?t=` | | 204 (SIGTERM, SIGKILL after `t` seconds, 10 by default) |
//! | `POST /containers/{id}/kill?signal=` | | 204 (a name with or without `SIG`, or a number) |
//! | `POST /containers/{id}/wait` | | [`ContainerWaitResponse`] |
//! | `GET /containers/{id}/logs?tail=&timestamps=` | | the log as text (berth's, not Docker's multiplexed stream) |
//! | `GET /plugins`, `POST /plugins/reload` | | `[`[`PluginInfo`]`]` (berth) |
//! | `POST /sandboxes/attach` | [`SandboxAttachRequest`] (berth) | [`SandboxAttachResponse`] (201) |
//! | `POST /sandboxes/detach`, `POST /sandboxes/check` | [`SandboxDetachRequest`] (berth) | 204 |
//! | `POST /sandboxes/prune` | [`SandboxPruneRequest`] (berth) | [`SandboxPruneResponse`] |
//! | any error | | [`ErrorResponse`]: 400 bad input, 403 a pre-defined network, 404 not found, 409 a conflict |
//!
//! # Why not `bollard-stubs`
//!
//! Docker's models exist as the crate `bollard-stubs`, generated from the
//! Engine API's swagger file. berth writes its own instead, because:
//! - every field there is an `Option` skipped when `None`, so an answer
//!   cannot say `"IPAMConfig": null` or `"Options": {}` where Docker (and
//!   berth's tests and scripts) expect them, and a request type cannot
//!   read an explicit `null` as "absent" while keeping a plain `String` for
//!   the engine (here [`de::nullable`] does that for every request field);
//! - its maps are `HashMap`s, so `inspect` would print labels, options and
//!   a container's networks in a different order on every call (here
//!   `BTreeMap`, and [`OrderedMap`] where the order is the data's: a
//!   container's networks in the order it joined them);
//! - berth's answers carry fields Docker's do not (a member's `Ports`, the
//!   summary's `PortSummary`, [`SystemInfo`]'s drivers and roots) and
//!   berth has requests of its own; with the stubs each would need a
//!   wrapper type, and the shapes would be written twice again;
//! - it follows the newest API and renames and reshapes types between
//!   releases (dates became `chrono` or `time` values behind features),
//!   while berth pins one range, 1.24 to 1.47, and needs only serde.
//!
//! What berth does not model, it ignores on input (serde's default) and
//! does not send.
#![deny(missing_docs)]

mod container;
pub mod de;
mod error;
mod filters;
mod map;
mod network;
mod sandbox;
mod system;
mod time;
mod version;

pub use container::{
    ContainerConfig, ContainerCreateRequest, ContainerCreateResponse, ContainerExited, ContainerInspect,
    ContainerProcess, ContainerStarted, ContainerState, ContainerSummary, ContainerWaitResponse, Empty,
    HostConfig, MountPoint, NetworkSettings, Port, PortBinding, PortMap, ProcessUser, SummaryHostConfig,
    SummaryNetworkSettings, human_duration,
};
pub use error::Error;
pub use filters::Filters;
pub use map::OrderedMap;
pub use network::{
    ConfigReference, EndpointIpamConfig, EndpointSettings, Ipam, IpamConfig, Network, NetworkCheck,
    NetworkConnectRequest, NetworkContainer, NetworkCreateRequest, NetworkCreateResponse,
    NetworkDisconnectRequest, NetworkPeer, NetworkPruneResponse,
};
pub use sandbox::{
    SandboxAttachRequest, SandboxAttachResponse, SandboxDetachRequest, SandboxKey, SandboxPruneRequest,
    SandboxPruneResponse,
};
pub use system::{
    ClusterHost, ClusterInfo, Commit, ComponentVersion, DriverInfo, ErrorResponse, InfoPlugins, PING_HEADERS,
    Platform, PluginInfo, SwarmInfo, SystemInfo, SystemVersion, go_arch,
};
pub use time::Utc;
pub use version::{API_VERSION, ApiVersion, MIN_API_VERSION};
