//! The embedded resolver: one engine-wide server that answers at
//! `127.0.0.11:53` (UDP and TCP) inside every container attached to a
//! user-defined network.
//!
//! Each such container gets a UDP socket and a TCP listener bound inside
//! its own namespace (so it works whatever the driver, also where the host
//! cannot reach the container), all served by tasks of the daemon's one
//! runtime. A query's socket says which container asks, which decides the
//! names it may see: those of the networks it shares with the target. What
//! the resolver does not know goes upstream: to the container's `--dns`
//! servers (from its own namespace), else to the host's resolv.conf servers
//! (from the host's namespace, so a stub at 127.0.0.53 works).
//!
//! The query a stub resolver sends for a container's name is read and
//! answered by hand (`fast.rs`, a few hundred nanoseconds); anything else
//! goes through hickory's parser and encoder (`answer.rs`), which gives the
//! same answers to what both take.

mod answer;
mod fast;
mod serve;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use berth_core::Netns;

use crate::Result;

pub use answer::{Action, Client, Target, View, Zone, answer, answer_fast, answer_full, query};
pub(crate) use serve::Listener;
pub use serve::{Sockets, bind};

/// The address the resolver answers on inside each container.
pub const ADDRESS: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 0, 11);

/// One container's entry: its names and addresses on each network.
#[derive(Clone, Debug, Default)]
pub struct Entry {
    /// The container's id.
    pub id: String,
    /// The names that resolve to it everywhere (name, hostname, short id).
    pub names: Vec<String>,
    /// The name PTR answers give.
    pub ptr_name: String,
    /// Per user-defined network id: the network's name, its addresses
    /// there, and its aliases there.
    pub networks: Vec<(String, String, Vec<IpAddr>, Vec<String>)>,
    /// Whether it asks the embedded resolver itself (`Some`), with what
    /// it knows as a client.
    pub client: Option<Client>,
    /// Its own upstream servers (`--dns`), asked from its namespace.
    pub upstreams: Vec<IpAddr>,
}

/// Where to send a query the resolver cannot answer.
#[derive(Clone)]
pub(crate) struct Upstreams {
    /// At most three servers, tried in order.
    pub servers: Vec<SocketAddr>,
    /// The namespace to ask from; `None` is the host's (the daemon's own).
    pub ns: Option<Arc<Netns>>,
}

/// A container's `--dns` servers and the namespace to ask them from.
type OwnUpstreams = (Vec<IpAddr>, Arc<Netns>);

/// The resolver: what it knows, the sockets it serves, where it forwards.
pub struct Resolver {
    view: RwLock<View>,
    /// What each container put into the view, so that taking it out costs
    /// its own entries, not a walk over every container's. Changed only
    /// while the view's write lock is held.
    owned: Mutex<HashMap<String, Owned>>,
    listeners: Mutex<HashMap<String, Listener>>,
    /// Containers with `--dns`: their servers and namespace.
    own_upstreams: RwLock<HashMap<String, OwnUpstreams>>,
    host_conf: PathBuf,
    host_servers: Mutex<(Option<SystemTime>, Vec<SocketAddr>)>,
}

/// The nameservers of a resolv.conf, at most three, as the libc resolver
/// reads them (port 53; zone suffixes dropped).
pub fn nameservers(conf: &str) -> Vec<SocketAddr> {
    conf.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next()).flatten()
        })
        .filter_map(|a| a.split('%').next().and_then(|a| a.parse::<IpAddr>().ok()))
        .map(|ip| SocketAddr::new(ip, 53))
        .take(3)
        .collect()
}

