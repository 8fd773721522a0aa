//! The engine: the single writer of berth's state, and the only code that
//! sees every driver.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use berth_core::rtnetlink;
use berth_core::{
    Capabilities, Context, Firewall, Netns, NetworkDriver, NetworkHandle, Sandbox, SandboxKind, link,
};
use ipnet::IpNet;
use nix::mount::{MsFlags, mount};

use crate::containers::process;
use crate::networks::ipam::Pool;
use crate::store::model::{ContainerPaths, ContainerRecord, EndpointRecord, NetworkRecord, Status};
use crate::store::{Op, Store, Table};
use crate::{Error, Result};

/// Where the daemon keeps things.
#[derive(Clone, Debug)]
pub struct Config {
    /// Persistent state: the store, container logs (`/var/lib/berth`).
    pub data_root: PathBuf,
    /// Runtime state: pinned namespaces, generated files (`/run/berth`).
    pub exec_root: PathBuf,
    /// The host's resolv.conf, read for containers' resolv.conf.
    pub resolv_conf: PathBuf,
    /// Where third-party drivers come from.
    pub plugins: crate::plugins::PluginConfig,
    /// The cluster this host joins (`--cluster-store`), for global
    /// networks (overlay).
    pub cluster: Option<crate::ClusterConfig>,
    /// Start on what a damaged store still holds (`--recover-store`)
    /// instead of refusing: see [`crate::store::Store::recover`].
    pub recover_store: bool,
    /// Local networks' subnets without `--subnet` come from these
    /// (`--default-address-pool`), or from Docker's defaults when empty.
    pub address_pools: Vec<crate::ipam::AddressPool>,
    /// What to do with br_netfilter's sysctls (`--bridge-nf-call`).
    pub bridge_nf_call: crate::firewall::BridgeNfCall,
}

impl Config {
    /// The directory of pinned sandbox namespaces.
    pub fn netns_dir(&self) -> PathBuf {
        self.exec_root.join("netns")
    }

    /// Where pending attaches and disconnects are written down
    /// (`containers::intents`).
    pub fn intents_dir(&self) -> PathBuf {
        self.exec_root.join("pending")
    }

    /// The pin of the host's own namespace, which `--network host`
    /// containers join.
    pub fn host_netns(&self) -> PathBuf {
        self.netns_dir().join("host")
    }

    /// A container's pinned namespace.
    pub fn sandbox_path(&self, id: &str) -> PathBuf {
        self.netns_dir().join(id)
    }

    /// Where the next container's log directory is made ahead, in the
    /// data root (`containers::files::make_spare_log`).
    pub fn spare_log_dir(&self) -> PathBuf {
        self.data_root.join("containers").join(".spare")
    }

    /// A container's generated files and log.
    pub fn paths(&self, id: &str) -> ContainerPaths {
        let run = self.exec_root.join("containers").join(id);
        ContainerPaths {
            hosts: run.join("hosts"),
            resolv_conf: run.join("resolv.conf"),
            hostname: run.join("hostname"),
            log: self.data_root.join("containers").join(id).join("container.log"),
            started: run.join("started"),
        }
    }
}

/// A network's driver, opened: the handle the engine works through and
/// what the driver declares.
#[derive(Clone)]
pub(crate) struct Driven {
    pub handle: Arc<dyn NetworkHandle>,
    pub caps: Capabilities,
}

