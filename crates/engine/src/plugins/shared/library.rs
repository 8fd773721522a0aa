//! A loaded library and the two ways of calling it: `call` on a blocking
//! thread, `call_async` answered by the plugin's runtime.

use std::collections::BTreeMap;
use std::ffi::{CString, c_void};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use berth_core::Capabilities;
use berth_plugin::abi::{CallAsyncFn, CallFn, FreeFn};

/// A loaded library: what it said of itself and its two functions.
pub(super) struct Lib {
    pub(super) name: String,
    pub(super) caps: Capabilities,
    pub(super) call: CallFn,
    pub(super) free: FreeFn,
    /// Version 2's call without waiting, used for attach and detach.
    pub(super) call_async: Option<CallAsyncFn>,
    pub(super) timeout: Duration,
    /// Keeps the library loaded (it is pinned anyway: see the module docs).
    pub(super) _lib: libloading::Library,
}

impl Lib {
    /// One call, on the calling (blocking) thread. `None` when the plugin
    /// answered a null pointer.
    pub(super) fn call_blocking(&self, method: &str, request: &[u8]) -> Option<Vec<u8>> {
        let m = CString::new(method).ok()?;
        let mut len = 0usize;
        // SAFETY: the contract of `CallFn`: `m` is NUL-terminated, `request`
        // is valid for its length and `len` is writable, all for the call.
        let answer = unsafe { (self.call)(m.as_ptr(), request.as_ptr(), request.len(), &mut len) };
        if answer.is_null() {
            return None;
        }
        // SAFETY: a non-null answer is `len` readable bytes, owned by the
        // plugin until `free`.
        let out = unsafe { std::slice::from_raw_parts(answer, len) }.to_vec();
        // SAFETY: the answer of `call` with its length, freed once.
        unsafe { (self.free)(answer, len) };
        Some(out)
    }
}

/// The calls of every library waiting for their answer through
/// `call_async`, by token. A token is a number from [`NEXT_TOKEN`], never
/// an address: `complete` takes its sender out of this map, so a second
/// `complete` with the same token, one for a call that stopped waiting, or
/// a token the host never gave finds nothing and is ignored. Nothing a
/// plugin passes back is ever freed by the host.
static WAITING: Mutex<BTreeMap<usize, Answer>> = Mutex::new(BTreeMap::new());

/// The next token; tokens are never reused (a `usize` does not wrap in the
/// life of a daemon), so a late `complete` cannot answer a newer call.
static NEXT_TOKEN: AtomicUsize = AtomicUsize::new(1);

/// Where `complete` puts an answer.
type Answer = tokio::sync::oneshot::Sender<Option<Vec<u8>>>;

/// The `complete` the host gives `call_async`: hands the answer to the
/// call waiting under `token`, if one is. Never unwinds (a panic here
/// would abort the daemon: it is called from the plugin's C frames).
///
/// # Safety
/// `answer` is null or valid for `len` bytes during the call.
unsafe extern "C" fn complete(token: *mut c_void, answer: *const u8, len: usize) {
    let waiting = WAITING
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&token.addr());
    let Some(tx) = waiting else {
        tracing::warn!(
            "a shared-library plugin answered a call that is not waiting (a second answer to one call, or one for a call that was given up): ignored"
        );
        return;
    };
    let bytes = (!answer.is_null()).then(|| {
        // SAFETY: `answer` is valid for `len` bytes during this call.
        unsafe { std::slice::from_raw_parts(answer, len) }.to_vec()
    });
    // The engine may have stopped waiting: then nobody reads it.
    let _ = tx.send(bytes);
}

/// A call's place in [`WAITING`], taken out when the call stops waiting
/// (answered or given up), so that a plugin that never answers leaks
/// nothing of the host's.
struct Waiting(usize);

impl Waiting {
    fn new(tx: Answer) -> Self {
        let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
        WAITING
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token, tx);
        Self(token)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        WAITING.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.0);
    }
}

impl Lib {
    /// One call through `call_async`, awaited without a blocking thread:
    /// the plugin's runtime wakes this task when the answer is there.
    /// `None` when the plugin answered nothing.
    pub(super) async fn call_async(&self, f: CallAsyncFn, method: &str, request: &[u8]) -> Option<Vec<u8>> {
        let m = CString::new(method).ok()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<Option<Vec<u8>>>();
        let waiting = Waiting::new(tx);
        let token = std::ptr::without_provenance_mut::<c_void>(waiting.0);
        // SAFETY: the contract of `CallAsyncFn`: `m` is NUL-terminated,
        // `request` valid for its length, both for the call; `token` is a
        // number the plugin only hands back.
        unsafe { f(m.as_ptr(), request.as_ptr(), request.len(), complete, token) };
        let answer = rx.await.ok().flatten();
        drop(waiting);
        answer
    }
}
