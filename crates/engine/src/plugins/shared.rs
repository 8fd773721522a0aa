//! Shared-library plugins: `*.so` files in the plugin directories that
//! export `berth_plugin_v1` (the ABI is described in
//! [`berth_core::plugin`]).
//!
//! Loading: each library is opened with `dlopen`, its entry point called,
//! its ABI version checked before anything else of its table is read, its
//! name and capabilities decoded. A library that fails any step is listed
//! with the reason and not used; the daemon goes on. One that loads is
//! pinned in memory for good (`RTLD_NODELETE`): its runtime's threads run
//! its code, so unloading it (on a reload that drops its driver) would
//! crash the daemon.
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

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, c_void};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_core::plugin::{
    ABI_VERSION, CallAsyncFn, CallFn, EntryFn, ErrorAnswer, FreeFn, MIN_ABI_VERSION, PluginV1, PluginV2,
    SYMBOL, network_request,
};
use berth_core::protocol::{
    BerthEndpoint, BerthNetwork, CapabilitiesResponse, CreateEndpointRequest, CreateEndpointResponse,
    DeleteNetworkRequest, EndpointInterface, EndpointRequest, ErrorResponse, JoinRequest, JoinResponse,
    method,
};
use berth_core::{
    Attachment, Capabilities, Context, Endpoint, Error, Network, NetworkDriver, NetworkHandle, Ports, Result,
    SandboxKind, Scope, async_trait,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Found, PluginConfig, PluginInfo, one_line};

/// What `plugin ls` calls this transport.
pub const TRANSPORT: &str = "shared-library";

/// Loads the shared-library plugins of the plugin directories, in file
/// name order. Directories that do not exist are skipped.
pub async fn discover(cfg: &PluginConfig) -> Vec<Found> {
    let timeout = super::timeout();
    let mut found = Vec::new();
    for dir in &cfg.plugin_dirs {
        let Ok(rd) = std::fs::read_dir(dir) else { continue };
        let mut files: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "so") && p.is_file())
            .collect();
        files.sort();
        for path in files {
            let p = path.clone();
            // dlopen runs the library's initialisers, and the entry point is
            // the plugin's code: both off the runtime, both bounded.
            let loading = tokio::task::spawn_blocking(move || load(&p, timeout));
            found.push(match tokio::time::timeout(timeout, loading).await {
                Ok(Ok(f)) => f,
                Ok(Err(e)) => refused(&path, None, format!("refused: loading it failed: {e}")),
                Err(_) => refused(
                    &path,
                    None,
                    format!(
                        "refused: loading it and calling {SYMBOL} did not finish within {}",
                        super::show_duration(timeout)
                    ),
                ),
            });
        }
    }
    found
}

/// The driver name a library would have, for listing one that did not load.
fn stem(path: &Path) -> String {
    let s = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    s.strip_prefix("lib").map(str::to_owned).unwrap_or(s)
}

fn refused(path: &Path, abi: Option<u32>, status: String) -> Found {
    Found {
        info: PluginInfo {
            name: stem(path),
            transport: TRANSPORT.into(),
            path: path.display().to_string(),
            abi,
            status,
        },
        driver: None,
    }
}

/// The message of a libloading error (its `dlerror` text, where there is one).
fn dl_error(e: &libloading::Error) -> String {
    match std::error::Error::source(e) {
        Some(s) => one_line(&s.to_string()),
        None => e.to_string(),
    }
}

/// Whether a plugin's name can be a `-d` value.
fn check_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "refused: driver name {:?} is not valid (accepted: 1-64 of a-z, 0-9, '-', '_', '.')",
            one_line(name)
        ))
    }
}