impl Resolver {
    /// A resolver forwarding to the servers of `host_conf` by default.
    pub fn new(host_conf: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            view: RwLock::new(View::default()),
            owned: Mutex::new(HashMap::new()),
            listeners: Mutex::new(HashMap::new()),
            own_upstreams: RwLock::new(HashMap::new()),
            host_conf,
            host_servers: Mutex::new((None, Vec::new())),
        })
    }

    /// Answers one query from container `client` (see [`answer`]).
    pub fn answer(&self, client: &str, query: &[u8], udp: bool) -> Action {
        let view = self.view.read().unwrap_or_else(|p| p.into_inner());
        answer::answer(&view, client, query, udp)
    }

    /// Like [`Resolver::answer`], but an answer of the fast path goes into
    /// `out` (`None`), so that a socket's loop reuses one buffer.
    pub(crate) fn answer_into(
        &self,
        client: &str,
        query: &[u8],
        udp: bool,
        out: &mut Vec<u8>,
    ) -> Option<Action> {
        let view = self.view.read().unwrap_or_else(|p| p.into_inner());
        if answer::answer_fast(&view, client, query, udp, out) {
            return None;
        }
        Some(answer::answer_full(&view, client, query, udp))
    }

    /// Puts a container's names in (replacing what it had), effective for
    /// the next query.
    pub fn set(&self, e: &Entry, ns: Option<Arc<Netns>>) {
        let mut view = self.view.write().unwrap_or_else(|p| p.into_inner());
        let mut owned = self.owned.lock().unwrap_or_else(|p| p.into_inner());
        remove_from(&mut view, owned.remove(&e.id), &e.id);
        let mut mine = Owned {
            ptr: e.ptr_name.to_lowercase(),
            ..Default::default()
        };
        for (net, net_name, addrs, aliases) in &e.networks {
            let zone = view.zones.entry(net.clone()).or_insert_with(|| Zone {
                name: net_name.to_lowercase(),
                ..Default::default()
            });
            zone.name = net_name.to_lowercase();
            for name in e.names.iter().chain(aliases) {
                let key = name.to_lowercase();
                let targets = zone.names.entry(key.clone()).or_default();
                if !targets.iter().any(|t| t.container == e.id) {
                    targets.push(Target {
                        container: e.id.clone(),
                        addrs: addrs.clone(),
                    });
                    mine.names.push((net.clone(), key));
                }
            }
            for a in addrs {
                zone.reverse.insert(*a, mine.ptr.clone());
                mine.addrs.push((net.clone(), *a));
            }
        }
        if let Some(c) = &e.client {
            view.clients.insert(e.id.clone(), c.clone());
        }
        owned.insert(e.id.clone(), mine);
        drop(owned);
        drop(view);
        let mut own = self.own_upstreams.write().unwrap_or_else(|p| p.into_inner());
        match (e.upstreams.is_empty(), ns) {
            (false, Some(ns)) => {
                own.insert(e.id.clone(), (e.upstreams.clone(), ns));
            }
            _ => {
                own.remove(&e.id);
            }
        }
    }

    /// Takes a container's names out and stops its listener. Idempotent.
    pub fn remove(&self, id: &str) {
        {
            let mut view = self.view.write().unwrap_or_else(|p| p.into_inner());
            let mine = self.owned.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
            remove_from(&mut view, mine, id);
        }
        self.own_upstreams
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Starts answering at 127.0.0.11:53 inside `ns` for container `id`.
    /// Replaces a listener it may already have.
    pub fn listen(self: &Arc<Self>, id: &str, ns: &Netns) -> Result<()> {
        let listener = serve::listen(self.clone(), id.to_owned(), ns)?;
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned(), listener);
        Ok(())
    }

    /// Like [`Resolver::listen`], with sockets already bound by [`bind`]
    /// inside the container's namespace.
    pub fn serve(self: &Arc<Self>, id: &str, sockets: Sockets) -> Result<()> {
        let listener = serve::serve(self.clone(), id.to_owned(), sockets)?;
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned(), listener);
        Ok(())
    }

    /// Whether container `id` has a listener.
    pub fn listening(&self, id: &str) -> bool {
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(id)
    }

    /// Where container `id`'s unknown names go.
    pub(crate) fn upstreams(&self, id: &str) -> Upstreams {
        if let Some((servers, ns)) = self
            .own_upstreams
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
        {
            return Upstreams {
                servers: servers
                    .iter()
                    .take(3)
                    .map(|ip| SocketAddr::new(*ip, 53))
                    .collect(),
                ns: Some(ns.clone()),
            };
        }
        Upstreams {
            servers: self.host_servers(),
            ns: None,
        }
    }

    /// The host's servers, re-read when its resolv.conf changed.
    fn host_servers(&self) -> Vec<SocketAddr> {
        let mtime = std::fs::metadata(&self.host_conf).and_then(|m| m.modified()).ok();
        let mut cache = self.host_servers.lock().unwrap_or_else(|p| p.into_inner());
        if cache.0 != mtime || mtime.is_none() {
            let conf = std::fs::read_to_string(&self.host_conf).unwrap_or_default();
            *cache = (mtime, nameservers(&conf));
        }
        cache.1.clone()
    }
}

/// What one container put into the view.
#[derive(Default)]
struct Owned {
    /// (network id, lowercased name) pairs it added itself as a target of.
    names: Vec<(String, String)>,
    /// (network id, address) reverse entries it added.
    addrs: Vec<(String, IpAddr)>,
    /// The name those reverse entries point at.
    ptr: String,
}

