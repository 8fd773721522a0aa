//! One overlay network on one host: its namespace with the bridge and the
//! VXLAN device, made for the first local container and removed with the
//! last, and the entries that reach its containers on other hosts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use berth_core::rtnetlink::Handle;
use berth_core::{
    Attachment, Context, Endpoint, Error, IfName, Mac, Netns, Network, NetworkHandle, Peer, Result, Vanish,
    async_trait, link, vxlan,
};
use tokio::sync::Mutex;

use crate::config::Config;

/// The bridge inside the network's namespace.
const BRIDGE: &str = "br0";

/// The VXLAN device inside the network's namespace.
const VXLAN: &str = "vxlan0";

/// The bridge-side end of an endpoint's veth, in the network's namespace:
/// `ve` and 11 hex digits of the endpoint's id.
fn port_name(endpoint_id: &str) -> String {
    format!("ve{}", &endpoint_id[..endpoint_id.len().min(11)])
}

/// A fixed, locally administered MAC for the bridge, from the network id,
/// so that it never takes a port's.
fn bridge_mac(net: &Network) -> Mac {
    let mut mac = [0x02, 0xb8, 0, 0, 0, 0];
    for (i, b) in mac[2..].iter_mut().enumerate() {
        *b = u8::from_str_radix(net.id.get(2 * i..2 * i + 2).unwrap_or("00"), 16).unwrap_or(0);
    }
    Mac(mac)
}

/// The network's namespace on this host and what is in it.
struct Devices {
    /// Where the namespace is pinned.
    path: PathBuf,
    /// A netlink handle inside it.
    handle: Handle,
    bridge: u32,
    vxlan: u32,
    mtu: u32,
}

/// What this host has of the network.
#[derive(Default)]
struct Local {
    devices: Option<Devices>,
    /// The containers on other hosts, as the engine last said.
    peers: BTreeMap<String, Peer>,
    /// What is programmed in the VXLAN device for them.
    programmed: BTreeMap<String, Peer>,
    /// The devices were taken over from an earlier run of the daemon:
    /// their entries may include containers that went away meanwhile,
    /// removed once the engine says which peers there are now.
    adopted: bool,
}

/// An overlay network, opened: its VNI, its MTU, and what this host has
/// of it.
pub struct OverlayNet {
    net: Network,
    cfg: Config,
    local: Mutex<Local>,
}

impl OverlayNet {
    /// Opens `net`, whose options are parsed.
    pub fn new(net: &Network, cfg: Config) -> Self {
        Self {
            net: net.clone(),
            cfg,
            local: Mutex::new(Local::default()),
        }
    }

    /// The network's VNI (a created network always has one).
    fn vni(&self) -> Result<u32> {
        self.cfg.vni.ok_or_else(|| Error::BadOptionValue {
            key: "vxlan.id".into(),
            value: String::new(),
            accepted: "1 to 16777215 (the network has none: was it made by this driver?)",
        })
    }

    fn path(&self, ctx: &Context) -> PathBuf {
        ctx.run_dir.join("overlay").join(&self.net.id)
    }