/// Loads one library and checks it; blocking.
fn load(path: &Path, timeout: Duration) -> Found {
    use libloading::os::unix::{Library as Unix, RTLD_LOCAL, RTLD_NOW};
    let Some(file) = path.to_str() else {
        return refused(path, None, "refused: its path is not UTF-8".into());
    };
    // SAFETY: dlopen runs the library's initialisers. A file in a plugin
    // directory is trusted code that the administrator installed for this
    // daemon; Rust cdylibs (what export_driver! makes) have none that
    // matter. Without RTLD_NODELETE yet: a library refused below is
    // unloaded again, so that a fixed file can be loaded on a reload.
    let lib = match unsafe { Unix::open(Some(file), RTLD_NOW | RTLD_LOCAL) } {
        Ok(lib) => libloading::Library::from(lib),
        Err(e) => return refused(path, None, format!("refused: cannot load it: {}", dl_error(&e))),
    };
    // SAFETY: the symbol is declared by the ABI with exactly this type: an
    // `extern "C"` function without arguments returning a pointer.
    let entry: EntryFn = match unsafe { lib.get::<EntryFn>(SYMBOL) } {
        Ok(f) => *f,
        Err(_) => return refused(path, None, format!("refused: no {SYMBOL} symbol")),
    };
    // SAFETY: calling the entry point as the ABI declares it; the plugin
    // catches its own panics (a library that does not aborts the daemon:
    // Rust stops unwinding at an `extern "C"` boundary).
    let table = unsafe { entry() };
    if table.is_null() {
        return refused(
            path,
            None,
            format!("refused: {SYMBOL} returned no table (the plugin did not start)"),
        );
    }
    // SAFETY: non-null, and every version of the table starts with its
    // `u32` version, which must be read before anything else.
    let abi = unsafe { table.cast::<u32>().read() };
    if !(MIN_ABI_VERSION..=ABI_VERSION).contains(&abi) {
        return refused(
            path,
            Some(abi),
            format!("refused: ABI version {abi}, this berth speaks {MIN_ABI_VERSION} to {ABI_VERSION}"),
        );
    }
    // SAFETY: every version starts with the fields of `PluginV1`, valid
    // while the library is loaded (and it stays loaded while `lib` lives).
    let t: &PluginV1 = unsafe { &*table };
    let call_async = if abi >= 2 {
        // SAFETY: version 2 is laid out as `PluginV2`, whose first field is
        // the `PluginV1` above; the pointer is the whole table's.
        unsafe { (*table.cast::<PluginV2>()).call_async }
    } else {
        None
    };
    let (Some(call), Some(free)) = (t.call, t.free) else {
        return refused(
            path,
            Some(abi),
            "refused: its table has no call or no free function".into(),
        );
    };
    let text = |p: *const std::ffi::c_char| {
        (!p.is_null()).then(|| {
            // SAFETY: non-null pointers in the table are NUL-terminated
            // strings owned by the plugin for as long as it is loaded.
            let s = unsafe { CStr::from_ptr(p) };
            s.to_string_lossy().into_owned()
        })
    };
    let Some(name) = text(t.name) else {
        return refused(path, Some(abi), "refused: its table has no name".into());
    };
    if let Err(why) = check_name(&name) {
        return refused(path, Some(abi), why);
    }
    let caps = text(t.capabilities).unwrap_or_default();
    let caps = match decode::<CapabilitiesResponse>(&name, "its capabilities", Some(caps.as_bytes()))
        .map_err(|e| e.to_string())
        .and_then(|c| capabilities(&c))
    {
        Ok(c) => c,
        Err(why) => return refused(path, Some(abi), format!("refused: {}", one_line(&why))),
    };
    // Pin it: RTLD_NOLOAD only raises the count of the library already
    // loaded, and RTLD_NODELETE keeps it mapped after every handle closed.
    // SAFETY: the library is loaded already; no initialiser runs again.
    if let Err(e) = unsafe {
        Unix::open(
            Some(file),
            RTLD_NOW | RTLD_LOCAL | libc::RTLD_NOLOAD | libc::RTLD_NODELETE,
        )
    } {
        return refused(
            path,
            Some(abi),
            format!("refused: cannot pin it in memory: {}", dl_error(&e)),
        );
    }
    let info = PluginInfo {
        name: name.clone(),
        transport: TRANSPORT.into(),
        path: path.display().to_string(),
        abi: Some(abi),
        status: "loaded".into(),
    };
    let lib = Lib {
        name,
        caps,
        call,
        free,
        call_async,
        timeout,
        _lib: lib,
    };
    Found {
        info,
        driver: Some(Arc::new(SharedPlugin(Arc::new(lib)))),
    }
}

