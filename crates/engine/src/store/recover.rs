//! `berth daemon --recover-store`: start on what a damaged store still
//! holds.
//!
//! A file that opens and checks whole, every record of which decodes, is
//! used as it is. Otherwise the file is set aside as
//! `berth.redb.corrupt-<unix time>` (untouched, for a post-mortem), what
//! can still be read from a copy of it is read table by table and record
//! by record, and a new store is written with every record that decodes.
//! A record that does not is dropped and named; so is a container's
//! endpoint on a network whose record was lost (its container is kept). A
//! file redb cannot open at all gives an empty store.
//!
//! What the kernel still holds is used where it says enough: a bridge
//! berth made carries its network's id (`berth:<id>` in its alias) and its
//! subnets (the bridge's addresses), so a bridge network whose record is
//! lost is rebuilt from it, and the containers' endpoints on it are kept.
//! The built-in `bridge` network (bridge `berth0`) gets back its name; any
//! other gets the name `recovered-<short id>`, and is made internal: its
//! name, labels and options are lost, and whether traffic may leave it is
//! not known, so none may until it is recreated. A network's options and a
//! container's command and names are not in the kernel, and nothing else
//! is rebuilt. What the kernel still holds of what was lost is named in
//! the report (sandboxes, and the processes still running in them), and
//! the restart's sweep then removes it like any other stray (links,
//! sandbox pins, firewall elements); the processes are left running,
//! without a network, for the operator to end.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use berth_core::{IpamConfig, Network, Scope};
use ipnet::IpNet;
use redb::{Database, ReadableDatabase, ReadableTable};

use super::model::{ContainerRecord, NetworkRecord};
use super::{Store, Table, guarded, is_damage, open_checked, prepare_file};
use crate::{Error, Result};

/// What `--recover-store` found, kept and lost: one line each, for the
/// daemon's log.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Why the file could not be used as it was, when it could not.
    pub damage: Option<String>,
    /// Where the damaged file was moved.
    pub set_aside: Option<PathBuf>,
    /// What was kept: `network web (3f2a4b5c6d7e, bridge)`.
    pub kept: Vec<String>,
    /// What was rebuilt from the kernel.
    pub rebuilt: Vec<String>,
    /// What was lost, and why.
    pub lost: Vec<String>,
    /// The ids of the containers kept.
    containers: HashSet<String>,
}

/// What a store still holds.
#[derive(Default)]
struct Salvage {
    networks: Vec<(String, NetworkRecord)>,
    containers: Vec<(String, ContainerRecord)>,
    /// `--serve-docker`'s records that decode, as they were.
    docker: Vec<(String, Vec<u8>)>,
    lost: Vec<String>,
    /// Networks rebuilt from the kernel, one line each.
    rebuilt: Vec<String>,
    /// Their ids.
    rebuilt_ids: HashSet<String>,
}

/// A bridge berth made, as the kernel shows it: what a bridge network
/// whose record is lost is rebuilt from.
#[derive(Clone, Debug)]
pub struct KernelBridge {
    /// The network's id, from the bridge's alias (`berth:<id>`).
    pub id: String,
    /// The bridge's name.
    pub name: String,
    /// Its addresses: each network's gateway with its subnet's prefix.
    pub addresses: Vec<IpNet>,
}

/// The bridges berth made in the namespace of `handle`, like
/// `ip -d addr show type bridge` filtered on the alias.
pub async fn kernel_bridges(handle: &berth_core::rtnetlink::Handle) -> Result<Vec<KernelBridge>> {
    let links = berth_core::link::list(handle).await?;
    let addrs = berth_core::link::addresses(handle).await?;
    Ok(links
        .into_iter()
        .filter(|l| l.kind.as_deref() == Some("bridge"))
        .filter_map(|l| {
            let id = l.alias.as_deref()?.strip_prefix("berth:")?;
            let hex = id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit());
            hex.then(|| KernelBridge {
                id: id.to_owned(),
                addresses: addrs
                    .iter()
                    .filter(|(i, a)| *i == l.index && !is_link_local(a))
                    .map(|(_, a)| *a)
                    .collect(),
                name: l.name,
            })
        })
        .collect())
}

