//! What crosses berth's plugin boundary, and nothing of berth's kernel
//! helpers: a third-party driver depends on this crate alone to speak to
//! berth's engine, whatever it is written with.
//!
//! - [`abi`]: the C ABI of a shared-library plugin (`berth_plugin_v1`,
//!   its table, `call` and `call_async`).
//! - [`protocol`]: the JSON requests and answers, in the shapes of
//!   Docker's remote network-driver API with berth's `Berth` members, which
//!   the engine also speaks to Docker network plugins over a unix socket.
//! - The data both sides agree on: a [`Network`] as the engine hands it to
//!   its driver, the [`Attachment`] a driver reports, [`Mac`], [`Scope`],
//!   [`SandboxKind`], [`Ports`].
//!
//! A Rust driver built on berth-core's `NetworkDriver` trait gets all of
//! this wrapped by berth-core's `export_driver!`; berth-core re-exports
//! these types, so it needs no direct dependency on this crate.
#![deny(missing_docs)]

pub mod abi;
mod mac;
mod model;
pub mod protocol;

pub use ipnet;
pub use mac::{InvalidMac, Mac};
pub use model::{Attachment, IpamConfig, Network, Ports, SandboxKind, Scope};
pub use serde_json;