/// Option lists, leaked once per distinct list: `Capabilities` wants
/// `'static` strings, and reloads must not leak again.
fn intern(options: &[String]) -> &'static [&'static str] {
    static SEEN: Mutex<Vec<&'static [&'static str]>> = Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(s) = seen
        .iter()
        .find(|s| s.iter().copied().eq(options.iter().map(String::as_str)))
    {
        return s;
    }
    let list: Vec<&'static str> = options
        .iter()
        .map(|o| &*Box::leak(o.clone().into_boxed_str()))
        .collect();
    let list: &'static [&'static str] = Box::leak(list.into_boxed_slice());
    seen.push(list);
    list
}

/// A plugin's declared capabilities as the engine's.
pub fn capabilities(c: &CapabilitiesResponse) -> std::result::Result<Capabilities, String> {
    let scope = match c.scope.as_str() {
        "local" | "" => Scope::Local,
        "global" => Scope::Global,
        other => {
            return Err(format!(
                "unknown scope {other:?} in its capabilities (accepted: local, global)"
            ));
        }
    };
    let b = c
        .berth
        .as_ref()
        .ok_or("its capabilities have no Berth member (sandbox, IPAM, options)")?;
    let sandbox = match b.sandbox.as_str() {
        "own" => SandboxKind::Own,
        "host" => SandboxKind::Host,
        "isolated" => SandboxKind::Isolated,
        other => {
            return Err(format!(
                "unknown sandbox kind {other:?} in its capabilities (accepted: own, host, isolated)"
            ));
        }
    };
    Ok(Capabilities {
        scope,
        sandbox,
        ipam: b.ipam,
        options: intern(&b.options),
        multi_network: b.multi_network,
        ports: b.ports.unwrap_or(Ports::Unsupported),
        dns: b.dns.unwrap_or(sandbox == SandboxKind::Own),
        parent: b.parent,
        aliases: &[],
    })
}

/// Decodes a plugin's answer to `method`: nothing, bytes that are not
/// JSON, `{"Err": "…"}` and JSON of another shape are each one line of
/// error naming the plugin and the method. Never panics.
pub fn decode<T: DeserializeOwned>(plugin: &str, method: &str, answer: Option<&[u8]>) -> Result<T> {
    let bytes = match answer {
        None | Some([]) => {
            return Err(Error::Internal(format!(
                "plugin {plugin}: {method} answered nothing"
            )));
        }
        Some(b) => b,
    };
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        let start = String::from_utf8_lossy(&bytes[..bytes.len().min(40)]).into_owned();
        Error::Internal(format!(
            "plugin {plugin}: {method} answered with something that is not JSON: {e} (it begins {:?})",
            one_line(&start)
        ))
    })?;
    let not_shaped = |e: String| {
        Error::Internal(format!(
            "plugin {plugin}: {method} answered JSON that is not a {method} answer: {}",
            one_line(&e)
        ))
    };
    if let Some(err) = v.get("Err") {
        match err {
            Value::String(s) if !s.is_empty() => {
                let kind = v.get("BerthKind").and_then(Value::as_str).map(str::to_owned);
                let answer = ErrorAnswer {
                    err: String::new(),
                    kind,
                };
                let msg = one_line(s);
                // The driver's verdict on the user's options reads as a
                // built-in driver's would; everything else names the plugin.
                let msg = if method == method::VALIDATE && answer.kind.as_deref() == Some("invalid") {
                    msg
                } else {
                    format!("plugin {plugin}: {method} failed: {msg}")
                };
                return Err(answer.into_error(msg));
            }
            Value::String(_) | Value::Null => {}
            _ => return Err(not_shaped("\"Err\" is not a string".into())),
        }
    }
    T::deserialize(v).map_err(|e| not_shaped(e.to_string()))
}

/// Decodes an answer to `method` the way the engine does, with the checks
/// that follow decoding (capabilities). For the fuzzer and the tests:
/// whatever the bytes, it returns and never panics.
pub fn decode_answer(method: &str, answer: &[u8]) -> Result<()> {
    let a = Some(answer);
    match method {
        method::GET_CAPABILITIES => {
            let c: CapabilitiesResponse = decode("fuzz", method, a)?;
            capabilities(&c).map(drop).map_err(Error::Internal)
        }
        method::CREATE_ENDPOINT => decode::<CreateEndpointResponse>("fuzz", method, a).map(drop),
        method::JOIN => decode::<JoinResponse>("fuzz", method, a).map(drop),
        _ => decode::<ErrorResponse>("fuzz", method, a).map(drop),
    }
}

