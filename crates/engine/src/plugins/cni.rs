//! CNI plugins as the `cni` driver: `berth network create -d cni`.
//!
//! A cni network runs a chain of CNI plugins (a network configuration
//! list) for each container, as CNI runtimes do: `ADD` in order when the
//! container joins (each plugin gets the list's `name` and `cniVersion`
//! and the previous plugin's result as `prevResult`), `DEL` in reverse
//! order when it leaves (each given the recorded result), `CHECK` in order
//! for `berth network check`. Plugins get `CNI_COMMAND`, `CNI_CONTAINERID`
//! (the container's id), `CNI_NETNS` (its sandbox), `CNI_IFNAME` (`eth0`,
//! `eth1`, …) and `CNI_PATH` (`--cni-path`).
//!
//! # Options
//!
//! - `-o cni.config=NAME`: the list `NAME.conflist` (or `NAME.conf`,
//!   `NAME.json`, or any of those whose `name` is NAME) in
//!   `--cni-config-dir`. It is read again at each attach, as libcni does.
//! - `-o cni.plugin=TYPE`: a single plugin, configured by the other `-o`
//!   options, flat: `KEY=VALUE` sets the field `KEY`, `A.B=VALUE` the
//!   field `B` of the object `A` (so `ipam.type=host-local`,
//!   `ipam.subnet=10.88.0.0/16`). A value that reads as JSON is that JSON
//!   (`isGateway=true`, `mtu=1400`, `ipam.routes=[{"dst":"0.0.0.0/0"}]`);
//!   anything else is a string (quote it, `vlan="42"`, to keep digits a
//!   string). The CNI network's name is the berth network's name,
//!   `cni.version` sets `cniVersion` (default 1.0.0).
//! - `-o cni.isolate=false`: see below.
//!
//! The plugins' IPAM assigns addresses (the engine's does not: no
//! `--subnet`); the addresses, gateways and MAC of the container's
//! interface in the chain's result are what `inspect`, `ps` and the
//! embedded DNS show. The chain's configuration and result are kept with
//! the endpoint in the engine's store (`Attachment::state`), so `DEL` and
//! `CHECK` get them even after a restart, or after the configuration file
//! changed.
//!
//! # Isolation
//!
//! CNI itself does not keep networks apart: two `bridge` networks on one
//! host route to each other through it. berth networks are isolated from
//! one another, so the bridges of a chain's `bridge` plugins join berth's
//! firewall like berth's own bridges (traffic within one bridge passes,
//! between bridges it is dropped, `--internal` holds); `-o
//! cni.isolate=false` leaves them out, for CNI's own behaviour. Other
//! plugins (ptp, macvlan, …) get no firewall elements.
//!
//! A chain's bridge is berth's only when the `bridge` plugin made it while
//! a berth network ran it: a bridge missing before an `ADD` and there after
//! it gets the alias `berth-cni:<network id>` (kept by the kernel, so
//! across restarts). When a cni network is removed, its firewall entries
//! go, and a bridge marked so is removed too, once no interface is left on
//! it and no other network uses it; a bridge that was there before
//! (`docker0`, `cni0` of another runtime) is left alone. A cni network
//! cannot use the bridge of another berth network (a `bridge` network's):
//! its firewall entry, keyed by the bridge, would replace that network's.
//!
//! # Failures
//!
//! Each plugin runs under a deadline (10 s; the daemon's
//! `BERTH_PLUGIN_TIMEOUT_MS` overrides it). A plugin that fails, prints
//! something that is not a result, prints nothing, or misses its deadline
//! (and is then killed with its process group) fails the attach with one
//! line, after `DEL` ran for the plugins that had run, in reverse order.

mod config;
mod exec;
mod result;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_core::{
    Attachment, Capabilities, Context, Endpoint, Error, FwNetwork, IfName, Kind, Network, NetworkDriver,
    NetworkHandle, Result, async_trait, link,
};
use serde_json::{Value, json};

pub use result::{
    CniResult, DecodeError, Dns, Interface, IpConfig, PluginError, Route, decode_error, decode_result,
    decode_value,
};

use self::config::Chain;
use self::exec::{Call, Op};
use super::PluginConfig;

/// The `cni` driver; it is always there (its networks say what they lack).
pub fn driver(cfg: &PluginConfig) -> Option<Arc<dyn NetworkDriver>> {
    let timeout = super::timeout();
    Some(Arc::new(CniDriver(Arc::new(Cni {
        config_dir: cfg.cni_config_dir.clone(),
        path: cfg.cni_path.clone(),
        timeout,
    }))))
}

/// The `cni` driver: where it finds configurations and plugins.
struct CniDriver(Arc<Cni>);

struct Cni {
    config_dir: PathBuf,
    path: Vec<PathBuf>,
    timeout: Duration,
}

