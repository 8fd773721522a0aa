//! A shared-library plugin that misbehaves on request, for the tests of
//! berth's plugin boundary. Not a template (see `examples/ptp` for that):
//! it writes `berth_plugin_v1` by hand, around berth-core's
//! [`Plugin`], so that it can break the ABI.
//!
//! What it is comes from the name of the file it was loaded from, so that
//! copies of one library behave differently: the driver is named after the
//! file (`faulty.so` is `faulty`, `bridge.so` is `bridge`); a name with
//! `abi9` in it declares ABI version 9, one with `nullentry` returns no
//! table at all. It is a version 1 plugin (`call` only), so the tests
//! show that the engine still speaks version 1, unless its name has `v2`
//! in it: then it declares version 2 and has a `call_async` that answers
//! from a thread of its own, with the same faults (`hang` never answers).
//!
//! Its networks choose a fault with `-o fault=KIND@METHOD`, for one
//! method (`Validate`, `CreateNetwork`, `CreateEndpoint`, `Join`, `Leave`,
//! …). The work of the method is done first, then the answer is replaced,
//! so that the engine has something to roll back:
//! - `garbage`: bytes that are not JSON; `shape`: JSON of the wrong shape;
//! - `error`: `{"Err": "injected failure"}`;
//! - `null`: a null pointer; `empty`: zero bytes;
//! - `panic`: the driver panics inside the method (caught by berth-core);
//! - `hang`: the call never returns; `slow`: it returns after 2 s;
//! - `twice` (version 2): `call_async` hands the real answer to `complete`
//!   twice with the same token, breaking the ABI's "exactly once".
//!
//! Without a fault it is a plain driver: a veth per container, host end
//! `flt` and 11 hex digits of the endpoint id, no bridge.
#![deny(missing_docs)]

use std::collections::HashMap;
use std::ffi::{CStr, c_char, c_void};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use berth_core::abi::{ABI_VERSION, CompleteFn, MIN_ABI_VERSION, PluginV1, PluginV2};
use berth_core::export::Plugin;
use berth_core::{
    Attachment, Capabilities, Context, Endpoint, Error, Kind, Network, NetworkDriver, NetworkHandle, Result,
    async_trait, check_options, link,
};
use serde_json::Value;

/// The fault a network asked for, `KIND@METHOD`, if it is for `method`.
fn fault_in(options: &std::collections::BTreeMap<String, String>, method: &str) -> Option<String> {
    let (kind, m) = options.get("fault")?.split_once('@')?;
    (m == method).then(|| kind.to_owned())
}

/// The misbehaving driver.
struct Faulty {
    name: String,
}

impl Faulty {
    fn maybe_panic(net: &Network, method: &str) {
        if fault_in(&net.options, method).as_deref() == Some("panic") {
            panic!("injected panic in {method}");
        }
    }
}

fn host_ifname(id: &str) -> String {
    format!("flt{}", &id[..id.len().min(11)])
}

#[async_trait]
impl NetworkDriver for Faulty {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            options: &["fault"],
            ..Capabilities::own_sandbox()
        }
    }

    async fn open(&self, net: &Network) -> Result<Arc<dyn NetworkHandle>> {
        Self::maybe_panic(net, "Validate");
        check_options(&self.name, &net.options, &["fault"])?;
        Ok(Arc::new(FaultyNet(net.clone())))
    }
}

/// A network of the misbehaving driver.
struct FaultyNet(Network);

#[async_trait]
impl NetworkHandle for FaultyNet {
    fn network(&self) -> &Network {
        &self.0
    }

    async fn create(&self, _: &Context) -> Result<()> {
        Faulty::maybe_panic(&self.0, "CreateNetwork");
        Ok(())
    }

    async fn delete(&self, _: &Context) -> Result<()> {
        Faulty::maybe_panic(&self.0, "DeleteNetwork");
        Ok(())
    }