/// State behind the engine's lock. No `.await` while it is held.
#[derive(Default)]
pub(crate) struct State {
    pub networks: BTreeMap<String, NetworkRecord>,
    /// Each network's handle, by network id; missing while its driver is
    /// gone (a plugin that went away) or could not open it.
    pub handles: HashMap<String, Driven>,
    pub containers: BTreeMap<String, ContainerRecord>,
    pub pools: HashMap<String, Vec<Pool>>,
    /// Names of networks and containers being created.
    pub reserved_names: HashSet<String>,
    /// Subnets of networks being created.
    pub reserved_subnets: Vec<(IpNet, String)>,
    /// Attaches in flight, per network id.
    pub pending: HashMap<String, usize>,
    /// Networks being removed.
    pub removing: HashSet<String>,
    /// Endpoints detached whose links the kernel may still be deleting,
    /// each with the [`berth_core::Lingering::mark`] of its detach: their
    /// addresses go back to the pools once those deletions are done
    /// ([`Engine::release_unlinked`]).
    pub unlinking: Vec<(u64, EndpointRecord)>,
    /// Host ports published by containers, and by those being created.
    pub ports: crate::firewall::ports::PortIndex,
}

/// The berth engine.
pub struct Engine {
    pub(crate) cfg: Config,
    pub(crate) store: Store,
    pub(crate) ctx: Context,
    pub(crate) host_sandbox: Arc<Sandbox>,
    /// Built-in drivers and loaded plugins, by `-d` name.
    pub(crate) drivers: std::sync::RwLock<BTreeMap<String, Arc<dyn NetworkDriver>>>,
    /// What plugin discovery found, loaded or not.
    pub(crate) plugins: Mutex<Vec<crate::plugins::PluginInfo>>,
    pub(crate) state: Mutex<State>,
    pub(crate) sandboxes: Mutex<HashMap<String, Arc<Sandbox>>>,
    /// The namespace the next container gets, made ahead of time.
    spare: Arc<Mutex<Spare>>,
    pub(crate) dns: Arc<crate::dns::Resolver>,
    /// This host in its cluster, when it joined one.
    pub(crate) cluster: Option<Arc<crate::cluster::member::Member>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// What `--serve-docker` keeps of dockerd's networks and endpoints.
    pub(crate) docker: Mutex<crate::serve_docker::Book>,
    /// The data root's and exec root's locks ([`crate::access`]).
    _locks: Vec<File>,
}

/// A namespace made ahead of the next container that needs one: `lo` up,
/// its netlink connection and the resolver's sockets open. `berth run`
/// then only pins it, instead of waiting for the kernel to make a
/// namespace (about half a millisecond, under the RTNL lock). Only its fd
/// holds it, so the kernel frees it when the daemon exits.
#[derive(Default)]
enum Spare {
    #[default]
    None,
    Making,
    Ready(Netns, rtnetlink::Handle, crate::dns::Sockets),
}

fn io_ctx(what: String) -> impl FnOnce(io::Error) -> Error {
    move |e| Error::io(what, e)
}

fn is_mountpoint(path: &Path) -> bool {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let p = path.to_string_lossy();
    info.lines().any(|l| l.split(' ').nth(4) == Some(&p))
}

/// Whether `dir` is on a tmpfs, as `/run` is on a standard install.
fn on_tmpfs(dir: &Path) -> bool {
    use nix::sys::statfs::{TMPFS_MAGIC, statfs};
    statfs(dir).is_ok_and(|s| s.filesystem_type() == TMPFS_MAGIC)
}

/// Whether `dir` has no entries (or cannot be read).
fn is_empty_dir(dir: &Path) -> bool {
    fs::read_dir(dir).map_or(true, |mut rd| rd.next().is_none())
}

/// Mounts a tmpfs of its own, with `mode`, on the empty directory `dir` of
/// runtime files (namespace pins, generated `/etc` files, pending
/// attaches), unless it is a mount already or on a tmpfs anyway; returns
/// whether it did.
///
/// The exec root is `/run/berth`, which is a tmpfs on a standard install.
/// Where it is not (the machines of DESIGN.md keep `/run` on an ext4
/// without a journal, whose every file creation scans the inodes deleted
/// in the last minutes: 0.1 to over 1 ms a file there, against 0.025 ms
/// on a tmpfs), berth's runtime files would cost a disk's file creations
/// and deletions for every container. The mount stays when the daemon
/// stops, as the files of running containers do; a directory with files
/// in it (from an older daemon) is left on its disk.
fn runtime_tmpfs(dir: &Path, mode: u32) -> Result<bool> {
    if is_mountpoint(dir) || on_tmpfs(dir) || !is_empty_dir(dir) {
        return Ok(false);
    }
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let data = format!("mode={mode:04o}");
    mount(Some("tmpfs"), dir, Some("tmpfs"), flags, Some(data.as_str()))
        .map_err(|e| Error::io(format!("mounting a tmpfs on {}", dir.display()), e.into()))?;
    Ok(true)
}