/// What the engine keeps for a cni endpoint.
struct State {
    container_id: String,
    chain: Chain,
    result: Value,
}

impl State {
    fn to_value(&self) -> Value {
        json!({
            "containerId": self.container_id,
            "config": self.chain.to_value(),
            "result": self.result,
        })
    }

    fn from_value(v: &Value) -> Result<Self> {
        let bad = |why: &str| {
            Error::plugin(
                Kind::Internal,
                format!("the recorded CNI state of this endpoint {why}"),
            )
        };
        Ok(Self {
            container_id: v["containerId"]
                .as_str()
                .ok_or_else(|| bad("has no container id"))?
                .to_owned(),
            chain: config::from_value(&v["config"], "recorded with the endpoint")?,
            result: v.get("result").cloned().ok_or_else(|| bad("has no result"))?,
        })
    }
}

/// The container's id: the sandbox berth made for it is named by it.
/// Sandboxes of other origins fall back to the endpoint's id, which is as
/// unique.
fn container_id(ep: &Endpoint<'_>) -> String {
    ep.sandbox
        .and_then(|s| s.path.file_name())
        .and_then(|f| f.to_str())
        .filter(|f| f.len() == 64 && f.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or(ep.id)
        .to_owned()
}

impl Cni {
    fn call<'a>(&'a self, container_id: &'a str, netns: Option<&'a Path>, ifname: &'a IfName) -> Call<'a> {
        Call {
            container_id,
            netns,
            ifname: ifname.as_str(),
            cni_path: &self.path,
            timeout: self.timeout,
        }
    }

    /// Runs `ADD` for plugin `i` and checks that it printed a result.
    async fn add_one(&self, chain: &Chain, i: usize, call: &Call<'_>, prev: Option<&Value>) -> Result<Value> {
        let kind = chain.types().nth(i).unwrap_or_default().to_owned();
        let prog = exec::find(&kind, &self.path, &format!("plugin {kind:?}"))?;
        let out = exec::run(&prog, &kind, Op::Add, call, &chain.plugin_conf(i, prev)).await?;
        if out.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::plugin(
                Kind::Internal,
                format!("cni plugin {kind}: ADD succeeded but printed no result"),
            ));
        }
        let v: Value = serde_json::from_slice(&out).map_err(|e| {
            Error::plugin(
                Kind::Internal,
                format!(
                    "cni plugin {kind}: ADD printed something that is not a CNI result: not JSON ({e}): {:?}",
                    exec::excerpt(&out, 120)
                ),
            )
        })?;
        // An error object is no result, whatever the exit status said.
        if let Some(e) =
            decode_error(&out).filter(|_| v.get("ips").is_none() && v.get("interfaces").is_none())
        {
            return Err(Error::plugin(
                Kind::Internal,
                format!(
                    "cni plugin {kind}: ADD failed: {} (code {}, though it exited with 0)",
                    exec::excerpt(e.msg.as_bytes(), 400),
                    e.code
                ),
            ));
        }
        result::decode_value(&v).map_err(|e| {
            Error::plugin(
                Kind::Internal,
                format!("cni plugin {kind}: ADD printed an invalid CNI result: {e}"),
            )
        })?;
        Ok(v)
    }

    /// Runs `DEL` for plugins `0..n` in reverse order, each given `prev`;
    /// goes on after failures and reports them all.
    async fn del(&self, chain: &Chain, n: usize, call: &Call<'_>, prev: Option<&Value>) -> Result<()> {
        let prev = prev.filter(|_| chain.has_check());
        let mut errors = Vec::new();
        for i in (0..n.min(chain.plugins.len())).rev() {
            let kind = chain.types().nth(i).unwrap_or_default().to_owned();
            let done = async {
                let prog = exec::find(&kind, &self.path, &format!("plugin {kind:?}"))?;
                exec::run(&prog, &kind, Op::Del, call, &chain.plugin_conf(i, prev)).await
            }
            .await;
            if let Err(e) = done {
                errors.push(e.chain());
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::plugin(Kind::Internal, errors.join("; ")))
        }
    }
}

/// A cni network, opened: where its chain comes from (a chain built from
/// `cni.plugin` options is built once; a configuration list is read
/// again at each attach, as libcni does) and whether berth's firewall
/// isolates its bridges.
struct CniNet {
    cni: Arc<Cni>,
    net: Network,
    source: Source,
    isolate: bool,
}

impl CniNet {
    /// The chain the network runs now.
    fn chain(&self) -> Result<Chain> {
        match &self.source {
            Source::Config(name) => config::load(&self.cni.config_dir, name),
            Source::Plugin(chain) => Ok(chain.clone()),
        }
    }
}

/// Where a cni network's chain comes from.
enum Source {
    /// `cni.config=NAME` in the configuration directory.
    Config(String),
    /// Built from `cni.plugin=TYPE` and the plugin's options.
    Plugin(Chain),
}

