//! Turning a [`NetworkDriver`] into a shared-library plugin: the serving
//! side of the ABI in [`berth_plugin::abi`], which
//! [`export_driver!`](crate::export_driver) wraps around any driver.
//!
//! # The plugin side
//!
//! The plugin runs inside the daemon's process, in the host's network
//! namespace: calls come on the engine's threads (its blocking threads for
//! `call`, its runtime's for `call_async`), which never enter another
//! namespace, and may come on several of them at once. Each loaded plugin
//! owns one tokio runtime (one worker, made at the first call, kept for the
//! life of the process); the trait's futures run on its worker, beside
//! rtnetlink's connection tasks. Methods that need neither the runtime nor
//! the kernel (`GetCapabilities`, `CreateEndpoint`, `EndpointOperInfo`,
//! `DeleteEndpoint`) are answered on the calling thread, before
//! `call_async` returns. The [`Context`](crate::Context) is made once: the host's
//! namespace and a netlink handle there, the [`Firewall`](crate::Firewall) (elements of the
//! shared `inet berth` table only), the kernel's [`Features`](crate::Features), and the
//! [`Networks`](crate::Networks) this plugin opened (a plugin sees only
//! its own). Each network is opened once, at its `CreateNetwork` (or, after
//! a restart of either side, at its first call: every request carries the
//! whole network), and its [`NetworkHandle`](crate::NetworkHandle) kept
//! until `DeleteNetwork`; `Validate` opens one and drops it. Sandboxes are opened from their `SandboxKey`, their netlink
//! sockets made by one long-lived thread of the plugin (not a new thread
//! each). A sandbox stays open while an endpoint of this plugin is in it,
//! and after its last one left until its pin is gone (the container was
//! removed; a sweeper looks every second), at most 32 of those: a second
//! network on one container, or the same container joining again, does
//! not open a second socket. A removed container's namespace is thus kept
//! for at most a second after its removal.
//!
//! # Lifetime
//!
//! The host keeps a plugin loaded until the process ends (it is opened
//! with `RTLD_NODELETE`): the plugin's runtime threads run the library's
//! code, and unloading it under them would crash the daemon. Replacing a
//! library file therefore takes effect at the next daemon start.

mod plugin;
mod sandboxes;

use std::ffi::{CStr, c_char, c_void};
use std::panic::{self, AssertUnwindSafe};
use std::sync::OnceLock;

use berth_plugin::abi::{ABI_VERSION, CallAsyncFn, CallFn, CompleteFn, ErrorAnswer, PluginV1, PluginV2};

pub use self::plugin::{Plugin, capabilities_answer};
use crate::{Error, NetworkDriver};

/// The answer for a driver's error, with its causes in the message and
/// its kind, so that the engine can tell a bad option (the user's to fix)
/// from a kernel failure.
pub fn error_answer(e: &Error) -> ErrorAnswer {
    ErrorAnswer {
        err: e.chain(),
        kind: Some(e.kind().as_str().into()),
    }
}