fn is_link_local(a: &IpNet) -> bool {
    match a {
        IpNet::V4(a) => a.addr().is_link_local(),
        IpNet::V6(a) => a.addr().segments()[0] & 0xffc0 == 0xfe80,
    }
}

/// Driver options, as `-o KEY=VALUE` gives them.
type Options = &'static [(&'static str, &'static str)];

/// The built-in networks on bridges: the bridge's name, the network's
/// name and its options (as `ensure_builtin` makes them).
const BUILTIN_BRIDGES: [(&str, &str, Options); 2] = [
    (
        "berth0",
        "bridge",
        &[("com.docker.network.bridge.name", "berth0")],
    ),
    (
        crate::containers::egress::GATEWAY_NETWORK,
        crate::containers::egress::GATEWAY_NETWORK,
        &[
            (
                "com.docker.network.bridge.name",
                crate::containers::egress::GATEWAY_NETWORK,
            ),
            ("com.docker.network.bridge.enable_icc", "false"),
            ("com.docker.network.bridge.enable_ip_masquerade", "true"),
        ],
    ),
];

/// Rebuilds from `bridges` the bridge networks whose records were lost
/// (see the module's docs).
fn rebuild(s: &mut Salvage, bridges: &[KernelBridge]) {
    for b in bridges {
        if s.networks.iter().any(|(_, n)| n.net.id == b.id) {
            continue;
        }
        let short_id = short(&b.id).to_owned();
        let builtin = BUILTIN_BRIDGES.iter().find(|(br, _, _)| *br == b.name);
        let (name, options, internal) = match builtin {
            Some((_, name, opts)) => ((*name).to_owned(), opts.to_vec(), false),
            None if b.name == format!("br-{short_id}") => (format!("recovered-{short_id}"), vec![], true),
            None => (
                format!("recovered-{short_id}"),
                vec![("com.docker.network.bridge.name", b.name.as_str())],
                true,
            ),
        };
        if s.networks.iter().any(|(_, n)| n.net.name == name) {
            s.lost.push(format!(
                "network {short_id}: its bridge {} is still there, but a kept network is called {name}",
                b.name
            ));
            continue;
        }
        let mut net = Network::with_options(&b.id, &name, "bridge", &options);
        net.internal = internal;
        net.ipv6 = b.addresses.iter().any(|a| a.addr().is_ipv6());
        net.ipam = b
            .addresses
            .iter()
            .map(|a| IpamConfig {
                subnet: a.trunc(),
                gateway: Some(a.addr()),
                ip_range: None,
                aux_addresses: Default::default(),
            })
            .collect();
        let subnets: Vec<String> = net.ipam.iter().map(|c| c.subnet.to_string()).collect();
        let what = if builtin.is_some() {
            String::new()
        } else {
            "; its name, labels and options are lost, and it is internal (no traffic leaves it) until it is recreated".into()
        };
        s.rebuilt.push(format!(
            "network {name} ({short_id}, bridge) from bridge {} ({}){what}",
            b.name,
            if subnets.is_empty() {
                "no subnet".to_owned()
            } else {
                subnets.join(", ")
            }
        ));
        s.rebuilt_ids.insert(b.id.clone());
        s.networks.push((
            b.id.clone(),
            NetworkRecord {
                net,
                created: crate::util::now(),
                scope: Scope::Local,
                attachable: false,
                labels: Default::default(),
                builtin: builtin.is_some(),
            },
        ));
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Every row of `table` that can be read, in key order, up to the first
/// that cannot; and why the rest cannot.
fn read_rows(db: &Database, table: Table) -> (Vec<(String, Vec<u8>)>, Option<String>) {
    let rows = Mutex::new(Vec::new());
    let read = guarded("reading", || {
        let tx = db.begin_read()?;
        let t = match tx.open_table(table.def()) {
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            t => t?,
        };
        for row in t.iter()? {
            let (k, v) = row?;
            let row = (k.value().to_owned(), v.value().to_vec());
            rows.lock().unwrap_or_else(|p| p.into_inner()).push(row);
        }
        Ok(())
    });
    let rows = rows.into_inner().unwrap_or_else(|p| p.into_inner());
    let why = read.err().map(|e| match rows.last() {
        Some((k, _)) => format!(
            "table {}: the records after {} cannot be read: {e}",
            table.name(),
            short(k)
        ),
        None => format!("table {}: no record can be read: {e}", table.name()),
    });
    (rows, why)
}

/// Reads and decodes every record that can be, naming what cannot, and
/// rebuilds lost bridge networks from `bridges`.
fn salvage(db: &Database, bridges: &[KernelBridge]) -> Salvage {
    let mut s = Salvage::default();
    for table in Table::ALL {
        let (rows, why) = read_rows(db, table);
        s.lost.extend(why);
        for (id, bytes) in rows {
            let what = match table {
                Table::Networks => "network",
                Table::Containers => "container",
                Table::Docker => "docker",
            };
            let decoded = match table {
                Table::Networks => serde_json::from_slice(&bytes).map(|n| s.networks.push((id.clone(), n))),
                Table::Containers => {
                    serde_json::from_slice(&bytes).map(|c| s.containers.push((id.clone(), c)))
                }
                Table::Docker => serde_json::from_slice::<crate::serve_docker::book::Record>(&bytes)
                    .map(|_| s.docker.push((id.clone(), bytes.clone()))),
            };
            if let Err(e) = decoded {
                s.lost
                    .push(format!("{what} record {id}: dropped, it does not decode: {e}"));
            }
        }
    }
    rebuild(&mut s, bridges);
    // A container keeps its endpoints on the networks that were kept.
    let nets: HashSet<&str> = s.networks.iter().map(|(_, n)| n.net.id.as_str()).collect();
    for (_, c) in &mut s.containers {
        let (on, off): (Vec<_>, Vec<_>) = std::mem::take(&mut c.endpoints)
            .into_iter()
            .partition(|e| nets.contains(e.network_id.as_str()));
        c.endpoints = on;
        for e in off {
            s.lost.push(format!(
                "container {}: its endpoint on network {} (whose record is lost) is dropped",
                c.name,
                short(&e.network_id)
            ));
        }
        if !c.ports_network.is_empty() && !nets.contains(c.ports_network.as_str()) {
            c.ports.clear();
            c.ports_network.clear();
        }
    }
    s
}

/// Reads what a copy of a damaged file still holds, trusting its pages
/// (redb's checked open refused it), and removes the copy.
fn salvage_copy(damaged: &Path, bridges: &[KernelBridge]) -> Salvage {
    let copy = damaged.with_extension("redb.salvage");
    let _ = fs::remove_file(&copy);
    let mut s = match fs::copy(damaged, &copy) {
        Err(e) => {
            let mut s = Salvage {
                lost: vec![format!("every record: the file cannot be copied to read it: {e}")],
                ..Default::default()
            };
            rebuild(&mut s, bridges);
            s
        }
        Ok(_) => match guarded("opening", || Database::create(&copy).map_err(redb::Error::from)) {
            Ok(db) => salvage(&db, bridges),
            Err(e) => {
                let mut s = Salvage {
                    lost: vec![format!("every record: the file cannot be opened: {e}")],
                    ..Default::default()
                };
                rebuild(&mut s, bridges);
                s
            }
        },
    };
    if let Err(e) = fs::remove_file(&copy)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        s.lost
            .push(format!("(could not remove the copy {}: {e})", copy.display()));
    }
    s
}

/// `berth.redb.corrupt-<unix time>`, one that does not exist yet.
fn aside_path(path: &Path) -> PathBuf {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let base = format!("{}.corrupt-{now}", path.display());
    let mut p = PathBuf::from(&base);
    let mut n = 1;
    while p.exists() {
        p = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    p
}

impl Store {
    /// Opens the store at `path`, keeping whatever can still be read of a
    /// damaged one (see the module's docs), and says what was kept and
    /// lost. `bridges` are the bridges berth made that the kernel still
    /// holds ([`kernel_bridges`]): a lost bridge network is rebuilt from
    /// its bridge. Fails only when the file cannot be touched at all (not
    /// readable, the disk full): then nothing is moved.
    pub fn recover(path: &Path, bridges: &[KernelBridge]) -> Result<(Self, Recovery)> {
        prepare_file(path)?;
        let mut rec = Recovery::default();
        let salvaged = match open_checked(path) {
            Ok(db) => {
                let s = salvage(&db, &[]);
                if s.lost.is_empty() {
                    // Whole: a bridge without a record is a stray, for
                    // the sweep.
                    rec.note_kept(&s);
                    return Ok((Self::of(db), rec));
                }
                salvage(&db, bridges)
            }
            Err(e) if is_damage(&e) => {
                rec.damage = Some(e.to_string());
                salvage_copy(path, bridges)
            }
            Err(e) => return Err(Error::store(format!("opening {}", path.display()), e)),
        };
        let aside = aside_path(path);
        fs::rename(path, &aside).map_err(|e| {
            Error::io(
                format!(
                    "moving the damaged store {} aside to {}",
                    path.display(),
                    aside.display()
                ),
                e,
            )
        })?;
        rec.set_aside = Some(aside);
        rec.lost.extend(salvaged.lost.iter().cloned());
        rec.rebuilt.extend(salvaged.rebuilt.iter().cloned());
        rec.note_kept(&salvaged);

        prepare_file(path)?;
        let db = open_checked(path).map_err(|e| Error::store(format!("creating {}", path.display()), e))?;
        let tx = db
            .begin_write()
            .map_err(|e| Error::store("starting a transaction", e))?;
        {
            let mut nets = tx
                .open_table(Table::Networks.def())
                .map_err(|e| Error::store("opening a table", e))?;
            for (id, n) in &salvaged.networks {
                let bytes = serde_json::to_vec(n).map_err(|source| Error::EncodeRecord {
                    id: id.clone(),
                    source,
                })?;
                nets.insert(id.as_str(), bytes.as_slice())
                    .map_err(|e| Error::store("writing", e))?;
            }
            let mut cs = tx
                .open_table(Table::Containers.def())
                .map_err(|e| Error::store("opening a table", e))?;
            for (id, c) in &salvaged.containers {
                let bytes = serde_json::to_vec(c).map_err(|source| Error::EncodeRecord {
                    id: id.clone(),
                    source,
                })?;
                cs.insert(id.as_str(), bytes.as_slice())
                    .map_err(|e| Error::store("writing", e))?;
            }
            let mut ds = tx
                .open_table(Table::Docker.def())
                .map_err(|e| Error::store("opening a table", e))?;
            for (id, bytes) in &salvaged.docker {
                ds.insert(id.as_str(), bytes.as_slice())
                    .map_err(|e| Error::store("writing", e))?;
            }
        }
        tx.commit().map_err(|e| Error::store("committing", e))?;
        Ok((Self::of(db), rec))
    }
}

impl Recovery {
    fn note_kept(&mut self, s: &Salvage) {
        for (_, n) in s.networks.iter().filter(|(id, _)| !s.rebuilt_ids.contains(id)) {
            self.kept.push(format!(
                "network {} ({}, {})",
                n.net.name,
                short(&n.net.id),
                n.net.driver
            ));
        }
        for (_, c) in &s.containers {
            self.kept.push(format!(
                "container {} ({}, {})",
                c.name,
                short(&c.id),
                serde_json::to_value(c.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            ));
            self.containers.insert(c.id.clone());
        }
    }

    /// Names the sandboxes under `netns_dir` of containers whose records
    /// were lost, with the processes still running in them. The restart's
    /// sweep removes the sandboxes; the processes are left to the
    /// operator.
    pub(crate) fn find_leftovers(&mut self, netns_dir: &Path) {
        let Ok(rd) = fs::read_dir(netns_dir) else { return };
        let mut found: Vec<(String, Vec<u32>)> = Vec::new();
        for e in rd.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if id == "host" || self.containers.contains(&id) {
                continue;
            }
            let pids = fs::metadata(e.path())
                .map(|m| processes_in(m.dev(), m.ino()))
                .unwrap_or_default();
            found.push((id, pids));
        }
        found.sort();
        for (id, pids) in found {
            let procs = match pids.as_slice() {
                [] => String::new(),
                [p] => format!("; its process {p} keeps running without a network (end it with kill {p})"),
                ps => {
                    let ps: Vec<String> = ps.iter().map(u32::to_string).collect();
                    format!(
                        "; its processes {} keep running without a network (end them with kill)",
                        ps.join(" ")
                    )
                }
            };
            self.lost.push(format!(
                "container {}: its record is lost, its sandbox is removed{procs}",
                short(&id)
            ));
        }
    }

    /// The report, one line each: what was wrong, where the file went,
    /// what was kept and what was lost.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        match (&self.damage, &self.set_aside) {
            (Some(d), _) => out.push(format!("the store could not be used as it was: {d}")),
            (None, Some(_)) => out.push("the store opened, but some of its records do not decode".into()),
            (None, None) if self.lost.is_empty() => out.push("the store is whole: nothing to recover".into()),
            (None, None) => {}
        }
        if let Some(a) = &self.set_aside {
            out.push(format!(
                "the damaged file is kept as {}; a new store holds what was kept",
                a.display()
            ));
        }
        out.extend(self.kept.iter().map(|k| format!("kept {k}")));
        out.extend(self.rebuilt.iter().map(|r| format!("rebuilt {r}")));
        out.extend(self.lost.iter().map(|l| format!("lost {l}")));
        out.push(format!(
            "kept {} records, rebuilt {} from the kernel, lost {}",
            self.kept.len(),
            self.rebuilt.len(),
            self.lost.len()
        ));
        out
    }
}

