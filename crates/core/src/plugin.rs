//! Shared-library plugins: the C ABI of `berth_plugin_v1`, and the plugin
//! side of it, which [`export_driver!`](crate::export_driver) wraps around
//! any [`NetworkDriver`].
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
//! library is loaded (berth never unloads one), or null when the plugin
//! cannot start. The host reads `abi_version` first and nothing else unless
//! it is a version it speaks ([`MIN_ABI_VERSION`] to [`ABI_VERSION`]):
//! every version keeps a `u32` version as the first field. Version 1's
//! table is a [`PluginV1`]. `name` is the driver's name (`-d NAME`) and
//! `capabilities` a [`CapabilitiesResponse`] with its `Berth` member, both
//! NUL-terminated UTF-8.
//!
//! Everything else goes through `call`: a method name of
//! [`protocol::method`] (Docker's remote-driver
//! methods plus `Validate`), a JSON request in the shapes of
//! [`protocol`] with its `Berth` member, and a JSON answer
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
//! [`export_driver!`](crate::export_driver) makes version 2 tables.
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
//! `call_async` returns. The [`Context`] is made once: the host's
//! namespace and a netlink handle there, the [`Firewall`] (elements of the
//! shared `inet berth` table only), the kernel's [`Features`], and an empty
//! [`Networks`](crate::Networks) (a plugin sees only the network of each
//! request). Sandboxes are opened from their `SandboxKey`, their netlink
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

use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString, c_char, c_void};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::panic::{self, AssertUnwindSafe};

use futures_util::FutureExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};
use std::{io, thread};

use nix::sched::{CloneFlags, setns};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::protocol::{
    self, BerthCapabilities, CapabilitiesResponse, CreateEndpointResponse, CreateNetworkRequest,
    DeleteNetworkRequest, EndpointRequest, JoinRequest, JoinResponse, method,
};
use crate::{
    Context, Endpoint, Error, Features, Firewall, IfName, Netns, Network, NetworkDriver, NetworkHandle,
    Result, Sandbox, SandboxKind, Scope,
};

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
/// copies them; the plugin frees them afterwards).
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
    /// A [`CapabilitiesResponse`] as JSON, NUL-terminated UTF-8.
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

impl ErrorAnswer {
    /// The answer for a driver's error, with its causes in the message.
    pub fn from_error(e: &Error) -> Self {
        let kind = match e {
            Error::Invalid(_) => "invalid",
            Error::NotFound(_) => "not-found",
            Error::Conflict(_) => "conflict",
            Error::Unsupported(_) => "unsupported",
            Error::Kernel(..) => "kernel",
            _ => "internal",
        };
        Self {
            err: e.chain(),
            kind: Some(kind.into()),
        }
    }

    /// Back into an [`Error`] of the same kind (kernel errors lose their
    /// errno on the way: it is in the message).
    pub fn into_error(self, msg: String) -> Error {
        match self.kind.as_deref() {
            Some("invalid") => Error::Invalid(msg),
            Some("not-found") => Error::NotFound(msg),
            Some("conflict") => Error::Conflict(msg),
            Some("unsupported") => Error::Unsupported(msg),
            _ => Error::Internal(msg),
        }
    }
}

/// The capabilities of a driver, as a plugin declares them.
pub fn capabilities_answer(driver: &dyn NetworkDriver) -> CapabilitiesResponse {
    let caps = driver.capabilities();
    let scope = match caps.scope {
        Scope::Local => "local",
        Scope::Global => "global",
    };
    CapabilitiesResponse {
        scope: scope.into(),
        connectivity_scope: scope.into(),
        berth: Some(BerthCapabilities {
            sandbox: match caps.sandbox {
                SandboxKind::Own => "own",
                SandboxKind::Host => "host",
                SandboxKind::Isolated => "isolated",
            }
            .into(),
            ipam: caps.ipam,
            options: caps.options.iter().map(|o| (*o).to_owned()).collect(),
            multi_network: caps.multi_network,
            ports: Some(caps.ports),
            dns: Some(caps.dns),
            parent: caps.parent,
        }),
    }
}