/// The alias of a bridge that a chain's `bridge` plugin made for a berth
/// network (see the module docs).
const ALIAS_PREFIX: &str = "berth-cni:";

/// Refuses a chain bridge that another berth network made for itself.
fn check_owner(ctx: &Context, net: &Network, bridge: &str) -> Result<()> {
    match ctx.networks.owner(&net.id, bridge) {
        Some(o) => Err(Error::BridgeOfAnotherNetwork {
            bridge: bridge.to_owned(),
            network: o.network().name.clone(),
        }),
        None => Ok(()),
    }
}

fn firewall(net: &Network, bridge: &str) -> Result<FwNetwork> {
    Ok(FwNetwork {
        bridge: IfName::new(bridge)?,
        masquerade: Vec::new(),
        internal: net.internal,
        icc: true,
    })
}

/// Marks the bridges of `made` (missing before an `ADD`) that are there
/// now and unmarked as made by the plugin for `net`. A bridge left
/// unmarked (the mark failed) is only kept, never someone else's removed.
async fn mark_made(ctx: &Context, net: &Network, made: &[String]) {
    for bridge in made {
        let marked = async {
            match link::get(&ctx.handle, bridge).await? {
                Some(l) if l.kind.as_deref() == Some("bridge") && l.alias.is_none() => {
                    link::set_alias(&ctx.handle, l.index, &format!("{ALIAS_PREFIX}{}", net.id)).await
                }
                _ => Ok(()),
            }
        }
        .await;
        if let Err(e) = marked {
            tracing::warn!(network = %net.name, "marking bridge {bridge} as made by berth: {}", e.chain());
        }
    }
}

#[async_trait]
impl NetworkDriver for CniDriver {
    fn name(&self) -> &str {
        "cni"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            ipam: false,
            options: &[
                "cni.config",
                "cni.plugin",
                "cni.version",
                "cni.isolate",
                "KEY[.KEY...] (with cni.plugin: the plugin's own options)",
            ],
            ..Capabilities::own_sandbox()
        }
    }

    async fn open(&self, net: &Network) -> Result<Arc<dyn NetworkHandle>> {
        let cni = &self.0;
        let source = match config::source(&net.options, &cni.config_dir)? {
            config::Source::Config(name) => Source::Config(name),
            config::Source::Plugin(_) => Source::Plugin(config::chain(net, &cni.config_dir)?),
        };
        let opened = CniNet {
            cni: cni.clone(),
            net: net.clone(),
            source,
            isolate: config::isolate(&net.options),
        };
        let chain = opened.chain()?;
        for (kind, what) in chain.programs() {
            exec::find(&kind, &cni.path, &what)?;
        }
        if net.internal && (chain.bridges().is_empty() || !opened.isolate) {
            return Err(Error::plugin(
                Kind::Invalid,
                "--internal on a cni network needs a bridge plugin in the chain and cni.isolate left on: berth's firewall keeps a bridge's traffic in, other plugins' traffic is theirs to filter",
            ));
        }
        Ok(Arc::new(opened))
    }
}

#[async_trait]
impl NetworkHandle for CniNet {
    fn network(&self) -> &Network {
        &self.net
    }

    /// The bridges of its chain's `bridge` plugins.
    fn shared_links(&self) -> Vec<String> {
        self.chain().map(|c| c.bridges()).unwrap_or_default()
    }

    async fn create(&self, ctx: &Context) -> Result<()> {
        let bridges = self.chain()?.bridges();
        for bridge in &bridges {
            check_owner(ctx, &self.net, bridge)?;
        }
        if !self.isolate {
            return Ok(());
        }
        for bridge in &bridges {
            ctx.firewall.add_network(&firewall(&self.net, bridge)?)?;
        }
        Ok(())
    }