    /// The network's devices on this host: the ones there (made before a
    /// restart of the daemon), or new ones.
    async fn devices<'a>(&self, ctx: &Context, local: &'a mut Local) -> Result<&'a Devices> {
        if local.devices.is_none() {
            let path = self.path(ctx);
            let adopted = path.exists();
            let made = if adopted {
                self.adopt(path).await
            } else {
                self.make(ctx, path).await
            };
            local.devices = Some(made?);
            local.adopted = adopted;
            // What reaches the other hosts' containers, before this host's
            // first container talks (so it never learns a failed entry).
            local.programmed.clear();
            self.program(local).await?;
        }
        local.devices.as_ref().ok_or(Error::Vanished {
            link: format!("the namespace of overlay network {}", self.net.name),
            when: Vanish::Meanwhile,
        })
    }

    /// Finds the devices of a namespace made before a restart.
    async fn adopt(&self, path: PathBuf) -> Result<Devices> {
        let ns = Netns::open(&path)?;
        let handle = ns.connect()?;
        let find = |name: &'static str| {
            let handle = handle.clone();
            async move {
                link::get(&handle, name).await?.ok_or(Error::Vanished {
                    link: name.to_owned(),
                    when: Vanish::Meanwhile,
                })
            }
        };
        let (bridge, vxlan) = (find(BRIDGE).await?, find(VXLAN).await?);
        Ok(Devices {
            path,
            handle,
            bridge: bridge.index,
            vxlan: vxlan.index,
            mtu: vxlan.mtu,
        })
    }

    /// Makes the network's namespace, its bridge (no address: the host
    /// cannot reach the overlay) and its VXLAN device, learning nothing.
    async fn make(&self, ctx: &Context, path: PathBuf) -> Result<Devices> {
        let cluster = ctx.cluster.as_ref().ok_or_else(|| Error::NoCluster {
            driver: "overlay".into(),
        })?;
        let vni = self.vni()?;
        let mtu = self
            .cfg
            .mtu
            .unwrap_or(cluster.underlay.mtu.saturating_sub(vxlan::OVERHEAD));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        let ns = Netns::create_pinned(&path)?;
        let made = async {
            let handle = ns.connect()?;
            link::loopback_up(&handle).await?;
            // Frames bridged in here are the overlay's own: the host's
            // firewall rules are not theirs to judge (br_netfilter would
            // pass them through this namespace's netfilter hooks).
            for key in ["iptables", "ip6tables", "arptables"] {
                let _ = ns.sysctl(&format!("net/bridge/bridge-nf-call-{key}"), "0");
            }
            let bridge = link::add_bridge(
                &handle,
                &IfName::new(BRIDGE)?,
                bridge_mac(&self.net),
                Some(mtu),
                "",
            )
            .await?;
            vxlan::add_into(
                &ctx.handle,
                &vxlan::Vxlan {
                    name: VXLAN.into(),
                    vni,
                    local: cluster.underlay.address,
                    mtu,
                },
                &ns,
            )
            .await?;
            link::attach_port(&handle, VXLAN, Some(bridge)).await?;
            let vx = link::get(&handle, VXLAN).await?.ok_or(Error::Vanished {
                link: VXLAN.into(),
                when: Vanish::Meanwhile,
            })?;
            vxlan::no_learning(&handle, vx.index).await?;
            link::set_up(&handle, bridge).await?;
            Ok::<_, Error>(Devices {
                path: path.clone(),
                handle,
                bridge,
                vxlan: vx.index,
                mtu,
            })
        }
        .await;
        if made.is_err() {
            let _ = Netns::unpin(&path);
        }
        made
    }

    /// Brings the VXLAN device's entries in line with the peers: two per
    /// remote container (IP → MAC, MAC → its host's tunnel endpoint).
    async fn program(&self, local: &mut Local) -> Result<()> {
        let Some(d) = &local.devices else {
            return Ok(());
        };
        let stale: Vec<Peer> = local
            .programmed
            .iter()
            .filter(|(id, p)| local.peers.get(*id) != Some(*p))
            .map(|(_, p)| p.clone())
            .collect();
        for p in &stale {
            for a in &p.addresses {
                vxlan::del_neighbour(&d.handle, d.vxlan, a.addr()).await?;
            }
            vxlan::del_fdb(&d.handle, d.vxlan, p.mac).await?;
            local.programmed.remove(&p.endpoint);
        }
        for (id, p) in &local.peers {
            if local.programmed.get(id) == Some(p) {
                continue;
            }
            for a in &p.addresses {
                vxlan::replace_neighbour(&d.handle, d.vxlan, a.addr(), p.mac).await?;
            }
            vxlan::replace_fdb(&d.handle, d.vxlan, p.mac, p.vtep).await?;
            local.programmed.insert(id.clone(), p.clone());
        }
        Ok(())
    }

    /// Removes the entries of taken-over devices that lead to none of the
    /// peers: containers that went away while the daemon was not running.
    async fn remove_stale(local: &Local) -> Result<()> {
        let Some(d) = &local.devices else {
            return Ok(());
        };
        let wanted_ips: Vec<(std::net::IpAddr, Mac)> = local
            .peers
            .values()
            .flat_map(|p| p.addresses.iter().map(move |a| (a.addr(), p.mac)))
            .collect();
        for (ip, mac) in vxlan::neighbours(&d.handle, d.vxlan).await? {
            if !wanted_ips.contains(&(ip, mac)) {
                vxlan::del_neighbour(&d.handle, d.vxlan, ip).await?;
            }
        }
        for (mac, vtep) in vxlan::forwarding(&d.handle, d.vxlan).await? {
            if !local.peers.values().any(|p| p.mac == mac && p.vtep == vtep) {
                vxlan::del_fdb(&d.handle, d.vxlan, mac).await?;
            }
        }
        Ok(())
    }

    /// Removes the network's namespace with everything in it: the VXLAN
    /// device first, which frees its VNI at once (the namespace's own end
    /// comes later, in the kernel's time).
    async fn teardown(&self, local: &mut Local) -> Result<()> {
        if let Some(d) = local.devices.take() {
            link::del(&d.handle, d.vxlan).await?;
            Netns::unpin(&d.path)?;
        }
        local.programmed.clear();
        Ok(())
    }

    /// Removes a network's namespace found at `path` with what is in it.
    pub(crate) async fn remove_namespace(path: &std::path::Path) -> Result<()> {
        if let Ok(ns) = Netns::open(path) {
            let handle = ns.connect()?;
            if let Some(vx) = link::get(&handle, VXLAN).await? {
                link::del(&handle, vx.index).await?;
            }
        }
        Netns::unpin(path)
    }

    /// Makes an endpoint's veth: its port on the bridge, its peer in the
    /// sandbox with the endpoint's addresses. Nothing is left on failure.
    async fn wire(d: &Devices, sandbox: &berth_core::Sandbox, ep: &Endpoint<'_>) -> Result<()> {
        let port = port_name(ep.id);
        let wired = async {
            link::add_veth_into(&d.handle, &port, Some(d.mtu), &sandbox.ns, ep.ifname, ep.mac).await?;
            link::configure(&sandbox.handle, ep.ifname, ep.addresses, ep.gateways).await?;
            link::attach_port(&d.handle, &port, Some(d.bridge)).await
        }
        .await;
        if wired.is_err() {
            let _ = link::del_by_name(&d.handle, &port).await;
        }
        wired
    }

    /// How many containers of this host are on the network.
    async fn ports(d: &Devices) -> Result<usize> {
        Ok(link::list(&d.handle)
            .await?
            .iter()
            .filter(|l| l.master == Some(d.bridge) && l.index != d.vxlan)
            .count())
    }
}

