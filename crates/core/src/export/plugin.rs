//! The plugin's side of each call: the driver, the networks it opened,
//! the runtime its work runs on, and the answer to each method.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};

use berth_plugin::abi::ErrorAnswer;
use berth_plugin::protocol::{
    BerthCapabilities, CapabilitiesResponse, CreateEndpointResponse, CreateNetworkRequest,
    DeleteNetworkRequest, EndpointRequest, JoinRequest, JoinResponse, method,
};
use futures_util::FutureExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::sandboxes::Sandboxes;
use super::{error_json, panic_json};
use crate::{
    Context, Endpoint, Error, Features, Firewall, IfName, Netns, Network, NetworkDriver, NetworkHandle,
    Result, SandboxKind, Scope,
};

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

/// One loaded plugin: a driver and what it keeps between calls.
pub struct Plugin {
    driver: Box<dyn NetworkDriver>,
    /// The networks opened so far, by id: each is opened once, at its
    /// `CreateNetwork` (or, after a restart of the host, at its first call).
    nets: Mutex<HashMap<String, Arc<dyn NetworkHandle>>>,
    name: CString,
    capabilities: CString,
    runtime: OnceLock<std::io::Result<tokio::runtime::Runtime>>,
    ctx: tokio::sync::OnceCell<Context>,
    sandboxes: Sandboxes,
}

fn c_string(s: String) -> CString {
    CString::new(s.replace('\0', " ")).unwrap_or_default()
}

fn parse<T: DeserializeOwned>(m: &str, req: &[u8]) -> Result<T> {
    serde_json::from_slice(req).map_err(|source| Error::BadRequest {
        method: m.to_owned(),
        source,
    })
}

fn json(v: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_else(|source| {
        error_json(&Error::Encode {
            what: "the answer",
            source,
        })
    })
}

fn berth<T>(m: &str, member: Option<T>) -> Result<T> {
    member.ok_or_else(|| Error::NoBerthMember { method: m.to_owned() })
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
            sandboxes: Sandboxes::default(),
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
            })
            .as_ref()
            // Made once: every later call reports the same failure.
            .map_err(|e| {
                Error::Runtime(match e.raw_os_error() {
                    Some(errno) => std::io::Error::from_raw_os_error(errno),
                    None => std::io::Error::new(e.kind(), e.to_string()),
                })
            })
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
                    lingering: Default::default(),
                    features,
                    networks: Default::default(),
                    // A plugin is in no cluster and keeps no files of the daemon's.
                    cluster: None,
                    run_dir: std::env::temp_dir(),
                })
            })
            .await
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
                Err(e) => Err(Error::TaskEnded(e)),
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
                self.sandboxes.release(&r.endpoint_id);
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
                self.driver.supported(&ctx.features)?;
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
                    let sandbox = self.sandboxes.get(&key, &id, self.runtime()?.handle()).await?;
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
                        self.sandboxes.release(&id);
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
                    Some(k) => match self.runtime() {
                        Ok(rt) => self.sandboxes.get(k, &id, rt.handle()).await.ok(),
                        Err(_) => None,
                    },
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
                    let left = self.handle(&b.network).await?.detach(ctx, &ep).await;
                    // The engine gives the endpoint's addresses out again
                    // once this answer is in: its links must be gone by then.
                    ctx.lingering.settled().await;
                    left
                };
                let left = left.await;
                self.sandboxes.release(&id);
                left?;
                Ok(json(&ErrorAnswer::default()))
            }
            other => Err(Error::UnknownMethod {
                method: other.to_owned(),
            }),
        }
    }
}