    async fn delete(&self, ctx: &Context) -> Result<()> {
        let net = &self.net;
        let chain = match self.chain() {
            Ok(c) => c,
            Err(e) => {
                // Nothing berth knows of to remove.
                tracing::warn!(network = %net.name, "cannot read its CNI configuration to clean up: {}", e.chain());
                return Ok(());
            }
        };
        let mut errors = Vec::new();
        for bridge in chain.bridges() {
            // Another network's own bridge (a cni network made before such
            // were refused): its firewall entry and the bridge are that
            // network's.
            if let Err(e) = check_owner(ctx, net, &bridge) {
                tracing::warn!(network = %net.name, "leaving bridge {bridge} alone: {e}");
                continue;
            }
            // Another cni network still puts containers on it.
            if !ctx.networks.sharing(&net.id, &bridge).is_empty() {
                continue;
            }
            if let Err(e) = firewall(net, &bridge).and_then(|fw| ctx.firewall.remove_network(&fw)) {
                errors.push(e.chain());
            }
            let gone = async {
                let links = link::list(&ctx.handle).await?;
                let Some(br) = links
                    .iter()
                    .find(|l| l.name == bridge && l.kind.as_deref() == Some("bridge"))
                else {
                    return Ok(());
                };
                if !br.alias.as_deref().is_some_and(|a| a.starts_with(ALIAS_PREFIX)) {
                    tracing::info!(network = %net.name, "leaving bridge {bridge}: berth did not make it");
                    return Ok(());
                }
                if links.iter().any(|l| l.master == Some(br.index)) {
                    tracing::info!(network = %net.name, "leaving bridge {bridge}: interfaces are still on it");
                    return Ok(());
                }
                link::del(&ctx.handle, br.index).await
            }
            .await;
            if let Err(e) = gone {
                errors.push(e.chain());
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::plugin(Kind::Internal, errors.join("; ")))
        }
    }

    async fn attach(&self, ctx: &Context, ep: &Endpoint<'_>) -> Result<Attachment> {
        let (cni, net) = (&self.cni, &self.net);
        let sandbox = ep
            .sandbox
            .ok_or_else(|| Error::NoSandbox { driver: Some("cni") })?;
        let chain = self.chain()?;
        let id = container_id(ep);
        let call = cni.call(&id, Some(&sandbox.path), ep.ifname);
        // The chain's bridges that are missing now: those the plugin makes
        // are berth's.
        let mut missing = Vec::new();
        for bridge in chain.bridges() {
            check_owner(ctx, net, &bridge)?;
            if link::get(&ctx.handle, &bridge).await?.is_none() {
                missing.push(bridge);
            }
        }
        let mut prev: Option<Value> = None;
        for i in 0..chain.plugins.len() {
            match cni.add_one(&chain, i, &call, prev.as_ref()).await {
                Ok(r) => prev = Some(r),
                Err(e) => {
                    // Undo every plugin that ran, this one too: it may have
                    // done part of its work before failing.
                    if let Err(undo) = cni.del(&chain, i + 1, &call, prev.as_ref()).await {
                        tracing::warn!(network = %net.name, "rolling back a failed ADD: {}", undo.chain());
                    }
                    return Err(e);
                }
            }
        }
        mark_made(ctx, net, &missing).await;
        let raw = prev.unwrap_or(Value::Null);
        let res = result::decode_value(&raw).unwrap_or_default();
        let (addresses, gateways, mac) = res.sandbox_view(ep.ifname.as_str());
        Ok(Attachment {
            host_ifname: None,
            addresses,
            gateways,
            mac,
            state: Some(
                State {
                    container_id: id,
                    chain,
                    result: raw,
                }
                .to_value(),
            ),
        })
    }

    async fn detach(&self, _ctx: &Context, ep: &Endpoint<'_>) -> Result<()> {
        let cni = &self.cni;
        let netns = ep.sandbox.map(|s| s.path.as_path());
        match ep.state {
            Some(v) => {
                let st = State::from_value(v)?;
                let call = cni.call(&st.container_id, netns, ep.ifname);
                cni.del(&st.chain, st.chain.plugins.len(), &call, Some(&st.result))
                    .await
            }
            None => {
                // No recorded result (an attach that never finished): the
                // plugins release what they can without one.
                let chain = self.chain()?;
                let id = container_id(ep);
                let call = cni.call(&id, netns, ep.ifname);
                cni.del(&chain, chain.plugins.len(), &call, None).await
            }
        }
    }

    async fn check(&self, _ctx: &Context, ep: &Endpoint<'_>) -> Result<()> {
        let cni = &self.cni;
        let st = State::from_value(ep.state.ok_or_else(|| {
            Error::plugin(
                Kind::Internal,
                "no CNI result was recorded for this container, so there is nothing to check against",
            )
        })?)?;
        if !st.chain.has_check() {
            return Err(Error::plugin(
                Kind::Unsupported,
                format!(
                    "CNI configuration {} has cniVersion {}: CHECK needs 0.4.0 or later",
                    st.chain.name, st.chain.version
                ),
            ));
        }
        if st.chain.disable_check {
            return Ok(());
        }
        let sandbox = ep
            .sandbox
            .ok_or_else(|| Error::plugin(Kind::Conflict, "the container's network namespace is gone"))?;
        let call = cni.call(&st.container_id, Some(&sandbox.path), ep.ifname);
        for (i, kind) in st.chain.types().enumerate() {
            let prog = exec::find(kind, &cni.path, &format!("plugin {kind:?}"))?;
            exec::run(
                &prog,
                kind,
                Op::Check,
                &call,
                &st.chain.plugin_conf(i, Some(&st.result)),
            )
            .await?;
        }
        Ok(())
    }
}