    async fn attach(&self, ctx: &Context, ep: &Endpoint<'_>) -> Result<Attachment> {
        Faulty::maybe_panic(&self.0, "Join");
        let sandbox = ep
            .sandbox
            .ok_or_else(|| Error::plugin(Kind::Internal, "no sandbox"))?;
        let host_if = host_ifname(ep.id);
        link::add_veth_into(&ctx.handle, &host_if, None, &sandbox.ns, ep.ifname, ep.mac).await?;
        let rest = async {
            link::configure(&sandbox.handle, ep.ifname, ep.addresses, &[]).await?;
            link::attach_port(&ctx.handle, &host_if, None).await
        };
        if let Err(e) = rest.await {
            let _ = link::del_by_name(&ctx.handle, &host_if).await;
            return Err(e);
        }
        Ok(Attachment {
            host_ifname: Some(host_if),
            ..Default::default()
        })
    }

    async fn detach(&self, ctx: &Context, ep: &Endpoint<'_>) -> Result<()> {
        Faulty::maybe_panic(&self.0, "Leave");
        link::del_by_name(&ctx.handle, &host_ifname(ep.id)).await
    }
}

/// The plugin and its table, made at the first call of the entry point.
struct Loaded {
    plugin: Plugin,
    /// Read as a version 1 table unless it declares version 2.
    table: PluginV2,
}

// SAFETY: the table's pointers point to the `CString`s of the plugin beside
// it, which live in a `static` and never change.
unsafe impl Sync for Loaded {}
// SAFETY: as for `Sync`.
unsafe impl Send for Loaded {}

static LOADED: OnceLock<Loaded> = OnceLock::new();

/// Faults by network id, for requests without the network in them
/// (`CreateEndpoint`, `DeleteEndpoint`).
static FAULTS: Mutex<Option<HashMap<String, String>>> = Mutex::new(None);