fn error_json(e: &Error) -> Vec<u8> {
    serde_json::to_vec(&error_answer(e)).unwrap_or_else(|_| br#"{"Err":"error"}"#.to_vec())
}

/// The text of a panic's payload.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

/// The answer for a panic of the driver; the engine names the plugin and
/// the method.
fn panic_json(p: &(dyn std::any::Any + Send)) -> Vec<u8> {
    let msg = format!("panic inside the plugin: {}", panic_message(p));
    serde_json::to_vec(&ErrorAnswer {
        err: msg,
        kind: Some("panic".into()),
    })
    .unwrap_or_default()
}

/// What a plugin's `berth_plugin_v1` hands out: one [`Plugin`] and its
/// [`PluginV1`] table, made at the first call.
/// [`export_driver!`](crate::export_driver) puts one in a `static`.
pub struct Slot {
    plugin: OnceLock<Option<Plugin>>,
    table: OnceLock<Table>,
}

/// The table, which holds pointers into the [`Plugin`] beside it.
struct Table(PluginV2);

// SAFETY: the pointers in the table point to the `CString`s of the plugin
// in the same `static` `Slot`, which are never changed or freed; the
// function pointers are plain code addresses.
unsafe impl Sync for Table {}
// SAFETY: as for `Sync`.
unsafe impl Send for Table {}

impl Default for Slot {
    fn default() -> Self {
        Self::new()
    }
}

impl Slot {
    /// An empty slot, for a `static`.
    pub const fn new() -> Self {
        Self {
            plugin: OnceLock::new(),
            table: OnceLock::new(),
        }
    }

    /// The body of `berth_plugin_v1`: makes the driver with `make` (once),
    /// and returns the table (version 2) whose `call` is `call` and whose
    /// `call_async` is `call_async`, or null when `make` panicked.
    pub fn entry(
        &'static self,
        make: fn() -> Box<dyn NetworkDriver>,
        call: CallFn,
        call_async: CallAsyncFn,
    ) -> *const PluginV1 {
        let table = panic::catch_unwind(AssertUnwindSafe(|| {
            let plugin = self
                .plugin
                .get_or_init(|| panic::catch_unwind(make).ok().map(Plugin::new))
                .as_ref()?;
            Some(self.table.get_or_init(|| {
                Table(PluginV2 {
                    v1: PluginV1 {
                        abi_version: ABI_VERSION,
                        name: plugin.name().as_ptr(),
                        capabilities: plugin.capabilities().as_ptr(),
                        call: Some(call),
                        free: Some(free),
                    },
                    call_async: Some(call_async),
                })
            }))
        }));
        match table {
            // The whole table's address: the host reads past `v1` in version 2.
            Ok(Some(t)) => std::ptr::from_ref(&t.0).cast::<PluginV1>(),
            _ => std::ptr::null(),
        }
    }

    /// The body of `call_async`.
    ///
    /// # Safety
    /// The contract of [`CallAsyncFn`]: `method` NUL-terminated or null,
    /// `request` valid for `len` bytes, `token` valid for `complete`.
    pub unsafe fn call_async(
        &'static self,
        method: *const c_char,
        request: *const u8,
        len: usize,
        complete: CompleteFn,
        token: *mut c_void,
    ) {
        let token = Token(token);
        let reply = move |answer: Vec<u8>| {
            let token = token; // the whole `Token`, which is `Send`
            // SAFETY: `complete` and `token` as the host gave them, called
            // once; the answer is valid for the call.
            unsafe { complete(token.0, answer.as_ptr(), answer.len()) }
        };
        match self.plugin.get().and_then(Option::as_ref) {
            None => reply(error_json(&Error::NotStarted)),
            Some(_) if method.is_null() => reply(error_json(&Error::NoMethod)),
            Some(p) => {
                // SAFETY: non-null and NUL-terminated, by the caller's contract.
                let m = unsafe { CStr::from_ptr(method) }.to_string_lossy().into_owned();
                let req = if request.is_null() || len == 0 {
                    Vec::new()
                } else {
                    // SAFETY: `request` is valid for `len` bytes, by the caller's contract.
                    unsafe { std::slice::from_raw_parts(request, len) }.to_vec()
                };
                p.answer_async(m, req, reply);
            }
        }
    }

    /// The body of `call`.
    ///
    /// # Safety
    /// The contract of [`CallFn`]: `method` NUL-terminated, `request` valid
    /// for `len` bytes, `out_len` writable.
    pub unsafe fn call(
        &'static self,
        method: *const c_char,
        request: *const u8,
        len: usize,
        out_len: *mut usize,
    ) -> *mut u8 {
        if out_len.is_null() {
            return std::ptr::null_mut();
        }
        let answer = match self.plugin.get().and_then(Option::as_ref) {
            None => error_json(&Error::NotStarted),
            Some(_) if method.is_null() => error_json(&Error::NoMethod),
            Some(p) => {
                // SAFETY: non-null and NUL-terminated, by the caller's contract.
                let m = unsafe { CStr::from_ptr(method) }.to_string_lossy();
                let req: &[u8] = if request.is_null() || len == 0 {
                    &[]
                } else {
                    // SAFETY: `request` is valid for `len` bytes, by the caller's contract.
                    unsafe { std::slice::from_raw_parts(request, len) }
                };
                p.answer(&m, req)
            }
        };
        // SAFETY: `out_len` is non-null and writable, by the caller's contract.
        unsafe { into_raw(answer, out_len) }
    }
}

/// The host's token of a `call_async`.
struct Token(*mut c_void);

// SAFETY: the contract of `CallAsyncFn`: the token may be given back to
// `complete` from any thread.
unsafe impl Send for Token {}

/// Hands an answer to the host: leaks it as a boxed slice, whose length
/// `free` gets back.
///
/// # Safety
/// `out_len` must be valid for a write.
unsafe fn into_raw(answer: Vec<u8>, out_len: *mut usize) -> *mut u8 {
    let boxed = answer.into_boxed_slice();
    // SAFETY: the caller guarantees `out_len` is writable.
    unsafe { *out_len = boxed.len() };
    Box::into_raw(boxed).cast::<u8>()
}

/// The `free` of every plugin made with [`export_driver!`](crate::export_driver).
///
/// # Safety
/// `answer` and `len` must be what this plugin's `call` returned, and each
/// answer is freed once.
pub unsafe extern "C" fn free(answer: *mut u8, len: usize) {
    if answer.is_null() {
        return;
    }
    // SAFETY: `answer` came from `into_raw` as a boxed slice of `len` bytes.
    drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(answer, len)) });
}

