//! The C ABI of a shared-library plugin: `berth_plugin_v1` and the table
//! it returns.
//!
//! # The ABI, version 1
//!
//! A plugin is a `cdylib` that exports one symbol, [`SYMBOL`]:
//!
//! ```text
//! extern "C" fn berth_plugin_v1() -> *const PluginV1
//! ```
//!
//! It returns a pointer to a table that stays valid as long as the
//! library is loaded (berth never unloads one whose entry point ran, even
//! one it then refuses, so threads it started keep their code), or null
//! when the plugin cannot start. The host reads `abi_version` first and nothing else unless
//! it is a version it speaks ([`MIN_ABI_VERSION`] to [`ABI_VERSION`]):
//! every version keeps a `u32` version as the first field. Version 1's
//! table is a [`PluginV1`]. `name` is the driver's name (`-d NAME`) and
//! `capabilities` a
//! [`CapabilitiesResponse`](crate::protocol::CapabilitiesResponse) with
//! its `Berth` member, both NUL-terminated UTF-8.
//!
//! Everything else goes through `call`: a method name of
//! [`protocol::method`](crate::protocol::method) (Docker's remote-driver
//! methods plus `Validate`), a JSON request in the shapes of
//! [`protocol`](crate::protocol) with its `Berth` member, and a JSON answer
//! that the host hands back to `free` once it has copied it. Failures are
//! answered `{"Err": "message", "BerthKind": "invalid"}` ([`ErrorAnswer`]),
//! never by unwinding: a panic is caught at the boundary and answered as an
//! error. Nothing but bytes crosses, because a plugin links its own copy of
//! berth-core, std and tokio: no Rust type of one side means anything to
//! the other.
//!
//! # Version 2: answers without a waiting thread
//!
//! Version 2's table, [`PluginV2`], is version 1's followed by
//! `call_async` ([`CallAsyncFn`]): the same methods and JSON, but the call
//! returns at once and the plugin hands the answer to a `complete`
//! function of the host ([`CompleteFn`]) with the host's token, exactly
//! once, from any thread. A version 1 call costs a blocking thread of the
//! host that waits while the plugin's runtime works, and two thread
//! wake-ups to get the answer back; with `call_async` the plugin's runtime
//! wakes the engine's task directly. The host uses `call_async` for the
//! calls of an attach and a detach, `call` for the rest; it still loads
//! version 1 plugins and calls them through `call` only.
//! berth-core's `export_driver!` makes version 2 tables.

use std::ffi::{c_char, c_void};

use serde::{Deserialize, Serialize};

/// The ABI version this berth's plugins declare ([`PluginV2`]).
pub const ABI_VERSION: u32 = 2;

/// The oldest ABI version the host still loads ([`PluginV1`]: `call`
/// only).
pub const MIN_ABI_VERSION: u32 = 1;

/// The name of the entry point a plugin exports.
pub const SYMBOL: &str = "berth_plugin_v1";

/// The entry point's type: see the [module docs](self). Whatever the
/// version, the table starts with the fields of [`PluginV1`].
pub type EntryFn = unsafe extern "C" fn() -> *const PluginV1;

/// `call`: `method` is a NUL-terminated method name, `request` points to
/// `len` bytes of JSON (it may be null when `len` is 0). The answer is
/// `*out_len` bytes of JSON owned by the plugin until the host passes them
/// to `free`, or null (with `*out_len` 0) when the plugin has nothing to
/// say, which the host treats as an error. The pointers must be valid for
/// the call; the plugin keeps none of them.
pub type CallFn = unsafe extern "C" fn(
    method: *const c_char,
    request: *const u8,
    len: usize,
    out_len: *mut usize,
) -> *mut u8;

/// `free`: gives back an answer of `call`, with the length `call` gave.
pub type FreeFn = unsafe extern "C" fn(answer: *mut u8, len: usize);

/// What `call_async` answers through: `token` as the host gave it, and
/// `len` bytes of JSON at `answer`, valid only during this call (the host
/// copies them; the plugin frees them afterwards). berth's host ignores
/// (and logs) a second answer with the same token, or one with a token it
/// is not waiting on; other hosts need not.
pub type CompleteFn = unsafe extern "C" fn(token: *mut c_void, answer: *const u8, len: usize);

/// `call_async` (version 2): the same call as [`CallFn`], but it returns at
/// once, having blocked on nothing, and the answer goes to `complete` with
/// `token`, exactly once, on whichever thread the plugin likes, before or
/// after `call_async` returns. `method` and `request` are valid only during
/// `call_async` (the plugin copies what it keeps); `token` stays valid
/// until `complete` is called with it.
pub type CallAsyncFn = unsafe extern "C" fn(
    method: *const c_char,
    request: *const u8,
    len: usize,
    complete: CompleteFn,
    token: *mut c_void,
);

/// What `berth_plugin_v1` returns. `#[repr(C)]`; `abi_version` stays the
/// first field in every version.
#[repr(C)]
#[derive(Debug)]
pub struct PluginV1 {
    /// [`ABI_VERSION`] for this layout.
    pub abi_version: u32,
    /// The driver's name, NUL-terminated UTF-8.
    pub name: *const c_char,
    /// A [`CapabilitiesResponse`](crate::protocol::CapabilitiesResponse) as
    /// JSON, NUL-terminated UTF-8.
    pub capabilities: *const c_char,
    /// The one call: see [`CallFn`]. `None` (null) is refused by the host.
    pub call: Option<CallFn>,
    /// Frees an answer: see [`FreeFn`].
    pub free: Option<FreeFn>,
}

/// What `berth_plugin_v1` returns for version 2: version 1's table and
/// `call_async`. A host that speaks only version 1 refuses it by its
/// version, so the extra field is never read past the end of a version 1
/// table. `#[repr(C)]`.
#[repr(C)]
#[derive(Debug)]
pub struct PluginV2 {
    /// Version 1's fields, with `abi_version` 2.
    pub v1: PluginV1,
    /// The call without waiting: see [`CallAsyncFn`]. `None` (null) makes
    /// the host use `call`.
    pub call_async: Option<CallAsyncFn>,
}

/// An error answer: Docker's `{"Err": "..."}` plus, for berth, what kind
/// of error it is, so that the engine can tell a bad option (the user's
/// to fix) from a kernel failure.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorAnswer {
    /// The message; empty on success.
    #[serde(rename = "Err", default)]
    pub err: String,
    /// `invalid`, `not-found`, `conflict`, `unsupported`, `kernel`,
    /// `internal` or `panic`.
    #[serde(rename = "BerthKind", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}
