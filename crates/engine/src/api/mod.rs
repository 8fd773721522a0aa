//! The HTTP API on a unix socket, in the types of [`berth_api`].
//!
//! The `/networks` routes, `/containers/json`, `/_ping`, `/version` and
//! `/info` follow the Docker Engine API, so the `docker` CLI and Docker
//! SDKs drive berth with `DOCKER_HOST=unix:///PATH/berth.sock`; the rest
//! is berth's own (the table of routes is in [`berth_api`]'s docs).
//!
//! - [`serve`](serve()): the listener, and what every request and answer
//!   goes through: a `/v1.24`…`/v1.47` path prefix is taken off (another
//!   version is refused in Docker's words), and Docker's headers
//!   (`Api-Version`, `Ostype`, …) go on every answer.
//! - `listen`: the socket (0660, the daemon's group) and the bounds on
//!   what a client may hold: a header (and body) read timeout, a cap on
//!   connections served at once (more wait their turn), a cap on body
//!   size (413).
//! - `routes`: one handler per route, from a typed request to a typed
//!   answer.
//! - `views`: stored records ([`crate::store::model`]) into API types.
//! - `filters`: what `network ls` and `network prune` filters mean.
//! - `error`: every failure as `{"message": "..."}` with Docker's status,
//!   bodies and queries that do not decode included.
//! - [`decode`]: the same reading of a request with no engine behind it,
//!   for fuzzing.

pub mod decode;
mod error;
mod filters;
pub(crate) mod listen;
mod routes;
mod serve;
pub(crate) mod views;

pub use error::ApiError;
pub(crate) use filters::{ContainerFilter, NetworkFilter};
pub use listen::{Limits, Listen, MAX_CONNECTIONS};
pub use routes::router;
pub use serve::serve;