/// A loaded library: what it said of itself and its two functions.
struct Lib {
    name: String,
    caps: Capabilities,
    call: CallFn,
    free: FreeFn,
    /// Version 2's call without waiting, used for attach and detach.
    call_async: Option<CallAsyncFn>,
    timeout: Duration,
    /// Keeps the library loaded (it is pinned anyway: see the module docs).
    _lib: libloading::Library,
}

impl Lib {
    /// One call, on the calling (blocking) thread. `None` when the plugin
    /// answered a null pointer.
    fn call_blocking(&self, method: &str, request: &[u8]) -> Option<Vec<u8>> {
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
    async fn call_async(&self, f: CallAsyncFn, method: &str, request: &[u8]) -> Option<Vec<u8>> {
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

/// Calls that did not finish in time and still run on their blocking
/// thread: done when they return.
type Late = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A failed call: the error, and the call itself when it timed out and
/// may still answer.
struct Failed {
    err: Error,
    late: Option<Late>,
}

impl Failed {
    /// The plugin refused before it made anything (a bad option, a name in
    /// use): there is nothing to roll back.
    fn refused_up_front(&self) -> bool {
        self.late.is_none()
            && matches!(
                self.err,
                Error::Invalid(_) | Error::Conflict(_) | Error::Unsupported(_) | Error::NotFound(_)
            )
    }
}

/// Appends `note` to an error's message, keeping its kind.
fn annotate(e: Error, note: &str) -> Error {
    match e {
        Error::Invalid(m) => Error::Invalid(m + note),
        Error::NotFound(m) => Error::NotFound(m + note),
        Error::Conflict(m) => Error::Conflict(m + note),
        Error::Unsupported(m) => Error::Unsupported(m + note),
        Error::Kernel(m, io) => Error::Kernel(m + note, io),
        other => Error::Internal(other.chain() + note),
    }
}

fn json(v: &impl Serialize) -> Result<Arc<Vec<u8>>> {
    serde_json::to_vec(v)
        .map(Arc::new)
        .map_err(|e| Error::Internal(format!("encoding a plugin request: {e}")))
}

/// Decodes the answer of one call of several in a row (given the plugin's
/// name and the method); `Some` for the answer to keep.
type Check<T> = fn(&str, &'static str, Option<&[u8]>) -> Result<Option<T>>;

/// The rollback steps: a method and its request.
type Steps = Vec<(&'static str, Arc<Vec<u8>>)>;

/// A shared-library plugin as a [`NetworkDriver`].
pub struct SharedPlugin(Arc<Lib>);

impl SharedPlugin {
    /// Runs `f`, one or more calls of the plugin in a row, on one blocking
    /// thread, bounded as a whole by the timeout: an attach (`CreateEndpoint`
    /// then `Join`) costs one hop off the runtime, not two. `f` stores in
    /// its `AtomicUsize` the index in `methods` of the call it is making,
    /// which the message names when time runs out.
    async fn blocking<T: Send + 'static>(
        &self,
        methods: &[&'static str],
        f: impl FnOnce(&Lib, &AtomicUsize) -> Result<T> + Send + 'static,
    ) -> std::result::Result<T, Failed> {
        let lib = self.0.clone();
        let at = Arc::new(AtomicUsize::new(0));
        let now = at.clone();
        let task = tokio::task::spawn_blocking(move || f(&lib, &now));
        let name = self.0.name.clone();
        let (which, names) = (at.clone(), methods.to_vec());
        let done = async move {
            task.await.unwrap_or_else(|e| {
                let method = names
                    .get(which.load(Ordering::SeqCst))
                    .copied()
                    .unwrap_or_default();
                Err(Error::Internal(format!(
                    "plugin {name}: {method}: the call failed: {e}"
                )))
            })
        };
        self.bounded(methods, &at, Box::pin(done)).await
    }

    /// Awaits `calls`, bounded by the timeout; on a timeout the error names
    /// the method whose index in `methods` is in `at`, and the calls are
    /// handed back to be awaited by a rollback.
    async fn bounded<T: Send + 'static>(
        &self,
        methods: &[&'static str],
        at: &AtomicUsize,
        mut calls: Pin<Box<dyn Future<Output = Result<T>> + Send>>,
    ) -> std::result::Result<T, Failed> {
        match tokio::time::timeout(self.0.timeout, &mut calls).await {
            Ok(r) => r.map_err(|err| Failed { err, late: None }),
            Err(_) => Err(Failed {
                err: Error::Internal(format!(
                    "plugin {}: {} did not answer within {}",
                    self.0.name,
                    methods
                        .get(at.load(Ordering::SeqCst))
                        .copied()
                        .unwrap_or_default(),
                    super::show_duration(self.0.timeout)
                )),
                late: Some(Box::pin(async move {
                    let _ = calls.await;
                })),
            }),
        }
    }

    /// Calls `methods` with `requests` in a row, each answer decoded by
    /// `check` (which gets the method and the answer) before the next call,
    /// bounded as a whole by the timeout. Through `call_async` where the
    /// plugin has it (version 2): no blocking thread, the plugin's runtime
    /// wakes this task; else through [`SharedPlugin::blocking`]. With
    /// `keep_going`, every call is made whatever the earlier ones answered,
    /// and the errors are put together.
    async fn in_a_row<T: Send + 'static>(
        &self,
        methods: &[&'static str],
        requests: Vec<Arc<Vec<u8>>>,
        keep_going: bool,
        check: Check<T>,
    ) -> std::result::Result<Option<T>, Failed> {
        let steps: Vec<(&'static str, Arc<Vec<u8>>)> = methods.iter().copied().zip(requests).collect();
        let Some(f) = self.0.call_async else {
            return self
                .blocking(methods, move |lib, at| {
                    let mut out = None;
                    let mut errors: Option<Error> = None;
                    for (i, (m, req)) in steps.iter().enumerate() {
                        at.store(i, Ordering::SeqCst);
                        let answer = lib.call_blocking(m, req);
                        match check(&lib.name, m, answer.as_deref()) {
                            Ok(v) => out = v.or(out),
                            Err(e) if keep_going => {
                                errors = Some(match errors {
                                    None => e,
                                    Some(a) => annotate(a, &format!("; {e}")),
                                })
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    errors.map_or(Ok(out), Err)
                })
                .await;
        };
        let lib = self.0.clone();
        let at = Arc::new(AtomicUsize::new(0));
        let now = at.clone();
        let calls = async move {
            let mut out = None;
            let mut errors: Option<Error> = None;
            for (i, (m, req)) in steps.iter().enumerate() {
                now.store(i, Ordering::SeqCst);
                let answer = lib.call_async(f, m, req).await;
                match check(&lib.name, m, answer.as_deref()) {
                    Ok(v) => out = v.or(out),
                    Err(e) if keep_going => {
                        errors = Some(match errors {
                            None => e,
                            Some(a) => annotate(a, &format!("; {e}")),
                        })
                    }
                    Err(e) => return Err(e),
                }
            }
            errors.map_or(Ok(out), Err)
        };
        self.bounded(methods, &at, Box::pin(calls)).await
    }

    /// One call, decoded as a `T`.
    async fn call<T: DeserializeOwned + Send + 'static>(
        &self,
        method: &'static str,
        request: Arc<Vec<u8>>,
    ) -> std::result::Result<T, Failed> {
        self.blocking(&[method], move |lib, _| {
            decode(&lib.name, method, lib.call_blocking(method, &request).as_deref())
        })
        .await
    }

    /// Runs rollback steps in order, all of them, in one bounded hop; says
    /// what failed.
    async fn undo(&self, steps: &Steps) -> std::result::Result<(), String> {
        let methods: Vec<&'static str> = steps.iter().map(|(m, _)| *m).collect();
        let steps = steps.clone();
        let undone = self
            .blocking(&methods, move |lib, at| {
                let mut failed = Vec::new();
                for (i, (m, req)) in steps.iter().enumerate() {
                    at.store(i, Ordering::SeqCst);
                    let answer = lib.call_blocking(m, req);
                    if let Err(e) = decode::<ErrorResponse>(&lib.name, m, answer.as_deref()) {
                        failed.push(e.to_string());
                    }
                }
                if failed.is_empty() {
                    Ok(())
                } else {
                    Err(Error::Internal(failed.join("; ")))
                }
            })
            .await;
        undone.map_err(|f| f.err.to_string())
    }

    /// Rolls back after a failed call: now, and again when a timed-out call
    /// answers after all. Returns the error to report.
    async fn roll_back(&self, f: Failed, steps: Steps, what: &str) -> Error {
        let now = self.undo(&steps).await;
        if let Some(late) = f.late {
            let again = SharedPlugin(self.0.clone());
            let what = what.to_owned();
            tokio::spawn(async move {
                // However long it takes: the plugin may have made things
                // after the engine gave up on it.
                let _ = late.await;
                match again.undo(&steps).await {
                    Ok(()) => {
                        tracing::info!(plugin = %again.0.name, "a timed-out {what} answered late; rolled it back again")
                    }
                    Err(e) => tracing::warn!(plugin = %again.0.name, "rolling back a late {what}: {e}"),
                }
            });
        }
        match now {
            Ok(()) => annotate(f.err, &format!(" (the {what} was rolled back)")),
            Err(e) => annotate(f.err, &format!("; rolling the {what} back failed too: {e}")),
        }
    }
}

/// The berth member of an endpoint's requests.
fn berth_endpoint(net: &Network, ep: &Endpoint<'_>) -> Result<BerthEndpoint> {
    let key = match ep.sandbox {
        Some(sb) => Some(
            sb.path
                .to_str()
                .ok_or_else(|| Error::Internal(format!("sandbox path {} is not UTF-8", sb.path.display())))?
                .to_owned(),
        ),
        None => None,
    };
    Ok(BerthEndpoint {
        network: net.clone(),
        sandbox_key: key,
        ifname: ep.ifname.to_string(),
        mac: ep.mac,
        addresses: ep.addresses.to_vec(),
        gateways: ep.gateways.to_vec(),
        state: ep.state.cloned(),
    })
}

#[async_trait]
impl NetworkDriver for SharedPlugin {
    fn name(&self) -> &str {
        &self.0.name
    }

    fn capabilities(&self) -> Capabilities {
        self.0.caps.clone()
    }

    /// `Validate`: the plugin opens the network on its side and says
    /// whether its options are good.
    async fn open(&self, net: &Network) -> Result<Arc<dyn NetworkHandle>> {
        let req = json(&network_request(net))?;
        self.call::<ErrorResponse>(method::VALIDATE, req)
            .await
            .map_err(|f| f.err)?;
        Ok(Arc::new(SharedNet {
            plugin: SharedPlugin(self.0.clone()),
            net: net.clone(),
        }))
    }
}

/// A network of a shared-library plugin: every request carries it whole,
/// and the plugin keeps its own handle of it.
struct SharedNet {
    plugin: SharedPlugin,
    net: Network,
}

#[async_trait]
impl NetworkHandle for SharedNet {
    fn network(&self) -> &Network {
        &self.net
    }

    async fn create(&self, _: &Context) -> Result<()> {
        let net = &self.net;
        let req = json(&network_request(net))?;
        match self
            .plugin
            .call::<ErrorResponse>(method::CREATE_NETWORK, req)
            .await
        {
            Ok(_) => Ok(()),
            Err(f) if f.refused_up_front() => Err(f.err),
            Err(f) => {
                let del = json(&DeleteNetworkRequest {
                    network_id: net.id.clone(),
                    berth: Some(BerthNetwork { network: net.clone() }),
                })?;
                Err(self
                    .plugin
                    .roll_back(f, vec![(method::DELETE_NETWORK, del)], "network")
                    .await)
            }
        }
    }

    async fn delete(&self, _: &Context) -> Result<()> {
        let net = &self.net;
        let req = json(&DeleteNetworkRequest {
            network_id: net.id.clone(),
            berth: Some(BerthNetwork { network: net.clone() }),
        })?;
        self.plugin
            .call::<ErrorResponse>(method::DELETE_NETWORK, req)
            .await
            .map(drop)
            .map_err(|f| f.err)
    }

    async fn attach(&self, _: &Context, ep: &Endpoint<'_>) -> Result<Attachment> {
        let net = &self.net;
        let berth = berth_endpoint(net, ep)?;
        let key = berth
            .sandbox_key
            .clone()
            .ok_or_else(|| Error::Internal("attach without a sandbox".into()))?;
        let with_len = |v6: bool| {
            ep.addresses
                .iter()
                .find(|a| a.addr().is_ipv6() == v6)
                .map(ToString::to_string)
                .unwrap_or_default()
        };
        let create = json(&CreateEndpointRequest {
            network_id: net.id.clone(),
            endpoint_id: ep.id.to_owned(),
            interface: Some(EndpointInterface {
                address: with_len(false),
                address_ipv6: with_len(true),
                mac_address: if ep.mac.is_zero() {
                    String::new()
                } else {
                    ep.mac.to_string()
                },
            }),
            options: BTreeMap::new(),
        })?;
        let join = json(&JoinRequest {
            network_id: net.id.clone(),
            endpoint_id: ep.id.to_owned(),
            sandbox_key: key,
            options: BTreeMap::new(),
            berth: Some(berth.clone()),
        })?;
        let leave = json(&EndpointRequest {
            network_id: net.id.clone(),
            endpoint_id: ep.id.to_owned(),
            berth: Some(berth),
        })?;
        let joined = self
            .plugin
            .in_a_row(
                &[method::CREATE_ENDPOINT, method::JOIN],
                vec![create, join],
                false,
                attach_answer,
            )
            .await;
        match joined {
            // A plugin that wired the sandbox itself and said nothing more
            // made no host-side interface worth naming.
            Ok(j) => Ok(j.and_then(|j| j.berth).unwrap_or_default()),
            // Leave is idempotent: after a failed CreateEndpoint it finds
            // nothing to undo, and DeleteEndpoint follows as in Docker.
            Err(f) => {
                let steps = vec![(method::LEAVE, leave.clone()), (method::DELETE_ENDPOINT, leave)];
                Err(self.plugin.roll_back(f, steps, "attach").await)
            }
        }
    }

    async fn detach(&self, _: &Context, ep: &Endpoint<'_>) -> Result<()> {
        let net = &self.net;
        let req = json(&EndpointRequest {
            network_id: net.id.clone(),
            endpoint_id: ep.id.to_owned(),
            berth: Some(berth_endpoint(net, ep)?),
        })?;
        // Both, whatever the first answers (teardown keeps going), in one hop.
        self.plugin
            .in_a_row(
                &[method::LEAVE, method::DELETE_ENDPOINT],
                vec![req.clone(), req],
                true,
                plain_answer,
            )
            .await
            .map(drop)
            .map_err(|f| f.err)
    }
}

/// Decodes the answers of an attach's calls: `Join`'s is kept.
fn attach_answer(plugin: &str, m: &'static str, answer: Option<&[u8]>) -> Result<Option<JoinResponse>> {
    if m == method::JOIN {
        decode(plugin, m, answer).map(Some)
    } else {
        decode::<CreateEndpointResponse>(plugin, m, answer).map(|_| None)
    }
}

/// Decodes an answer that says only whether the call worked.
fn plain_answer(plugin: &str, m: &'static str, answer: Option<&[u8]>) -> Result<Option<()>> {
    decode::<ErrorResponse>(plugin, m, answer).map(|_| None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::protocol::BerthCapabilities;

    fn err(r: Result<()>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn bad_answers_are_one_line_naming_plugin_and_method() {
        let e = err(decode_answer("CreateEndpoint", b"<html>\n</html>"));
        assert!(
            e.starts_with("plugin fuzz: CreateEndpoint answered with something that is not JSON: "),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        assert_eq!(
            err(decode_answer("Join", b"")),
            "plugin fuzz: Join answered nothing"
        );
        let e = err(decode_answer("Join", br#"{"Err": "no\nway"}"#));
        assert_eq!(e, "plugin fuzz: Join failed: no way");
        let e = err(decode_answer("Join", b"[1,2]"));
        assert!(e.contains("answered JSON that is not a Join answer"), "{e}");
        let e = err(decode_answer("Join", br#"{"Err": 3}"#));
        assert!(e.contains("\"Err\" is not a string"), "{e}");
        assert!(decode_answer("Leave", br#"{"Err": ""}"#).is_ok());
        assert!(decode_answer("Join", br#"{"Berth": {"HostIfname": null}}"#).is_ok());
        let long = format!(r#"{{"Err": "{}"}}"#, "x".repeat(5000));
        assert!(err(decode_answer("Leave", long.as_bytes())).len() < crate::plugins::MAX_TEXT + 100);
    }

    #[test]
    fn error_kinds_survive_the_boundary() {
        let r: Result<ErrorResponse> = decode(
            "p",
            "Validate",
            Some(br#"{"Err": "bad option", "BerthKind": "invalid"}"#),
        );
        match r {
            Err(Error::Invalid(m)) => assert_eq!(m, "bad option"),
            other => panic!("{other:?}"),
        }
        let r: Result<ErrorResponse> =
            decode("p", "Join", Some(br#"{"Err": "busy", "BerthKind": "conflict"}"#));
        assert!(matches!(r, Err(Error::Conflict(m)) if m == "plugin p: Join failed: busy"));
    }

    #[test]
    fn capabilities_are_checked() {
        let mut c = CapabilitiesResponse {
            scope: "local".into(),
            connectivity_scope: "local".into(),
            berth: Some(BerthCapabilities {
                sandbox: "own".into(),
                ipam: true,
                options: vec!["mtu".into()],
                multi_network: true,
                ports: None,
                dns: None,
                parent: false,
            }),
        };
        let caps = capabilities(&c).unwrap();
        assert_eq!(caps.options, ["mtu"]);
        // What a plugin does not say: no ports, the resolver for its own
        // sandboxes.
        assert_eq!(caps.ports, Ports::Unsupported);
        assert!(caps.dns);
        // The same list is leaked once.
        assert!(std::ptr::eq(caps.options, capabilities(&c).unwrap().options));
        c.scope = "galactic".into();
        assert!(capabilities(&c).unwrap_err().contains("galactic"));
        c.scope = "local".into();
        c.berth = None;
        assert!(capabilities(&c).unwrap_err().contains("no Berth member"));
    }

    #[test]
    fn names_must_be_driver_names() {
        assert!(check_name("ptp").is_ok());
        assert!(check_name("my-driver_2.0").is_ok());
        for bad in ["", "Ptp", "-x", "a b", "a/b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    /// Seeded and bounded, like the DNS one: random bytes and mutations of
    /// real answers never make decoding panic.
    #[test]
    fn random_and_mutated_answers_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(0xbe27_0001);
        let seeds: Vec<Vec<u8>> = [
            r#"{"Scope":"local","ConnectivityScope":"local","Berth":{"Sandbox":"own","Ipam":true,"Options":["mtu"],"MultiNetwork":true}}"#,
            r#"{"Interface":{"Address":"10.0.0.2/24","AddressIPv6":"","MacAddress":"02:42:0a:00:00:02"}}"#,
            r#"{"InterfaceName":null,"Gateway":"","GatewayIPv6":"","StaticRoutes":[],"DisableGatewayService":false,"Berth":{"host_ifname":"ptp0123456789a","addresses":["10.0.0.2/32"],"gateways":["10.0.0.1"],"mac":"02:42:0a:00:00:02"}}"#,
            r#"{"Err":"","BerthKind":"invalid"}"#,
            r#"{"Err":"unknown option \"x\"","BerthKind":"invalid"}"#,
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        let methods = ["GetCapabilities", "CreateEndpoint", "Join", "Leave", "Validate"];
        for i in 0..30_000 {
            let mut p = if i % 4 == 0 {
                let len = rng.random_range(0..300);
                (0..len).map(|_| rng.random()).collect()
            } else {
                seeds[i % seeds.len()].clone()
            };
            for _ in 0..rng.random_range(0..6) {
                if p.is_empty() {
                    break;
                }
                let at = rng.random_range(0..p.len());
                match rng.random_range(0..4) {
                    0 => p[at] = rng.random(),
                    1 => p.truncate(at),
                    2 => {
                        let tokens = b"{}[]\":,0e-";
                        p.insert(at, tokens[rng.random_range(0..tokens.len())])
                    }
                    _ => p.insert(at, rng.random()),
                }
            }
            let _ = decode_answer(methods[i % methods.len()], &p);
        }
    }
}