#[async_trait]
impl NetworkHandle for OverlayNet {
    fn network(&self) -> &Network {
        &self.net
    }

    /// Nothing is made until this host's first container joins, but a
    /// namespace left by a daemon that restarted is taken over.
    async fn create(&self, ctx: &Context) -> Result<()> {
        let mut local = self.local.lock().await;
        if self.path(ctx).exists() {
            self.devices(ctx, &mut local).await?;
        }
        Ok(())
    }

    async fn delete(&self, ctx: &Context) -> Result<()> {
        let mut local = self.local.lock().await;
        if local.devices.is_none() && self.path(ctx).exists() {
            local.devices = Some(self.adopt(self.path(ctx)).await?);
        }
        self.teardown(&mut local).await
    }

    async fn peers(&self, _ctx: &Context, peers: &[Peer]) -> Result<()> {
        let mut local = self.local.lock().await;
        local.peers = peers.iter().map(|p| (p.endpoint.clone(), p.clone())).collect();
        if local.adopted {
            Self::remove_stale(&local).await?;
            local.adopted = false;
        }
        self.program(&mut local).await
    }

    async fn attach(&self, ctx: &Context, ep: &Endpoint<'_>) -> Result<Attachment> {
        let sandbox = ep.sandbox.ok_or(Error::NoSandbox { driver: None })?;
        let mut local = self.local.lock().await;
        let d = self.devices(ctx, &mut local).await?;
        if let Err(e) = Self::wire(d, sandbox, ep).await {
            if Self::ports(d).await.unwrap_or(1) == 0 {
                let _ = self.teardown(&mut local).await;
            }
            return Err(e);
        }
        Ok(Attachment::default())
    }

    /// The port back on the bridge and up, the sandbox side up with its
    /// addresses; a port that is gone (and its peer with it) is made again.
    async fn repair(&self, ctx: &Context, ep: &Endpoint<'_>) -> Result<()> {
        let sandbox = ep.sandbox.ok_or(Error::NoSandbox { driver: None })?;
        let mut local = self.local.lock().await;
        let d = self.devices(ctx, &mut local).await?;
        let port = port_name(ep.id);
        let Some(l) = link::get(&d.handle, &port).await? else {
            link::del_by_name(&sandbox.handle, ep.ifname.as_str()).await?;
            return Self::wire(d, sandbox, ep).await;
        };
        link::configure(&sandbox.handle, ep.ifname, ep.addresses, ep.gateways).await?;
        if l.master != Some(d.bridge) || !l.up {
            link::attach_port(&d.handle, &port, Some(d.bridge)).await?;
        }
        Ok(())
    }

    /// Deletes the endpoint's veth, answering once it is gone from sight
    /// (the kernel's slow part goes on in `ctx.lingering`); with the last
    /// container of this host goes the network's namespace.
    async fn detach(&self, ctx: &Context, ep: &Endpoint<'_>) -> Result<()> {
        let mut local = self.local.lock().await;
        let Some(d) = &local.devices else {
            return Ok(());
        };
        let ns = Netns::open(&d.path)?;
        link::del_by_name_early(&d.handle, &ns, &ctx.lingering, &port_name(ep.id)).await?;
        if Self::ports(d).await? == 0 {
            self.teardown(&mut local).await?;
        }
        Ok(())
    }
}