/// Turns a value of a type that implements [`NetworkDriver`] into a
/// shared-library plugin: defines the `berth_plugin_v1` entry point (see
/// [`export`](crate::export)). Use it once, in the root of a `cdylib`:
///
/// ```ignore
/// berth_core::export_driver!(Ptp::default());
/// ```
///
/// The expression is evaluated once, at the first call of the entry point.
#[macro_export]
macro_rules! export_driver {
    ($driver:expr) => {
        /// The entry point berth's engine loads: see `berth_plugin::abi`.
        #[unsafe(no_mangle)]
        pub extern "C" fn berth_plugin_v1() -> *const $crate::abi::PluginV1 {
            static SLOT: $crate::export::Slot = $crate::export::Slot::new();
            unsafe extern "C" fn call(
                method: *const ::std::ffi::c_char,
                request: *const u8,
                len: usize,
                out_len: *mut usize,
            ) -> *mut u8 {
                // SAFETY: the host keeps the contract of `CallFn`, which this forwards unchanged.
                unsafe { SLOT.call(method, request, len, out_len) }
            }
            unsafe extern "C" fn call_async(
                method: *const ::std::ffi::c_char,
                request: *const u8,
                len: usize,
                complete: $crate::abi::CompleteFn,
                token: *mut ::std::ffi::c_void,
            ) {
                // SAFETY: the host keeps the contract of `CallAsyncFn`, which this forwards unchanged.
                unsafe { SLOT.call_async(method, request, len, complete, token) }
            }
            fn make() -> ::std::boxed::Box<dyn $crate::NetworkDriver> {
                ::std::boxed::Box::new($driver)
            }
            SLOT.entry(make, call, call_async)
        }
    };
}

#[cfg(test)]
mod tests {
    use std::ffi::CString;
    use std::sync::{Arc, mpsc};
    use std::time::Duration;

    use berth_plugin::protocol::{CapabilitiesResponse, network_request};

    use super::*;
    use crate::{Attachment, Capabilities, Context, Endpoint, Network, NetworkHandle, Result, async_trait};

    struct Toy;

    struct ToyNet(Network);

    #[async_trait]
    impl NetworkDriver for Toy {
        fn name(&self) -> &str {
            "toy"
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities {
                options: &["colour"],
                ..Capabilities::own_sandbox()
            }
        }
        async fn open(&self, net: &Network) -> Result<Arc<dyn NetworkHandle>> {
            if net.options.get("colour").is_some_and(|c| c == "boom") {
                panic!("boom");
            }
            crate::check_options("toy", &net.options, &["colour"])?;
            Ok(Arc::new(ToyNet(net.clone())))
        }
    }

    #[async_trait]
    impl NetworkHandle for ToyNet {
        fn network(&self) -> &Network {
            &self.0
        }
        async fn create(&self, _: &Context) -> Result<()> {
            Ok(())
        }
        async fn delete(&self, _: &Context) -> Result<()> {
            Ok(())
        }
        async fn attach(&self, _: &Context, _: &Endpoint<'_>) -> Result<Attachment> {
            Ok(Attachment::default())
        }
        async fn detach(&self, _: &Context, _: &Endpoint<'_>) -> Result<()> {
            Ok(())
        }
    }

    crate::export_driver!(Toy);

    fn call(m: &str, req: &[u8]) -> Vec<u8> {
        let t = berth_plugin_v1();
        assert!(!t.is_null());
        // SAFETY: the table is static; the arguments are valid for the call.
        unsafe {
            let t = &*t;
            let m = CString::new(m).unwrap();
            let mut len = 0;
            let p = (t.call.unwrap())(m.as_ptr(), req.as_ptr(), req.len(), &mut len);
            assert!(!p.is_null());
            let out = std::slice::from_raw_parts(p, len).to_vec();
            (t.free.unwrap())(p, len);
            out
        }
    }

    fn net(opts: &[(&str, &str)]) -> Network {
        Network {
            id: "0".repeat(64),
            name: "n".into(),
            driver: "toy".into(),
            options: opts.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
            ipam: vec![],
            ipv6: false,
            internal: false,
        }
    }

    fn err(answer: &[u8]) -> ErrorAnswer {
        serde_json::from_slice(answer).unwrap()
    }

    #[test]
    fn the_table_names_the_driver_and_its_capabilities() {
        // SAFETY: the table and its strings are static.
        let t = unsafe { &*berth_plugin_v1() };
        assert_eq!(t.abi_version, ABI_VERSION);
        // SAFETY: NUL-terminated strings owned by the static slot.
        let (name, caps) = unsafe { (CStr::from_ptr(t.name), CStr::from_ptr(t.capabilities)) };
        assert_eq!(name.to_str().unwrap(), "toy");
        let caps: CapabilitiesResponse = serde_json::from_slice(caps.to_bytes()).unwrap();
        assert_eq!(caps.scope, "local");
        assert_eq!(caps.berth.unwrap().options, ["colour"]);
        assert_eq!(call("GetCapabilities", b""), t_caps());
    }

