//! A loaded library and the two ways of calling it: `call` on a blocking
//! thread, `call_async` answered by the plugin's runtime.

use std::ffi::{CString, c_void};
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

/// The `complete` the host gives `call_async`: `token` is the boxed sender
/// that `Lib::call_async` made, taken back here, once.
///
/// # Safety
/// `token` comes from `Lib::call_async` and is given back once; `answer`
/// is null or valid for `len` bytes during the call.
unsafe extern "C" fn complete(token: *mut c_void, answer: *const u8, len: usize) {
    // SAFETY: made by `Box::into_raw` in `Lib::call_async`, given back once
    // (the contract of `CallAsyncFn`).
    let tx = unsafe { Box::from_raw(token.cast::<Answer>()) };
    let bytes = (!answer.is_null()).then(|| {
        // SAFETY: `answer` is valid for `len` bytes during this call.
        unsafe { std::slice::from_raw_parts(answer, len) }.to_vec()
    });
    // The engine may have stopped waiting (a timeout): then nobody reads it.
    let _ = tx.send(bytes);
}

/// Where `complete` puts an answer.
type Answer = tokio::sync::oneshot::Sender<Option<Vec<u8>>>;

impl Lib {
    /// One call through `call_async`, awaited without a blocking thread:
    /// the plugin's runtime wakes this task when the answer is there.
    /// `None` when the plugin answered nothing.
    pub(super) async fn call_async(&self, f: CallAsyncFn, method: &str, request: &[u8]) -> Option<Vec<u8>> {
        let m = CString::new(method).ok()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<Option<Vec<u8>>>();
        let token = Box::into_raw(Box::new(tx)).cast::<c_void>();
        // SAFETY: the contract of `CallAsyncFn`: `m` is NUL-terminated,
        // `request` valid for its length, both for the call; `token` stays
        // valid until `complete` takes it back.
        unsafe { f(m.as_ptr(), request.as_ptr(), request.len(), complete, token) };
        rx.await.ok().flatten()
    }
}