/// A sandbox this plugin has open, and the endpoints of this plugin in it.
struct Open {
    /// `(st_dev, st_ino)` of the namespace when it was opened: a path that
    /// now names another namespace is opened again.
    id: (u64, u64),
    sandbox: Arc<Sandbox>,
    endpoints: HashSet<String>,
    /// When its last endpoint left; `None` while it has endpoints.
    idle_since: Option<Instant>,
}

/// How often the sweeper looks for sandboxes whose pin went away.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// At most this many sandboxes without an endpoint of this plugin stay
/// open; past it the one idle longest is closed.
const MAX_IDLE: usize = 32;

/// Work for the [`Opener`]'s thread, given the thread's own namespace to
/// go back to; answers whether it got back.
type Job = Box<dyn FnOnce(&OwnedFd) -> bool + Send>;

/// One long-lived thread that opens sockets inside sandboxes. Opening a
/// netlink socket inside a namespace takes a thread that enters it; a new
/// thread per sandbox (what [`Netns::connect`] does) costs about 60 µs,
/// most of what a plugin's attach costs over a built-in driver's. This
/// thread enters the sandbox, runs the job and goes back to the host's
/// namespace; a thread that cannot go back ends, and the next job starts
/// another. It never runs tokio tasks, so no task ever sees it elsewhere.
#[derive(Default)]
struct Opener(Mutex<Option<mpsc::Sender<Job>>>);

impl Opener {
    fn spawn() -> io::Result<mpsc::Sender<Job>> {
        let (tx, rx) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("berth-plugin-netns".into())
            .spawn(move || {
                // Born in the namespace of the thread that made it: the host's.
                let Ok(home) = File::open("/proc/thread-self/ns/net").map(OwnedFd::from) else {
                    return;
                };
                for job in rx {
                    if !job(&home) {
                        return;
                    }
                }
            })?;
        Ok(tx)
    }

    /// Runs `f` inside `ns` on the opener's thread; the caller's task
    /// waits for it without blocking its thread.
    async fn run<T: Send + 'static>(
        &self,
        ns: &Netns,
        f: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> Result<T> {
        let target = ns
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::kernel("duplicating a namespace fd", e))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |home| {
            let r = setns(&target, CloneFlags::CLONE_NEWNET)
                .map_err(io::Error::from)
                .and_then(|()| f());
            let back = setns(home, CloneFlags::CLONE_NEWNET).is_ok();
            let _ = tx.send(r);
            back
        });
        {
            let mut sender = self.0.lock().unwrap_or_else(|p| p.into_inner());
            let job = match sender.as_ref() {
                Some(s) => s.send(job).err().map(|mpsc::SendError(job)| job), // the thread ended
                None => Some(job),
            };
            if let Some(job) = job {
                let s =
                    Self::spawn().map_err(|e| Error::kernel("starting the plugin's namespace thread", e))?;
                s.send(job)
                    .map_err(|_| Error::Internal("the plugin's namespace thread ended at once".into()))?;
                *sender = Some(s);
            }
        }
        rx.await
            .map_err(|_| Error::Internal("the plugin's namespace thread ended".into()))?
            .map_err(|e| Error::kernel("working inside the sandbox's network namespace", e))
    }
}

/// One loaded plugin: a driver and what it keeps between calls.
pub struct Plugin {
    driver: Box<dyn NetworkDriver>,
    /// The networks opened so far, by id: each is opened once, at its
    /// `CreateNetwork` (or, after a restart of the host, at its first call).
    nets: Mutex<HashMap<String, Arc<dyn NetworkHandle>>>,
    name: CString,
    capabilities: CString,
    runtime: OnceLock<std::result::Result<tokio::runtime::Runtime, String>>,
    ctx: tokio::sync::OnceCell<Context>,
    sandboxes: Mutex<HashMap<String, Open>>,
    /// Whether the sweeper task runs (it ends when nothing is open).
    sweeping: AtomicBool,
    opener: Opener,
}

fn c_string(s: String) -> CString {
    CString::new(s.replace('\0', " ")).unwrap_or_default()
}