/// The processes whose network namespace is the one at (`dev`, `ino`).
fn processes_in(dev: u64, ino: u64) -> Vec<u32> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out: Vec<u32> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| {
            fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| m.dev() == dev && m.ino() == ino)
        })
        .collect();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Op;

    /// A fresh directory under the temporary directory, removed on drop.
    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Self {
            let p = std::env::temp_dir().join(format!("berth-store-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            Self(p)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn network(name: &str, id: &str) -> serde_json::Value {
        serde_json::json!({
            "id": id, "name": name, "driver": "bridge", "ipam": [], "options": {},
            "internal": false, "ipv6": false,
            "created": "2024-01-01T00:00:00Z", "scope": "local"
        })
    }

    fn container(name: &str, id: &str, net: &str) -> serde_json::Value {
        serde_json::json!({
            "id": id, "name": name, "created": "2024-01-01T00:00:00Z", "hostname": "h",
            "cmd": ["sleep"], "network_mode": "n", "status": "exited",
            "endpoints": [{"id": "e".repeat(64), "network_id": net, "ifname": "eth0"}]
        })
    }

    /// A store with two networks and two containers, one of each record
    /// replaced by `bad` bytes when given.
    fn fill(path: &Path, bad: Option<&[u8]>) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let s = Store::open(path).unwrap();
        let (n1, n2) = ("1".repeat(64), "2".repeat(64));
        let ops = vec![
            Op::put(Table::Networks, &n1, &network("one", &n1)).unwrap(),
            Op::put(Table::Networks, &n2, &network("two", &n2)).unwrap(),
            Op::put(
                Table::Containers,
                &"a".repeat(64),
                &container("ca", &"a".repeat(64), &n1),
            )
            .unwrap(),
            Op::put(
                Table::Containers,
                &"b".repeat(64),
                &container("cb", &"b".repeat(64), &n2),
            )
            .unwrap(),
        ];
        rt.block_on(s.write(ops)).unwrap();
        if let Some(bad) = bad {
            rt.block_on(s.write(vec![Op::Put(Table::Networks, n2, bad.to_vec())]))
                .unwrap();
        }
    }

    #[test]
    fn a_whole_store_is_kept_as_it_is() {
        let d = Dir::new("whole");
        let path = d.0.join("berth.redb");
        fill(&path, None);
        let (s, rec) = Store::recover(&path, &[]).unwrap();
        assert!(
            rec.lost.is_empty() && rec.set_aside.is_none(),
            "{:?}",
            rec.lines()
        );
        assert_eq!(rec.kept.len(), 4);
        assert_eq!(s.load::<NetworkRecord>(Table::Networks).unwrap().len(), 2);
        let mode = fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn an_undecodable_record_is_dropped_and_named() {
        let d = Dir::new("record");
        let path = d.0.join("berth.redb");
        fill(&path, Some(b"{\"id\": 5"));
        let e = Store::open(&path).err().expect("the store must be refused");
        let msg = e.chain();
        assert!(
            msg.contains(&format!("record {} of table networks", "2".repeat(64))),
            "{msg}"
        );
        assert!(msg.contains("--recover-store"), "{msg}");

        let (s, rec) = Store::recover(&path, &[]).unwrap();
        let lines = rec.lines().join("\n");
        assert!(
            lines.contains(&format!("lost network record {}", "2".repeat(64))),
            "{lines}"
        );
        assert!(
            lines.contains("lost container cb: its endpoint on network 222222222222"),
            "{lines}"
        );
        assert!(lines.contains("kept network one"), "{lines}");
        let aside = rec.set_aside.clone().unwrap();
        assert!(
            aside.to_string_lossy().contains("berth.redb.corrupt-"),
            "{aside:?}"
        );
        assert!(aside.exists());
        assert_eq!(s.load::<NetworkRecord>(Table::Networks).unwrap().len(), 1);
        let cs = s.load::<ContainerRecord>(Table::Containers).unwrap();
        assert_eq!(cs.len(), 2);
        assert!(cs.iter().find(|c| c.name == "cb").unwrap().endpoints.is_empty());
        drop(s);
        // The new store opens without the flag.
        Store::open(&path).unwrap();
    }

    #[test]
    fn a_lost_bridge_network_is_rebuilt_from_its_bridge_and_keeps_its_endpoints() {
        let d = Dir::new("rebuild");
        let path = d.0.join("berth.redb");
        fill(&path, Some(b"{\"id\": 5"));
        let n2 = "2".repeat(64);
        let bridges = [
            KernelBridge {
                id: n2.clone(),
                name: "br-222222222222".into(),
                addresses: vec!["10.9.0.1/24".parse().unwrap()],
            },
            // A stray whose record was never lost is not rebuilt twice.
            KernelBridge {
                id: "1".repeat(64),
                name: "br-111111111111".into(),
                addresses: vec![],
            },
        ];
        let (s, rec) = Store::recover(&path, &bridges).unwrap();
        let lines = rec.lines().join("\n");
        assert!(
            lines.contains("rebuilt network recovered-222222222222 (222222222222, bridge) from bridge br-222222222222 (10.9.0.0/24)"),
            "{lines}"
        );
        assert!(!lines.contains("lost container cb"), "{lines}");
        let nets = s.load::<NetworkRecord>(Table::Networks).unwrap();
        assert_eq!(nets.len(), 2);
        let n = nets.iter().find(|n| n.net.id == n2).unwrap();
        assert!(n.net.internal && !n.builtin && n.net.options.is_empty());
        assert_eq!(n.net.ipam[0].gateway, Some("10.9.0.1".parse().unwrap()));
        let cs = s.load::<ContainerRecord>(Table::Containers).unwrap();
        assert_eq!(cs.iter().find(|c| c.name == "cb").unwrap().endpoints.len(), 1);
    }

    #[test]
    fn the_default_bridge_gets_its_name_back() {
        let mut s = Salvage::default();
        let id = "3".repeat(64);
        let b = KernelBridge {
            id: id.clone(),
            name: "berth0".into(),
            addresses: vec!["172.17.0.1/16".parse().unwrap(), "fe80::1/64".parse().unwrap()],
        };
        rebuild(&mut s, &[b]);
        let n = &s.networks[0].1;
        assert_eq!(
            (n.net.name.as_str(), n.builtin, n.net.internal),
            ("bridge", true, false)
        );
        assert_eq!(n.net.options["com.docker.network.bridge.name"], "berth0");
        assert_eq!(
            n.net.ipam.len(),
            2,
            "link-local addresses are filtered by kernel_bridges only"
        );
    }

    /// Damages a store file: `all` garbage, a garbled `record` (every
    /// copy of container cb's name), a garbled `header`, or `truncated` to
    /// a third.
    fn damage(kind: &str, p: &Path) {
        let mut b = fs::read(p).unwrap();
        let garble = |x: &mut [u8]| {
            for (i, v) in x.iter_mut().enumerate() {
                *v = (i as u8).wrapping_mul(97).wrapping_add(13);
            }
        };
        match kind {
            "all" => garble(&mut b),
            "header" => garble(&mut b[..512]),
            "record" => {
                let at: Vec<usize> = b
                    .windows(4)
                    .enumerate()
                    .filter(|(_, w)| *w == b"\"cb\"")
                    .map(|(i, _)| i)
                    .collect();
                assert!(!at.is_empty());
                for i in at {
                    garble(&mut b[i - 8..i + 8]);
                }
            }
            "truncated" => b.truncate(b.len() / 3),
            _ => unreachable!(),
        }
        fs::write(p, b).unwrap();
    }

    #[test]
    fn garbage_and_truncation_are_recovered_from() {
        for kind in ["all", "header", "record", "truncated"] {
            let d = Dir::new(kind);
            let path = d.0.join("berth.redb");
            fill(&path, None);
            damage(kind, &path);
            let e = Store::open(&path)
                .err()
                .unwrap_or_else(|| panic!("{kind}: not refused"));
            assert!(e.chain().contains("--recover-store"), "{kind}: {}", e.chain());
            let (s, rec) = Store::recover(&path, &[]).unwrap();
            eprintln!("{kind}:\n{}", rec.lines().join("\n"));
            assert!(!rec.lost.is_empty(), "{kind}: {:?}", rec.lines());
            assert!(rec.set_aside.as_ref().is_some_and(|a| a.exists()), "{kind}");
            assert!(
                !d.0.join("berth.redb.salvage").exists(),
                "{kind}: the copy is removed"
            );
            let kept = s.load::<NetworkRecord>(Table::Networks).unwrap().len()
                + s.load::<ContainerRecord>(Table::Containers).unwrap().len();
            assert_eq!(kept, rec.kept.len(), "{kind}");
            drop(s);
            Store::open(&path).unwrap_or_else(|e| panic!("{kind}: {}", e.chain()));
        }
    }

    #[test]
    fn an_unreadable_file_is_not_moved() {
        // Not damage: a directory where the file should be.
        let d = Dir::new("notafile");
        let path = d.0.join("berth.redb");
        fs::create_dir(&path).unwrap();
        assert!(Store::recover(&path, &[]).is_err());
        assert!(path.is_dir());
        assert_eq!(fs::read_dir(&d.0).unwrap().count(), 1);
    }
}