    fn t_caps() -> Vec<u8> {
        // SAFETY: as above.
        unsafe { CStr::from_ptr((*berth_plugin_v1()).capabilities) }
            .to_bytes()
            .to_vec()
    }

    #[test]
    fn bad_requests_and_panics_become_error_answers() {
        let e = err(&call("Join", b"not json"));
        assert!(e.err.contains("Join: the request does not decode"), "{e:?}");
        assert_eq!(e.kind.as_deref(), Some("invalid"));
        let e = err(&call("Fly", b"{}"));
        assert!(e.err.contains("unknown method \"Fly\""), "{e:?}");
        let e = err(&call("Leave", br#"{"NetworkID":"n","EndpointID":"e"}"#));
        assert!(e.err.contains("no Berth member"), "{e:?}");
        let boom = serde_json::to_vec(&network_request(&net(&[("colour", "boom")]))).unwrap();
        // Validate before it touches anything: CreateNetwork validates too.
        let e = err(&call("CreateNetwork", &boom));
        assert_eq!(e.kind.as_deref(), Some("panic"), "{e:?}");
        assert_eq!(e.err, "panic inside the plugin: boom");
        let bad = serde_json::to_vec(&network_request(&net(&[("shape", "round")]))).unwrap();
        let e = err(&call("CreateNetwork", &bad));
        assert_eq!(e.kind.as_deref(), Some("invalid"));
        assert!(e.err.contains("unknown option \"shape\""), "{e:?}");
        assert!(err(&call("CreateEndpoint", b"{}")).err.is_empty());
    }

    /// `complete` for the tests: the token is a boxed sender, taken back once.
    unsafe extern "C" fn complete(token: *mut c_void, answer: *const u8, len: usize) {
        // SAFETY: made by `Box::into_raw` in `call_async` below, given back once.
        let tx = unsafe { Box::from_raw(token.cast::<mpsc::Sender<Vec<u8>>>()) };
        // SAFETY: valid for `len` bytes during this call.
        let _ = tx.send(unsafe { std::slice::from_raw_parts(answer, len) }.to_vec());
    }

    /// One `call_async` through the table; the answer and how many times
    /// `complete` was called within 10 s.
    fn call_async(m: &str, req: &[u8]) -> (Vec<u8>, usize) {
        // SAFETY: the table is static and version 2.
        let t = unsafe { &*berth_plugin_v1().cast::<PluginV2>() };
        assert_eq!(t.v1.abi_version, 2);
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let token = Box::into_raw(Box::new(tx)).cast::<c_void>();
        let m = CString::new(m).unwrap();
        // SAFETY: the arguments are valid for the call, the token until `complete`.
        unsafe { (t.call_async.unwrap())(m.as_ptr(), req.as_ptr(), req.len(), complete, token) };
        let first = rx.recv_timeout(Duration::from_secs(10)).expect("no answer");
        // The sender went with the first `complete`: a second is impossible.
        let more = rx.recv_timeout(Duration::from_millis(50)).into_iter().count();
        (first, 1 + more)
    }

    #[test]
    fn call_async_answers_once_like_call() {
        assert_eq!(call_async("GetCapabilities", b""), (t_caps(), 1));
        let (a, n) = call_async("CreateEndpoint", b"{}");
        assert_eq!((n, err(&a).err.as_str()), (1, ""));
        // These go through the runtime.
        let (a, n) = call_async("Join", b"not json");
        assert_eq!(n, 1);
        assert!(err(&a).err.contains("Join: the request does not decode"), "{a:?}");
        let (a, _) = call_async("Fly", b"{}");
        assert!(err(&a).err.contains("unknown method \"Fly\""));
        let boom = serde_json::to_vec(&network_request(&net(&[("colour", "boom")]))).unwrap();
        let (a, n) = call_async("Validate", &boom);
        assert_eq!(n, 1);
        assert_eq!(err(&a).kind.as_deref(), Some("panic"));
        assert_eq!(err(&a).err, "panic inside the plugin: boom");
        let (a, _) = call_async(
            "Validate",
            &serde_json::to_vec(&network_request(&net(&[]))).unwrap(),
        );
        assert_eq!(err(&a), ErrorAnswer::default());
        // A null method is answered, not dereferenced.
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let token = Box::into_raw(Box::new(tx)).cast::<c_void>();
        // SAFETY: as above; a null method is allowed by the contract.
        unsafe {
            let t = &*berth_plugin_v1().cast::<PluginV2>();
            (t.call_async.unwrap())(std::ptr::null(), std::ptr::null(), 0, complete, token);
        }
        let a = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(err(&a).err.contains("no method name"), "{a:?}");
    }
}