/// Makes `dir` a private mount, as `ip netns` does with `/run/netns`:
/// namespace pins made under it then do not propagate into other mount
/// namespaces, and containers can drop the whole directory. It is a
/// tmpfs of its own ([`runtime_tmpfs`]), else a bind mount of itself.
fn private_mount(dir: &Path) -> Result<()> {
    if !runtime_tmpfs(dir, 0o755)? && !is_mountpoint(dir) {
        mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(|e| Error::io(format!("bind-mounting {}", dir.display()), e.into()))?;
    }
    mount(None::<&str>, dir, None::<&str>, MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(|e| Error::io(format!("making {} private", dir.display()), e.into()))
}

fn pin_host(path: &Path) -> Result<()> {
    if is_mountpoint(path) {
        return Ok(());
    }
    File::create(path).map_err(io_ctx(format!("creating {}", path.display())))?;
    mount(
        Some("/proc/self/ns/net"),
        path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| {
        Error::io(
            format!("pinning the host namespace at {}", path.display()),
            e.into(),
        )
    })
}

impl Engine {
    /// Opens the store, takes the data root's lock, and restores every
    /// network and container into the kernel. Must run inside a tokio
    /// runtime, in the namespace that plays the host.
    pub async fn start(cfg: Config) -> Result<Arc<Self>> {
        let locks = crate::access::lock_roots(&cfg)?;
        let netns_dir = cfg.netns_dir();
        fs::create_dir_all(&netns_dir).map_err(io_ctx(format!("creating {}", netns_dir.display())))?;
        crate::access::fix_modes(&cfg);
        // The store refuses a damaged file before any kernel work.
        let store_path = cfg.data_root.join("berth.redb");
        let store = match cfg.recover_store {
            false => Some(Store::open(&store_path)?),
            true => None,
        };
        private_mount(&netns_dir)?;
        pin_host(&cfg.host_netns())?;
        // Generated files are bind-mounted into containers; pending
        // attaches are the daemon's alone, as the data root is.
        for (dir, mode) in [
            (cfg.exec_root.join("containers"), 0o755),
            (cfg.intents_dir(), 0o700),
        ] {
            fs::create_dir_all(&dir).map_err(io_ctx(format!("creating {}", dir.display())))?;
            runtime_tmpfs(&dir, mode)?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode))
                .map_err(io_ctx(format!("setting the mode of {}", dir.display())))?;
        }

        let host = Arc::new(Netns::current()?);
        let handle = host.connect()?;
        let store = match store {
            Some(s) => s,
            None => {
                // Read only: the bridges lost networks are rebuilt from.
                let bridges = crate::store::kernel_bridges(&handle).await?;
                let (store, mut report) = Store::recover(&store_path, &bridges)?;
                report.find_leftovers(&netns_dir);
                for line in report.lines() {
                    tracing::warn!("store recovery: {line}");
                }
                store
            }
        };
        let firewall = Arc::new(Firewall::new(host.clone())?);
        let host_sandbox = Arc::new(Sandbox {
            ns: Netns::current()?,
            handle: handle.clone(),
            path: cfg.host_netns(),
        });
        let mut drivers: BTreeMap<String, Arc<dyn NetworkDriver>> = BTreeMap::new();
        for d in crate::plugins::builtin(&cfg.plugins) {
            drivers.insert(d.name().to_owned(), d);
        }
        let features = berth_core::Features::probe().await?;
        tracing::info!("kernel link kinds: {features}");
        let dns = crate::dns::Resolver::new(cfg.resolv_conf.clone());
        let (cluster, cluster_ctx) = match &cfg.cluster {
            Some(c) => {
                let (member, ctx) = crate::cluster::member::join(c, &handle, &cfg.data_root).await?;
                (Some(member), Some(ctx))
            }
            None => (None, None),
        };
        let run_dir = cfg.exec_root.clone();
        let engine = Arc::new(Self {
            dns,
            cfg,
            store,
            ctx: Context {
                host,
                handle,
                firewall,
                lingering: Default::default(),
                features,
                networks: Default::default(),
                cluster: cluster_ctx,
                run_dir,
            },
            host_sandbox,
            drivers: std::sync::RwLock::new(drivers),
            plugins: Mutex::new(Vec::new()),
            state: Mutex::new(State::default()),
            sandboxes: Mutex::new(HashMap::new()),
            spare: Arc::default(),
            cluster,
            locks: Mutex::new(HashMap::new()),
            docker: Mutex::default(),
            _locks: locks,
        });
        engine.reload_plugins().await;
        engine.restore().await?;
        if let Some(m) = &engine.cluster {
            tokio::spawn(Self::follow_cluster(Arc::downgrade(&engine), m.store.watch()));
        }
        engine.make_spare();
        engine.make_spare_log();
        Ok(engine)
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Takes every change the store holds to the disk: the daemon's last
    /// act before it exits (a started report's commit does not wait for
    /// the disk; see [`crate::store::Store::write_volatile`]).
    pub async fn flush(&self) -> Result<()> {
        self.store.flush().await
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The driver for `-d NAME`, or for a name it also answers to
    /// ([`Capabilities::aliases`]).
    pub(crate) fn driver(&self, name: &str) -> Result<Arc<dyn NetworkDriver>> {
        let drivers = self.drivers.read().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = drivers.get(name) {
            return Ok(d.clone());
        }
        if let Some(d) = drivers
            .values()
            .find(|d| d.capabilities().aliases.contains(&name))
        {
            return Ok(d.clone());
        }
        let mut known: Vec<&str> = drivers.keys().map(String::as_str).collect();
        let aliases: Vec<&'static str> = drivers
            .values()
            .flat_map(|d| d.capabilities().aliases.iter().copied())
            .collect();
        known.extend(aliases);
        Err(Error::UnknownDriver {
            name: name.to_owned(),
            known: known.into_iter().map(str::to_owned).collect(),
        })
    }

    /// The handle of a network and what its driver declares; when there
    /// is none, why (its driver is gone, or could not open it).
    pub(crate) fn driven(&self, st: &State, net: &NetworkRecord) -> Result<Driven> {
        if let Some(d) = st.handles.get(&net.net.id) {
            return Ok(d.clone());
        }
        self.driver(&net.net.driver)?;
        Err(Error::NotOpened {
            network: net.net.name.clone(),
            driver: net.net.driver.clone(),
        })
    }

    /// Opens a stored network with its driver and keeps the handle.
    pub(crate) async fn open(&self, net: &NetworkRecord) -> Result<Driven> {
        let driver = self.driver(&net.net.driver)?;
        let driven = Driven {
            handle: driver.open(&net.net).await?,
            caps: driver.capabilities(),
        };
        self.state().handles.insert(net.net.id.clone(), driven.clone());
        Ok(driven)
    }

    /// Names of the drivers `-d` accepts, with what each does and whether
    /// the running kernel supports it.
    pub fn drivers(&self) -> Vec<(String, berth_core::Capabilities, berth_core::Result<()>)> {
        self.drivers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(n, d)| (n.clone(), d.capabilities(), d.supported(&self.ctx.features)))
            .collect()
    }

    /// Discovers plugins again: new ones become drivers, gone ones stop
    /// being drivers (their networks stay, and say so when used). Built-in
    /// drivers cannot be replaced. Returns what was found.
    pub async fn reload_plugins(&self) -> Vec<crate::plugins::PluginInfo> {
        let found = crate::plugins::discover(&self.cfg.plugins).await;
        let builtin: Vec<String> = crate::plugins::builtin(&self.cfg.plugins)
            .iter()
            .map(|d| d.name().to_owned())
            .collect();
        let mut infos = Vec::new();
        {
            let mut drivers = self.drivers.write().unwrap_or_else(|p| p.into_inner());
            drivers.retain(|name, _| builtin.contains(name));
            for mut p in found {
                let alias = drivers
                    .values()
                    .any(|d| d.capabilities().aliases.contains(&p.info.name.as_str()));
                if builtin.contains(&p.info.name) || alias {
                    p.info.status = format!("refused: {:?} is a built-in driver", p.info.name);
                    p.driver = None;
                } else if drivers.contains_key(&p.info.name) {
                    p.info.status = format!("refused: another plugin already provides {:?}", p.info.name);
                    p.driver = None;
                }
                if let Some(d) = p.driver {
                    drivers.insert(p.info.name.clone(), d);
                }
                if p.info.status != "loaded" {
                    tracing::warn!(plugin = %p.info.name, path = %p.info.path, "{}", p.info.status);
                }
                infos.push(p.info);
            }
        }
        *self.plugins.lock().unwrap_or_else(|p| p.into_inner()) = infos.clone();
        // The networks of plugins get handles of the plugins found now.
        let plugged: Vec<NetworkRecord> = {
            let mut st = self.state();
            let nets: Vec<NetworkRecord> = st
                .networks
                .values()
                .filter(|n| !builtin.contains(&n.net.driver))
                .cloned()
                .collect();
            for n in &nets {
                st.handles.remove(&n.net.id);
            }
            nets
        };
        for n in &plugged {
            if let Err(e) = self.open(n).await {
                tracing::warn!(network = %n.net.name, "opening with its plugin: {}", e.chain());
            }
        }
        self.sync_networks();
        infos
    }

    /// What the last discovery found.
    pub fn plugins(&self) -> Vec<crate::plugins::PluginInfo> {
        self.plugins.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Tells the drivers what networks exist now.
    pub(crate) fn sync_networks(&self) {
        let nets = {
            let st = self.state();
            st.networks
                .keys()
                .filter_map(|id| st.handles.get(id).map(|d| d.handle.clone()))
                .collect()
        };
        self.ctx.networks.set(nets);
    }

    /// Serializes operations on one container.
    pub(crate) fn container_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(id.to_owned()).or_default().clone()
    }

    pub(crate) fn forget_lock(&self, id: &str) {
        self.locks.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// The sandbox of a container: cached, or reopened from its pin.
    pub(crate) fn sandbox(&self, c: &ContainerRecord) -> Result<Arc<Sandbox>> {
        if self.kind_of(c) == Some(SandboxKind::Host) {
            return Ok(self.host_sandbox.clone());
        }
        if let Some(s) = self
            .sandboxes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&c.id)
        {
            return Ok(s.clone());
        }
        let path = c.sandbox.clone().ok_or_else(|| Error::NotRunning {
            container: c.name.clone(),
        })?;
        let ns = Netns::open(&path)?;
        let handle = ns.connect()?;
        let sb = Arc::new(Sandbox { ns, handle, path });
        self.sandboxes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(c.id.clone(), sb.clone());
        Ok(sb)
    }

    /// What kind of sandbox a container has, from the driver of its first
    /// network.
    pub(crate) fn kind_of(&self, c: &ContainerRecord) -> Option<SandboxKind> {
        let st = self.state();
        let ep = c.endpoints.first()?;
        st.handles.get(&ep.network_id).map(|d| d.caps.sandbox)
    }

    /// Makes the namespace the next container gets ([`Spare`]), unless one
    /// is there or being made. Off the runtime; call it once the current
    /// container is resolvable, so that the kernel's work for the next one
    /// does not delay this one's.
    pub(crate) fn make_spare(&self) {
        {
            let mut spare = self.spare.lock().unwrap_or_else(|p| p.into_inner());
            if !matches!(*spare, Spare::None) {
                return;
            }
            *spare = Spare::Making;
        }
        let (slot, rt) = (self.spare.clone(), tokio::runtime::Handle::current());
        tokio::task::spawn_blocking(move || {
            let made = Netns::create_with(|| {
                let _rt = rt.enter(); // register the sockets with the runtime
                link::loopback_up_here()?;
                let (conn, handle, _) = rtnetlink::new_connection()?;
                Ok((conn, handle, crate::dns::bind()?))
            });
            let mut spare = slot.lock().unwrap_or_else(|p| p.into_inner());
            *spare = match made {
                Ok((ns, (conn, handle, sockets))) => {
                    rt.spawn(conn);
                    Spare::Ready(ns, handle, sockets)
                }
                Err(e) => {
                    tracing::debug!("making a spare namespace: {e}");
                    Spare::None
                }
            };
        });
    }

    /// Makes a pinned namespace with `lo` up: the spare one when it is
    /// ready, else a new one.
    pub(crate) async fn new_sandbox(&self, id: &str, dns: bool) -> Result<Arc<Sandbox>> {
        let path = self.cfg.sandbox_path(id);
        let spare = {
            let mut spare = self.spare.lock().unwrap_or_else(|p| p.into_inner());
            match std::mem::take(&mut *spare) {
                Spare::Ready(ns, handle, sockets) => Some((ns, handle, sockets)),
                other => {
                    *spare = other;
                    None
                }
            }
        };
        let (ns, handle, sockets) = match spare {
            Some((ns, handle, sockets)) => {
                ns.pin(&path)?;
                (ns, handle, dns.then_some(sockets))
            }
            None => {
                // One thread inside the new namespace opens everything the
                // sandbox needs there: its netlink socket and the resolver's
                // sockets.
                let rt = tokio::runtime::Handle::current();
                let (ns, (conn, handle, sockets)) = Netns::create_pinned_with(&path, || {
                    let _rt = rt.enter(); // register the sockets with the runtime
                    link::loopback_up_here()?;
                    let (conn, handle, _) = rtnetlink::new_connection()?;
                    let sockets = if dns { Some(crate::dns::bind()?) } else { None };
                    Ok((conn, handle, sockets))
                })?;
                rt.spawn(conn);
                (ns, handle, sockets)
            }
        };
        let made = match sockets {
            Some(s) => self.dns.serve(id, s),
            None => Ok(()),
        };
        match made {
            Ok(()) => {
                let sb = Arc::new(Sandbox { ns, handle, path });
                self.sandboxes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.to_owned(), sb.clone());
                Ok(sb)
            }
            Err(e) => {
                self.dns.remove(id);
                let _ = Netns::unpin(&path);
                Err(e)
            }
        }
    }

    /// Unpins a container's namespace and forgets its handle. Idempotent.
    pub(crate) fn drop_sandbox(&self, id: &str) -> Result<()> {
        // Its resolver sockets live in the namespace too.
        self.dns.remove(id);
        self.sandboxes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        Ok(Netns::unpin(&self.cfg.sandbox_path(id))?)
    }

    /// Whether a container's process still runs.
    pub(crate) fn running(c: &ContainerRecord) -> bool {
        c.status == Status::Running && process::alive(c.pid, c.pid_start)
    }

    pub(crate) async fn save_container(&self, c: &ContainerRecord) -> Result<()> {
        self.store
            .write(vec![Op::put(Table::Containers, &c.id, c)?])
            .await
    }

    /// Reads the host's resolv.conf (empty when it cannot be read).
    pub(crate) fn host_resolv_conf(&self) -> String {
        fs::read_to_string(&self.cfg.resolv_conf).unwrap_or_default()
    }
}
