//! Shared-library plugins: `*.so` files in the plugin directories that
//! export `berth_plugin_v1` (the ABI is described in
//! [`berth_plugin::abi`]).
//!
//! Loading: each library is opened with `dlopen`, its entry point called,
//! its ABI version checked before anything else of its table is read, its
//! name and capabilities decoded. A library that fails any step is listed
//! with the reason and not used; the daemon goes on. One that loads is
//! pinned in memory for good (`RTLD_NODELETE`): its runtime's threads run
//! its code, so unloading it (on a reload that drops its driver) would
//! crash the daemon. For the same reason a library is never closed once
//! its entry point ran, even when it is refused after that (a bad version,
//! name or capabilities): only one refused before (no entry point) is
//! unloaded, so that a fixed file can be loaded on a reload.
//!
//! Answers through `call_async` come back by a token that is a number, not
//! an address: a plugin that calls `complete` twice for one call, late, or
//! with a token it never got is ignored (and logged), never a double free.
//!
//! Calling: the ABI versions 1 and 2 are loaded. `call` runs on a
//! blocking thread (`spawn_blocking`); the calls of an attach and a detach
//! of a version 2 plugin go through `call_async` instead, straight from the
//! engine's task, which the plugin wakes with the answer (no blocking
//! thread, two thread wake-ups fewer per call). Every call is bounded by a
//! timeout (10 s, or `BERTH_PLUGIN_TIMEOUT_MS` in the daemon's
//! environment). The two calls of an attach (`CreateEndpoint`, `Join`) and
//! of a detach (`Leave`, `DeleteEndpoint`) share one bound (and, through
//! `call`, one hop).
//! An answer that is missing, not JSON, of the wrong shape or `{"Err": …}`
//! becomes one line naming the plugin and the method. A failed
//! or timed-out attach (`CreateEndpoint`, `Join`) is rolled back with
//! `Leave` and `DeleteEndpoint`, a failed `CreateNetwork` with
//! `DeleteNetwork`; when a timed-out call answers after all, the rollback
//! runs again, so that what it made late is undone too. A plugin that
//! stays hung keeps one blocking thread (through `call_async`, only the
//! waiting task's token); the daemon keeps serving.
//!
//! Trust: a shared-library plugin runs inside the daemon with its
//! privileges. The boundary turns the faults the ABI can express (bad
//! answers, panics, hangs) into errors; it cannot guard against a library
//! that corrupts memory, nor one whose `call_async` blocks instead of
//! returning at once (it would hold one of the engine's runtime threads).

mod answers;
mod driver;
mod library;
mod load;

pub use self::answers::decode_answer;
pub use self::load::discover;
