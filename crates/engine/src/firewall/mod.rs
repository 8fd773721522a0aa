//! What the engine asks of the firewall beyond the drivers' network
//! elements: published ports ([`ports`]), putting the whole table back
//! in one transaction (part of `berth system reconcile`, SIGHUP), and
//! whether br_netfilter hands bridged frames to the IP hooks
//! ([`BridgeNfCall`]).

pub(crate) mod ports;

use berth_core::link;

use crate::engine::Engine;
use crate::{Error, Result};

/// br_netfilter's sysctls: with them on (the kernel's default in every
/// namespace once br_netfilter is loaded, and what Docker sets), a frame
/// that one bridge port forwards to another also goes through the IP
/// hooks — conntrack and every forward chain — which cost a bridge about
/// 7% of its throughput here. berth needs none of it: the one rule for
/// such frames, that containers of a network with icc off do not reach
/// each other, is the bridge's own port isolation (`enslave_isolated`).
const BRIDGE_NF_CALL: [&str; 3] = [
    "net/bridge/bridge-nf-call-iptables",
    "net/bridge/bridge-nf-call-ip6tables",
    "net/bridge/bridge-nf-call-arptables",
];

/// What the daemon does with br_netfilter's sysctls in its namespace
/// (`berth daemon --bridge-nf-call`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BridgeNfCall {
    /// Off (0) unless the namespace has a bridge berth did not make
    /// (`docker0`, `cni0`, `virbr0`: their firewalls may judge bridged
    /// frames in the IP hooks), in which case they stay as they are.
    #[default]
    Auto,
    /// Off (0), whatever else is there.
    Off,
    /// Left as they are.
    Keep,
}

impl Engine {
    /// Puts the firewall back: the `inet berth` table with every network's
    /// and every published port's elements, as at start, in one
    /// transaction, without touching other tables.
    pub(crate) async fn reinstall_firewall(&self) -> Result<()> {
        let fw = self.ctx.firewall.clone();
        let installed = tokio::task::spawn_blocking(move || fw.install())
            .await
            .map_err(|source| Error::Task {
                what: "reconciling the firewall",
                source,
            })?;
        installed?;
        self.settle_bridge_nf_call().await;
        Ok(())
    }

    /// Turns br_netfilter's hooks off in the host namespace as
    /// [`BridgeNfCall`] says (at start and on reconcile). Says in the log
    /// what it did and why; a failure is logged, not fatal: berth's rules
    /// hold either way, only the bridge's speed differs.
    pub(crate) async fn settle_bridge_nf_call(&self) {
        let policy = self.cfg.bridge_nf_call;
        if policy == BridgeNfCall::Keep {
            return;
        }
        if policy == BridgeNfCall::Auto {
            match link::list(&self.ctx.handle).await {
                Ok(links) => {
                    let foreign = links.iter().find(|l| {
                        l.kind.as_deref() == Some("bridge")
                            && !l.alias.as_deref().is_some_and(|a| a.starts_with("berth"))
                    });
                    if let Some(l) = foreign {
                        tracing::info!(
                            "br_netfilter left as it is: bridge {} is not berth's (--bridge-nf-call off turns it off anyway)",
                            l.name
                        );
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(
                        "br_netfilter left as it is: listing the host's links: {}",
                        e.chain()
                    );
                    return;
                }
            }
        }
        let mut changed = Vec::new();
        for key in BRIDGE_NF_CALL {
            let path = std::path::Path::new("/proc/sys").join(key);
            let was = self.ctx.host.run(|| Ok(std::fs::read_to_string(&path).ok()));
            match was {
                // Not there: br_netfilter is not loaded, nothing to turn off.
                Ok(None) => continue,
                Ok(Some(v)) if v.trim() == "0" => continue,
                Ok(Some(_)) => {}
                Err(e) => {
                    tracing::warn!("reading {key}: {}", e.chain());
                    continue;
                }
            }
            match self.ctx.host.sysctl(key, "0") {
                Ok(()) => changed.push(key.rsplit('/').next().unwrap_or(key)),
                Err(e) => tracing::warn!("turning br_netfilter off: {}", e.chain()),
            }
        }
        if !changed.is_empty() {
            tracing::info!(
                "br_netfilter off for bridged frames ({} = 0): they skip the IP hooks (icc off holds by port isolation)",
                changed.join(", ")
            );
        }
    }
}