/// Takes container `id`'s entries (`mine`) out of the view: its targets,
/// the names left without one, its reverse entries (unless another
/// container's have replaced them) and zones left empty.
fn remove_from(view: &mut View, mine: Option<Owned>, id: &str) {
    view.clients.remove(id);
    let Some(mine) = mine else {
        return;
    };
    for (net, name) in &mine.names {
        let Some(zone) = view.zones.get_mut(net) else {
            continue;
        };
        if let Some(targets) = zone.names.get_mut(name) {
            targets.retain(|t| t.container != id);
            if targets.is_empty() {
                zone.names.remove(name);
            }
        }
    }
    for (net, addr) in &mine.addrs {
        if let Some(zone) = view.zones.get_mut(net)
            && zone.reverse.get(addr) == Some(&mine.ptr)
        {
            zone.reverse.remove(addr);
        }
    }
    for (net, _) in mine.names.iter() {
        if view.zones.get(net).is_some_and(|z| z.names.is_empty()) {
            view.zones.remove(net);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Message;
    use hickory_proto::rr::RecordType;

    fn entry(id: &str, name: &str, net: &str, ip: &str) -> Entry {
        Entry {
            id: id.into(),
            names: vec![name.into(), id[..4].into()],
            ptr_name: name.into(),
            networks: vec![(
                net.into(),
                "netname".into(),
                vec![ip.parse().unwrap()],
                vec!["svc".into()],
            )],
            client: Some(Client {
                networks: vec![net.into()],
                links: HashMap::new(),
                forward: true,
            }),
            upstreams: vec![],
        }
    }

    fn ips(r: &Resolver, client: &str, name: &str) -> Vec<String> {
        match r.answer(client, &query(1, name, RecordType::A), true) {
            Action::Reply(b) => {
                let mut v: Vec<String> = Message::from_vec(&b)
                    .unwrap()
                    .answers
                    .iter()
                    .map(|a| a.data.to_string())
                    .collect();
                v.sort();
                v
            }
            _ => vec![],
        }
    }

    #[test]
    fn updates_take_effect_at_once() {
        let r = Resolver::new(PathBuf::from("/nonexistent"));
        r.set(&entry("aaaa1111", "one", "n", "10.0.0.2"), None);
        r.set(&entry("bbbb2222", "two", "n", "10.0.0.3"), None);
        assert_eq!(ips(&r, "aaaa1111", "two"), ["10.0.0.3"]);
        assert_eq!(ips(&r, "aaaa1111", "bbbb"), ["10.0.0.3"]);
        assert_eq!(ips(&r, "aaaa1111", "svc"), ["10.0.0.2", "10.0.0.3"]);
        r.set(&entry("bbbb2222", "two", "n", "10.0.0.9"), None);
        assert_eq!(ips(&r, "aaaa1111", "two"), ["10.0.0.9"]);
        r.remove("bbbb2222");
        assert!(matches!(
            r.answer("aaaa1111", &query(1, "two", RecordType::A), true),
            Action::Forward(_)
        ));
        assert_eq!(ips(&r, "aaaa1111", "svc"), ["10.0.0.2"]);
    }

    #[test]
    fn removal_takes_out_exactly_what_the_container_put_in() {
        let r = Resolver::new(PathBuf::from("/nonexistent"));
        r.set(&entry("aaaa1111", "one", "n", "10.0.0.2"), None);
        // The address comes back to another container before the first
        // one's removal reaches the resolver: its PTR stays.
        r.set(&entry("bbbb2222", "two", "n", "10.0.0.3"), None);
        r.set(&entry("cccc3333", "three", "n", "10.0.0.2"), None);
        r.remove("aaaa1111");
        let view = r.view.read().unwrap();
        let zone = &view.zones["n"];
        assert_eq!(
            zone.reverse.get(&"10.0.0.2".parse().unwrap()).map(String::as_str),
            Some("three")
        );
        assert!(!zone.names.contains_key("one") && !zone.names.contains_key("aaaa"));
        assert_eq!(zone.names["svc"].len(), 2);
        assert!(!view.clients.contains_key("aaaa1111"));
        drop(view);
        // The last container of a network takes its zone with it; removing
        // again is a no-op.
        r.remove("bbbb2222");
        r.remove("cccc3333");
        r.remove("cccc3333");
        let view = r.view.read().unwrap();
        assert!(view.zones.is_empty() && view.clients.is_empty(), "{view:?}");
        assert!(r.owned.lock().unwrap().is_empty());
    }

    #[test]
    fn nameservers_are_read_like_libc() {
        let conf = "nameserver 127.0.0.53\n# x\nnameserver fe80::1%eth0\nnameserver 10.0.0.1\nnameserver 10.0.0.2\nsearch x\n";
        let s: Vec<String> = nameservers(conf).iter().map(|a| a.to_string()).collect();
        assert_eq!(s, ["127.0.0.53:53", "[fe80::1]:53", "10.0.0.1:53"]);
    }
}