fn parse<T: DeserializeOwned>(m: &str, req: &[u8]) -> Result<T> {
    serde_json::from_slice(req).map_err(|e| Error::invalid(format!("{m}: the request does not decode: {e}")))
}

fn json(v: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(v)
        .unwrap_or_else(|e| error_json(&Error::Internal(format!("encoding the answer: {e}"))))
}

fn error_json(e: &Error) -> Vec<u8> {
    serde_json::to_vec(&ErrorAnswer::from_error(e)).unwrap_or_else(|_| br#"{"Err":"error"}"#.to_vec())
}

fn berth<T>(m: &str, member: Option<T>) -> Result<T> {
    member.ok_or_else(|| {
        Error::invalid(format!(
            "{m}: the request has no Berth member (is this a berth engine?)"
        ))
    })
}

fn ns_id(path: &str) -> Result<(u64, u64)> {
    std::fs::metadata(path)
        .map(|m| (m.dev(), m.ino()))
        .map_err(|e| Error::kernel(format!("opening sandbox {path}"), e))
}

/// The text of a panic's payload.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

impl Plugin {
    /// Wraps a driver. Makes no threads and touches no kernel state: that
    /// waits for the first call.
    pub fn new(driver: Box<dyn NetworkDriver>) -> Self {
        let name = c_string(driver.name().to_owned());
        let capabilities =
            c_string(serde_json::to_string(&capabilities_answer(driver.as_ref())).unwrap_or_default());
        Self {
            driver,
            nets: Mutex::new(HashMap::new()),
            name,
            capabilities,
            runtime: OnceLock::new(),
            ctx: tokio::sync::OnceCell::new(),
            sandboxes: Mutex::new(HashMap::new()),
            sweeping: AtomicBool::new(false),
            opener: Opener::default(),
        }
    }

    /// The driver's name.
    pub fn name(&self) -> &CStr {
        &self.name
    }

    /// The capabilities as JSON.
    pub fn capabilities(&self) -> &CStr {
        &self.capabilities
    }

    fn runtime(&self) -> Result<&tokio::runtime::Runtime> {
        self.runtime
            .get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name(format!("berth-plugin-{}", self.name.to_string_lossy()))
                    .enable_all()
                    .build()
                    .map_err(|e| format!("starting the plugin's runtime: {e}"))
            })
            .as_ref()
            .map_err(|e| Error::Internal(e.clone()))
    }

    /// The host's side, made at the first call that needs it.
    async fn context(&self) -> Result<&Context> {
        self.ctx
            .get_or_try_init(|| async {
                // The engine calls from threads that never leave the host's namespace.
                let host = Arc::new(Netns::current()?);
                let handle = host.connect()?;
                let firewall = Arc::new(Firewall::new(host.clone())?);
                let features = Features::probe().await.unwrap_or_else(|e| {
                    tracing::warn!("plugin: probing the kernel's link kinds: {}", e.chain());
                    Features::default()
                });
                Ok(Context {
                    host,
                    handle,
                    firewall,
                    features,
                    networks: Default::default(),
                })
            })
            .await
    }

    /// The sandbox at `key`, opened (or taken from the cache) and held for
    /// `endpoint`; its netlink connection runs on the plugin's runtime.
    async fn sandbox(&'static self, key: &str, endpoint: &str) -> Result<Arc<Sandbox>> {
        let id = ns_id(key)?;
        {
            let mut open = self.sandboxes.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(o) = open.get_mut(key)
                && o.id == id
            {
                o.endpoints.insert(endpoint.to_owned());
                o.idle_since = None;
                return Ok(o.sandbox.clone());
            }
        }
        let ns = Netns::open(key)?;
        // What `Netns::connect` does, on the opener's thread instead of a
        // new one.
        let rt = self.runtime()?.handle().clone();
        let inside = rt.clone();
        let (conn, handle, _) = self
            .opener
            .run(&ns, move || {
                let _rt = inside.enter(); // register the socket with the plugin's reactor
                rtnetlink::new_connection()
            })
            .await?;
        rt.spawn(conn);
        let sandbox = Arc::new(Sandbox {
            ns,
            handle,
            path: key.into(),
        });
        // A path that now names another namespace is replaced here.
        self.sandboxes.lock().unwrap_or_else(|p| p.into_inner()).insert(
            key.to_owned(),
            Open {
                id,
                sandbox: sandbox.clone(),
                endpoints: HashSet::from([endpoint.to_owned()]),
                idle_since: None,
            },
        );
        if !self.sweeping.swap(true, Ordering::SeqCst) {
            rt.spawn(self.sweeper());
        }
        Ok(sandbox)
    }

    /// Lets go of `endpoint`'s hold on its sandbox. A sandbox left without
    /// an endpoint of this plugin stays open (its socket is what an attach
    /// of the same container would otherwise open again, about a tenth of
    /// a bridge attach) until the sweeper sees that its pin is gone, that
    /// is, until the engine removed the container: the plugin keeps a
    /// removed container's namespace alive for at most [`SWEEP_EVERY`].
    /// At most [`MAX_IDLE`] stay open that way.
    fn release(&self, endpoint: &str) {
        let mut open = self.sandboxes.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        for o in open.values_mut() {
            if o.endpoints.remove(endpoint) && o.endpoints.is_empty() {
                o.idle_since = Some(now);
            }
        }
        let mut idle: Vec<(Instant, String)> = open
            .iter()
            .filter_map(|(k, o)| o.idle_since.map(|t| (t, k.clone())))
            .collect();
        if idle.len() > MAX_IDLE {
            idle.sort();
            for (_, k) in &idle[..idle.len() - MAX_IDLE] {
                open.remove(k);
            }
        }
    }

    /// Closes the sandboxes whose path no longer names the namespace that
    /// was opened (the engine removed the container, or a crash left an
    /// endpoint without its `Leave`), every [`SWEEP_EVERY`], while any is
    /// open. The paths are checked without holding the lock.
    async fn sweeper(&'static self) {
        loop {
            tokio::time::sleep(SWEEP_EVERY).await;
            let seen: Vec<(String, (u64, u64))> = {
                let open = self.sandboxes.lock().unwrap_or_else(|p| p.into_inner());
                open.iter().map(|(k, o)| (k.clone(), o.id)).collect()
            };
            let gone: Vec<(String, (u64, u64))> = seen
                .into_iter()
                .filter(|(k, id)| ns_id(k).ok() != Some(*id))
                .collect();
            let mut open = self.sandboxes.lock().unwrap_or_else(|p| p.into_inner());
            for (k, id) in gone {
                if open.get(&k).is_some_and(|o| o.id == id) {
                    open.remove(&k);
                }
            }
            if open.is_empty() {
                // Under the lock: `sandbox` inserts under it, then starts a
                // sweeper unless this flag says one runs.
                self.sweeping.store(false, Ordering::SeqCst);
                return;
            }
        }
    }

    /// Answers one call on the calling thread (ABI version 1's `call`);
    /// never panics (a panic of the driver is caught and answered as an
    /// error). The work runs on the plugin's runtime, as for
    /// [`Plugin::answer_async`]; this thread waits for it.
    pub fn answer(&'static self, method: &str, request: &[u8]) -> Vec<u8> {
        if let Some(r) = self.answer_now(method, request) {
            return r.unwrap_or_else(|e| error_json(&e));
        }
        let (m, req) = (method.to_owned(), request.to_vec());
        let run = || -> Result<Vec<u8>> {
            let rt = self.runtime()?;
            // Spawned rather than run by `block_on` here: on the worker,
            // beside the netlink connections, each request and its answer
            // stay on one thread instead of waking two (about 20 µs a
            // netlink message on a busy host).
            match rt.block_on(rt.spawn(async move { self.dispatch(&m, &req).await })) {
                Ok(r) => r,
                Err(e) if e.is_panic() => panic::resume_unwind(e.into_panic()),
                Err(e) => Err(Error::Internal(format!("the plugin's task ended: {e}"))),
            }
        };
        match panic::catch_unwind(AssertUnwindSafe(run)) {
            Ok(r) => r.unwrap_or_else(|e| error_json(&e)),
            Err(p) => panic_json(&*p),
        }
    }

    /// Answers one call without making the caller wait (ABI version 2's
    /// `call_async`): the work is queued on the plugin's runtime and
    /// `reply` gets the answer there, once, when it is done; a panic of the
    /// driver is answered as an error. Returns at once, having blocked on
    /// nothing (the first call also starts the runtime).
    pub fn answer_async(
        &'static self,
        method: String,
        request: Vec<u8>,
        reply: impl FnOnce(Vec<u8>) + Send + 'static,
    ) {
        // What needs neither the runtime nor the kernel is answered before
        // returning: a hop to the runtime's thread and back would cost
        // more than the answer (about 60 µs on a busy host).
        if let Some(r) = self.answer_now(&method, &request) {
            return reply(r.unwrap_or_else(|e| error_json(&e)));
        }
        let rt = match self.runtime() {
            Ok(rt) => rt,
            Err(e) => return reply(error_json(&e)),
        };
        rt.spawn(async move {
            let answer = match AssertUnwindSafe(self.dispatch(&method, &request))
                .catch_unwind()
                .await
            {
                Ok(r) => r.unwrap_or_else(|e| error_json(&e)),
                Err(p) => panic_json(&*p),
            };
            reply(answer);
        });
    }

    /// The answer to a method that needs neither the runtime nor the
    /// kernel (and cannot panic), or `None` for the others.
    fn answer_now(&self, m: &str, req: &[u8]) -> Option<Result<Vec<u8>>> {
        Some(match m {
            method::GET_CAPABILITIES => Ok(self.capabilities.as_bytes().to_vec()),
            // berth's engine did the addressing; the work happens in Join.
            method::CREATE_ENDPOINT => Ok(json(&CreateEndpointResponse::default())),
            method::ENDPOINT_OPER_INFO => Ok(br#"{"Value":{}}"#.to_vec()),
            method::DELETE_ENDPOINT => parse::<EndpointRequest>(m, req).map(|r| {
                self.release(&r.endpoint_id);
                json(&ErrorAnswer::default())
            }),
            _ => return None,
        })
    }

    /// The handle of `net`: the one opened before, or a new one (kept).
    async fn handle(&self, net: &Network) -> Result<Arc<dyn NetworkHandle>> {
        if let Some(h) = self.nets.lock().unwrap_or_else(|p| p.into_inner()).get(&net.id) {
            return Ok(h.clone());
        }
        let opened = self.driver.open(net).await?;
        let (h, all) = {
            let mut nets = self.nets.lock().unwrap_or_else(|p| p.into_inner());
            let h = nets.entry(net.id.clone()).or_insert(opened).clone();
            (h, nets.values().cloned().collect::<Vec<_>>())
        };
        if let Some(ctx) = self.ctx.get() {
            ctx.networks.set(all);
        }
        Ok(h)
    }

    /// Forgets a deleted network's handle.
    fn forget(&self, id: &str) {
        let all: Vec<_> = {
            let mut nets = self.nets.lock().unwrap_or_else(|p| p.into_inner());
            nets.remove(id);
            nets.values().cloned().collect()
        };
        if let Some(ctx) = self.ctx.get() {
            ctx.networks.set(all);
        }
    }

    async fn dispatch(&'static self, m: &str, req: &[u8]) -> Result<Vec<u8>> {
        if let Some(r) = self.answer_now(m, req) {
            return r;
        }
        match m {
            method::VALIDATE => {
                let net = berth(m, parse::<CreateNetworkRequest>(m, req)?.berth)?.network;
                let ctx = self.context().await?;
                self.driver.supported(&ctx.features).map_err(Error::Unsupported)?;
                self.driver.open(&net).await?;
                Ok(json(&ErrorAnswer::default()))
            }
            method::CREATE_NETWORK => {
                let net = berth(m, parse::<CreateNetworkRequest>(m, req)?.berth)?.network;
                // Opened (so checked) before anything is made, also for a
                // host that skipped Validate.
                let ctx = self.context().await?;
                let h = self.handle(&net).await?;
                if let Err(e) = h.create(ctx).await {
                    self.forget(&net.id);
                    return Err(e);
                }
                Ok(json(&ErrorAnswer::default()))
            }
            method::DELETE_NETWORK => {
                let net = berth(m, parse::<DeleteNetworkRequest>(m, req)?.berth)?.network;
                let ctx = self.context().await?;
                self.handle(&net).await?.delete(ctx).await?;
                self.forget(&net.id);
                Ok(json(&ErrorAnswer::default()))
            }
            method::JOIN => {
                let r: JoinRequest = parse(m, req)?;
                let b = berth(m, r.berth)?;
                let key = b.sandbox_key.clone().unwrap_or(r.sandbox_key);
                let ifname = IfName::new(&b.ifname)?;
                let id = r.endpoint_id;
                let joined = async {
                    let sandbox = self.sandbox(&key, &id).await?;
                    let ctx = self.context().await?;
                    let ep = Endpoint {
                        id: &id,
                        sandbox: Some(&sandbox),
                        ifname: &ifname,
                        mac: b.mac,
                        addresses: &b.addresses,
                        gateways: &b.gateways,
                        state: b.state.as_ref(),
                    };
                    self.handle(&b.network).await?.attach(ctx, &ep).await
                };
                match joined.await {
                    Ok(att) => Ok(json(&JoinResponse {
                        berth: Some(att),
                        ..Default::default()
                    })),
                    Err(e) => {
                        self.release(&id);
                        Err(e)
                    }
                }
            }
            method::LEAVE => {
                let r: EndpointRequest = parse(m, req)?;
                let b = berth(m, r.berth)?;
                let ifname = IfName::new(&b.ifname)?;
                let id = r.endpoint_id;
                // The sandbox is gone when the engine sends no key, or when
                // its pin went away in the meantime.
                let sandbox = match b.sandbox_key.as_deref() {
                    Some(k) => self.sandbox(k, &id).await.ok(),
                    None => None,
                };
                let left = async {
                    let ctx = self.context().await?;
                    let ep = Endpoint {
                        id: &id,
                        sandbox: sandbox.as_deref(),
                        ifname: &ifname,
                        mac: b.mac,
                        addresses: &b.addresses,
                        gateways: &b.gateways,
                        state: b.state.as_ref(),
                    };
                    self.handle(&b.network).await?.detach(ctx, &ep).await
                };
                let left = left.await;
                self.release(&id);
                left?;
                Ok(json(&ErrorAnswer::default()))
            }
            other => Err(Error::invalid(format!(
                "unknown method {other:?} (this plugin speaks berth_plugin_v1 version {ABI_VERSION})"
            ))),
        }
    }
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
                        name: plugin.name.as_ptr(),
                        capabilities: plugin.capabilities.as_ptr(),
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
            None => reply(error_json(&Error::Internal("the plugin did not start".into()))),
            Some(_) if method.is_null() => reply(error_json(&Error::invalid("no method name"))),
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
            None => error_json(&Error::Internal("the plugin did not start".into())),
            Some(_) if method.is_null() => error_json(&Error::invalid("no method name")),
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
/// [`plugin`](crate::plugin)). Use it once, in the root of a `cdylib`:
///
/// ```ignore
/// berth_core::export_driver!(Ptp::default());
/// ```
///
/// The expression is evaluated once, at the first call of the entry point.
#[macro_export]
macro_rules! export_driver {
    ($driver:expr) => {
        /// The entry point berth's engine loads: see `berth_core::plugin`.
        #[unsafe(no_mangle)]
        pub extern "C" fn berth_plugin_v1() -> *const $crate::plugin::PluginV1 {
            static SLOT: $crate::plugin::Slot = $crate::plugin::Slot::new();
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
                complete: $crate::plugin::CompleteFn,
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

/// The JSON of a `Validate` or `CreateNetwork` request for `net`.
pub fn network_request(net: &Network) -> CreateNetworkRequest {
    CreateNetworkRequest {
        network_id: net.id.clone(),
        options: protocol::network_options(net),
        ipv4_data: protocol::ipam_data(net, false),
        ipv6_data: protocol::ipam_data(net, true),
        berth: Some(protocol::BerthNetwork { network: net.clone() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Attachment, Capabilities, async_trait};

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