/// The stem of the file this library was loaded from, without `lib`.
fn own_name() -> Option<String> {
    // SAFETY: Dl_info is plain data; all-zero is a valid value.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the loader's tables for an address of this
    // library and fills `info`.
    let found = unsafe { libc::dladdr(own_name as *const c_void, &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated string owned by the loader.
    let path = unsafe { CStr::from_ptr(info.dli_fname) }
        .to_string_lossy()
        .into_owned();
    let stem = Path::new(&path).file_stem()?.to_str()?.to_owned();
    Some(stem.strip_prefix("lib").unwrap_or(&stem).to_owned())
}

/// The entry point, by hand.
#[unsafe(no_mangle)]
pub extern "C" fn berth_plugin_v1() -> *const PluginV1 {
    let name = own_name().unwrap_or_else(|| "faulty".into());
    if name.contains("nullentry") {
        return std::ptr::null();
    }
    let loaded = LOADED.get_or_init(|| {
        let plugin = Plugin::new(Box::new(Faulty { name: name.clone() }));
        let abi_version = if name.contains("abi9") {
            9
        } else if name.contains("v2") {
            ABI_VERSION
        } else {
            MIN_ABI_VERSION
        };
        let table = PluginV2 {
            v1: PluginV1 {
                abi_version,
                name: plugin.name().as_ptr(),
                capabilities: plugin.capabilities().as_ptr(),
                call: Some(call),
                free: Some(berth_core::export::free),
            },
            call_async: Some(call_async),
        };
        Loaded { plugin, table }
    });
    std::ptr::from_ref(&loaded.table).cast::<PluginV1>()
}

/// The fault of the request's network for `method`, remembered by network
/// id from the requests that carry the whole network.
fn fault_for(method: &str, req: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(req).ok()?;
    let id = v
        .get("NetworkID")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut faults = FAULTS.lock().unwrap_or_else(|p| p.into_inner());
    let faults = faults.get_or_insert_with(HashMap::new);
    if let Some(spec) = v.pointer("/Berth/Network/options/fault").and_then(Value::as_str) {
        faults.insert(id.clone(), spec.to_owned());
    }
    let (kind, m) = faults.get(&id)?.split_once('@')?;
    (m == method && kind != "panic").then(|| kind.to_owned())
}

/// The answer to `m`, with the fault of its network; `None` for a null
/// pointer.
fn answer(loaded: &'static Loaded, m: &str, req: &[u8]) -> Option<Vec<u8>> {
    match fault_for(m, req).as_deref() {
        Some("hang") => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
        Some("slow") => {
            std::thread::sleep(Duration::from_secs(2));
            Some(loaded.plugin.answer(m, req))
        }
        Some(kind) => {
            let real = loaded.plugin.answer(m, req);
            match kind {
                "garbage" => Some(b"<html>\n  not JSON\n</html>".to_vec()),
                "shape" => Some(b"[1, 2, 3]".to_vec()),
                "error" => Some(br#"{"Err": "injected failure"}"#.to_vec()),
                "null" => None,
                "empty" => Some(Vec::new()),
                _ => Some(real),
            }
        }
        None => Some(loaded.plugin.answer(m, req)),
    }
}

/// The host's token, given back from this library's thread.
struct Token(*mut c_void);

// SAFETY: the contract of `CallAsyncFn`: the token may be given back from
// any thread.
unsafe impl Send for Token {}

/// `call_async`: the answer of `call`, made and given to `complete` on a
/// thread of its own (a `hang` never gives it).
unsafe extern "C" fn call_async(
    method: *const c_char,
    request: *const u8,
    len: usize,
    complete: CompleteFn,
    token: *mut c_void,
) {
    let token = Token(token);
    let (Some(loaded), false) = (LOADED.get(), method.is_null()) else {
        // SAFETY: `complete` and `token` as the host gave them, once.
        return unsafe { complete(token.0, std::ptr::null(), 0) };
    };
    // SAFETY: NUL-terminated, by the contract of `CallAsyncFn`.
    let m = unsafe { CStr::from_ptr(method) }.to_string_lossy().into_owned();
    let req = if request.is_null() || len == 0 {
        Vec::new()
    } else {
        // SAFETY: valid for `len` bytes, by the contract of `CallAsyncFn`.
        unsafe { std::slice::from_raw_parts(request, len) }.to_vec()
    };
    std::thread::spawn(move || {
        let token = token;
        let twice = fault_for(&m, &req).as_deref() == Some("twice");
        let a = answer(loaded, &m, &req);
        let (p, n) = a
            .as_ref()
            .map_or((std::ptr::null(), 0), |a| (a.as_ptr(), a.len()));
        // SAFETY: `complete` and `token` as the host gave them, once; the
        // answer is valid for the call.
        unsafe { complete(token.0, p, n) };
        if twice {
            // SAFETY: deliberately breaks the contract of `CallAsyncFn`
            // (a second `complete` with the same token): berth's host
            // ignores it; the answer is still valid for the call.
            unsafe { complete(token.0, p, n) };
        }
    });
}

unsafe extern "C" fn call(
    method: *const c_char,
    request: *const u8,
    len: usize,
    out_len: *mut usize,
) -> *mut u8 {
    let Some(loaded) = LOADED.get() else {
        return std::ptr::null_mut();
    };
    if method.is_null() || out_len.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: NUL-terminated, by the contract of `CallFn`.
    let m = unsafe { CStr::from_ptr(method) }.to_string_lossy().into_owned();
    let req: &[u8] = if request.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: valid for `len` bytes, by the contract of `CallFn`.
        unsafe { std::slice::from_raw_parts(request, len) }
    };
    let answer = answer(loaded, &m, req);
    let Some(answer) = answer else {
        // SAFETY: writable, by the contract of `CallFn`.
        unsafe { *out_len = 0 };
        return std::ptr::null_mut();
    };
    let boxed = answer.into_boxed_slice();
    // SAFETY: writable, by the contract of `CallFn`.
    unsafe { *out_len = boxed.len() };
    // berth_core::export::free takes it back as the same boxed slice.
    Box::into_raw(boxed).cast::<u8>()
}
