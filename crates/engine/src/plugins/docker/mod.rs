//! Docker network plugins: Docker's remote network-driver protocol
//! (HTTP+JSON on a unix socket), so that existing Docker network plugins
//! work as berth drivers.
//!
//! Discovery follows Docker's: sockets `NAME.sock` (or `NAME/NAME.sock`) in
//! the socket directories (`/run/docker/plugins`), then `NAME.spec` (a URL)
//! and `NAME.json` (`{"Name": …, "Addr": …}`) files, or the same under
//! `NAME/`, in the spec directories (`/etc/docker/plugins`,
//! `/usr/lib/docker/plugins`); the first definition of a name wins. Only
//! `unix://` addresses are reached; a plugin is activated with
//! `POST /Plugin.Activate`, and one that implements `NetworkDriver` and
//! states its scope (`GetCapabilities`) becomes the driver `-d NAME`.
//!
//! The engine's IPAM gives out the addresses. An attach is
//! `CreateEndpoint`, `Join`, then the engine's own kernel work: the
//! interface the plugin made in the host (`SrcName`) is moved into the
//! sandbox as `DstPrefix` + N, gets its MAC, addresses, default route
//! (through the plugin's gateway, else the network's, unless
//! `DisableGatewayService`) and static routes; then
//! `ProgramExternalConnectivity`. Every call is bounded by a timeout
//! (10 s, or `BERTH_PLUGIN_TIMEOUT_MS`). An attach that fails partway is
//! undone: the interface deleted, `Leave` and `DeleteEndpoint` sent where
//! the plugin may have acted. As in Docker, a 404 on an optional method
//! means "not supported" and is fine, a 404 on a required one is an error,
//! and errors of `Leave`, `DeleteEndpoint` and `DeleteNetwork` are logged
//! rather than stopping the teardown.

mod answers;
mod discovery;
mod driver;
mod http;

/// Docker's request and answer shapes, which the functions here take.
pub use berth_plugin::protocol;

pub use self::answers::{
    ActivateResponse, BadAnswer, Chosen, Joined, ResponseError, StaticRoute, check_endpoint, decode_response,
    parse_scope,
};
pub use self::discovery::discover;
pub use self::http::{Response as HttpResponse, Transport, parse_response};

/// The subsystem a plugin must implement to be a network driver.
const NETWORK_DRIVER: &str = "NetworkDriver";

/// Optional methods (a 404 is fine): after a `Join` that gives the
/// sandbox its default route, and before the `Leave`.
const PROGRAM_EXTERNAL_CONNECTIVITY: &str = "ProgramExternalConnectivity";
/// See [`PROGRAM_EXTERNAL_CONNECTIVITY`].
const REVOKE_EXTERNAL_CONNECTIVITY: &str = "RevokeExternalConnectivity";
