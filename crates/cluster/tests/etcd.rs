//! The cluster store against a real etcd (Debian's `etcd-server`) in a
//! fabric namespace of its own: allocations under concurrency, network
//! removal while in use, leases that expire, the watch across an outage
//! and a compaction, TLS with three members and one down.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_cluster::{Change, Cluster, Endpoint, Error, Health, Host, Options};
use berth_testkit::fabric::Fabric;
use tokio::sync::mpsc::UnboundedReceiver;

/// Runs `f` on a thread inside the fabric's namespace, on a runtime of its
/// own, so that every socket the client opens is there.
fn inside<T: Send + 'static>(
    fabric: &Fabric,
    f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
) -> T {
    let ns = File::open(&fabric.ns).expect("opening the fabric namespace");
    std::thread::spawn(move || {
        // SAFETY: setns on this thread only; the fd is open.
        assert_eq!(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(f())
    })
    .join()
    .expect("the test's thread")
}

fn fabric(members: usize, tls: bool) -> Fabric {
    Fabric::build(Path::new("/nonexistent/berth"), 0, members, tls)
}

fn host(id: &str, n: u8) -> Host {
    Host {
        id: id.into(),
        name: format!("host-{id}"),
        address: format!("198.51.100.{n}").parse().unwrap(),
        since: 0,
    }
}

fn options(f: &Fabric, extra: &[&str]) -> Options {
    let mut opts: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    if let Some(t) = f.tls() {
        opts.push(format!(
            "cacert={},cert={},key={}",
            t.ca.display(),
            t.cert.display(),
            t.key.display()
        ));
    }
    Options::parse(&f.store_url(), &opts).unwrap()
}

/// Waits (at most `secs`) until the store answered with a lease.
async fn healthy(c: &Cluster, secs: u64) {
    let end = Instant::now() + Duration::from_secs(secs);
    while c.health().0 != Health::Healthy {
        assert!(Instant::now() < end, "no lease within {secs} s: {:?}", c.health());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn endpoint(net: &str, id: &str, name: &str, host: &Host, ip: &str) -> Endpoint {
    Endpoint {
        id: id.into(),
        network: net.into(),
        container: format!("c-{id}"),
        name: name.into(),
        hostname: name.into(),
        aliases: vec![],
        mac: "02:42:0a:00:00:02".into(),
        addresses: vec![format!("{ip}/24").parse().unwrap()],
        host: host.id.clone(),
        vtep: host.address,
    }
}

/// The endpoints a watcher knows, kept from its changes.
#[derive(Default)]
struct View(BTreeSet<String>);

impl View {
    fn apply(&mut self, c: &Change) {
        match c {
            Change::Reset(s) => self.0 = s.endpoints.keys().map(|(_, id)| id.clone()).collect(),
            Change::Endpoint {
                id,
                endpoint: Some(_),
                ..
            } => {
                self.0.insert(id.clone());
            }
            Change::Endpoint {
                id, endpoint: None, ..
            } => {
                self.0.remove(id);
            }
            _ => {}
        }
    }

    /// Follows `rx` until the view holds exactly `want` (at most `secs`);
    /// says whether a full reload came meanwhile.
    async fn until(&mut self, rx: &mut UnboundedReceiver<Change>, secs: u64, want: &[&str]) -> bool {
        let end = tokio::time::Instant::now() + Duration::from_secs(secs);
        let want: BTreeSet<String> = want.iter().map(|s| (*s).to_owned()).collect();
        let mut reset = false;
        while self.0 != want {
            match tokio::time::timeout_at(end, rx.recv()).await {
                Ok(Some(c)) => {
                    reset |= matches!(c, Change::Reset(_));
                    self.apply(&c);
                }
                _ => panic!("the watcher knows {:?}, not {want:?}, after {secs} s", self.0),
            }
        }
        reset
    }
}

/// Waits for a change the predicate accepts (at most `secs`).
async fn expect(rx: &mut UnboundedReceiver<Change>, secs: u64, what: &str, f: impl Fn(&Change) -> bool) {
    let end = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(end, rx.recv()).await {
            Ok(Some(c)) if f(&c) => return,
            Ok(Some(_)) => {}
            _ => panic!("no {what} within {secs} s"),
        }
    }
}

#[test]
fn numbers_addresses_and_networks_are_claimed_once_under_concurrency() {
    let f = fabric(1, false);
    let o = options(&f, &[]);
    inside(&f, move || {
        Box::pin(async move {
            let a = Cluster::open(o.clone(), host("a", 11)).await.unwrap();
            let b = Cluster::open(o, host("b", 12)).await.unwrap();
            healthy(&a, 10).await;
            healthy(&b, 10).await;
            // Two hosts take 30 numbers each at the same time.
            let take = |c: Arc<Cluster>, who: &'static str| async move {
                let mut got = Vec::new();
                for i in 0..30 {
                    got.push(
                        c.claim_number("vni", "vxlan.id", (4096, 16_777_215), None, &format!("{who}{i}"))
                            .await
                            .unwrap(),
                    );
                }
                got
            };
            let (x, y) = tokio::join!(take(a.clone(), "a"), take(b.clone(), "b"));
            let all: BTreeSet<u32> = x.iter().chain(&y).copied().collect();
            assert_eq!(all.len(), 60, "a number was given twice: {x:?} {y:?}");
            assert_eq!(*all.first().unwrap(), 4096);
            assert_eq!(*all.last().unwrap(), 4155);
            // A number asked for by value is refused, naming its holder.
            let e = b
                .claim_number("vni", "vxlan.id", (4096, 16_777_215), Some(4096), "late")
                .await
                .unwrap_err()
                .to_string();
            assert!(e.contains("vxlan.id 4096 is already used by"), "{e}");
            // A range of three numbers runs out.
            for _ in 0..3 {
                a.claim_number("small", "number", (1, 3), None, "x")
                    .await
                    .unwrap();
            }
            let e = a
                .claim_number("small", "number", (1, 3), None, "x")
                .await
                .unwrap_err();
            assert!(matches!(e, Error::Exhausted { .. }), "{e}");
            // Addresses: each once, whoever asks first.
            let ip = "10.0.0.2".parse().unwrap();
            let (p, q) = tokio::join!(
                a.claim_address("n1", ip, "ep-a"),
                b.claim_address("n1", ip, "ep-b")
            );
            let (p, q) = (p.unwrap(), q.unwrap());
            assert!(p ^ q, "exactly one host gets 10.0.0.2");
            // Its holder may claim it again (put under its current lease),
            // and no one else.
            let (w, wid, l, lid) = if p {
                (&a, "ep-a", &b, "ep-b")
            } else {
                (&b, "ep-b", &a, "ep-a")
            };
            assert!(
                w.claim_address("n1", ip, wid).await.unwrap(),
                "its holder claims it again"
            );
            assert!(!l.claim_address("n1", ip, lid).await.unwrap());
            assert_eq!(a.taken_addresses("n1").await.unwrap(), [ip]);
            // Networks: a name and a subnet once.
            let s: ipnet::IpNet = "10.0.1.0/24".parse().unwrap();
            a.create_network("id1", "ov1", b"{}", &[s]).await.unwrap();
            let e = b
                .create_network("id2", "ov1", b"{}", &[])
                .await
                .unwrap_err()
                .to_string();
            assert_eq!(e, "network name ov1 is already used by global network id1");
            let e = b
                .create_network("id2", "ov2", b"{}", &[s])
                .await
                .unwrap_err()
                .to_string();
            assert_eq!(e, "subnet 10.0.1.0/24 is already used by global network id1");
            assert_eq!(b.taken_subnets().await.unwrap(), [s]);
        })
    });
}

#[test]
fn a_network_in_use_on_any_host_is_not_removed() {
    let f = fabric(1, false);
    let o = options(&f, &[]);
    inside(&f, move || {
        Box::pin(async move {
            let a = Cluster::open(o.clone(), host("a", 11)).await.unwrap();
            let b = Cluster::open(o, host("b", 12)).await.unwrap();
            healthy(&a, 10).await;
            healthy(&b, 10).await;
            let s: ipnet::IpNet = "10.0.7.0/24".parse().unwrap();
            a.create_network("n7", "seven", b"{}", &[s]).await.unwrap();
            b.put_endpoint(&endpoint("n7", "e1", "web", b.host(), "10.0.7.2"))
                .await
                .unwrap();
            let e = a
                .remove_network("n7", "seven", &[s])
                .await
                .unwrap_err()
                .to_string();
            assert_eq!(
                e,
                "network seven has active endpoints: containers web on host-b (198.51.100.12) are attached (disconnect or remove them first)"
            );
            b.delete_endpoint("n7", "e1").await.unwrap();
            a.remove_network("n7", "seven", &[s]).await.unwrap();
            assert!(a.taken_subnets().await.unwrap().is_empty());
            // An endpoint of a network that is gone is refused.
            let e = b
                .put_endpoint(&endpoint("n7", "e2", "late", b.host(), "10.0.7.3"))
                .await
                .unwrap_err();
            assert!(matches!(e, Error::NoNetwork(_)), "{e}");
        })
    });
}

#[test]
fn a_dead_hosts_records_expire_and_watchers_see_it() {
    let f = fabric(1, false);
    let o = options(&f, &["lease-ttl=2"]);
    inside(&f, move || {
        Box::pin(async move {
            let a = Cluster::open(o.clone(), host("a", 11)).await.unwrap();
            let b = Cluster::open(o, host("b", 12)).await.unwrap();
            healthy(&a, 10).await;
            healthy(&b, 10).await;
            a.create_network("n1", "one", b"{}", &[]).await.unwrap();
            let mut rx = b.watch();
            expect(&mut rx, 5, "a first snapshot", |c| matches!(c, Change::Reset(_))).await;
            a.put_endpoint(&endpoint("n1", "ea", "from-a", a.host(), "10.0.0.2"))
                .await
                .unwrap();
            assert!(
                a.claim_address("n1", "10.0.0.2".parse().unwrap(), "ea")
                    .await
                    .unwrap()
            );
            expect(
                &mut rx,
                5,
                "the endpoint",
                |c| matches!(c, Change::Endpoint { id, endpoint: Some(_), .. } if id == "ea"),
            )
            .await;
            // Host a dies: no more keep-alives, no revoke.
            drop(a);
            let died = Instant::now();
            expect(
                &mut rx,
                6,
                "the endpoint's expiry",
                |c| matches!(c, Change::Endpoint { id, endpoint: None, .. } if id == "ea"),
            )
            .await;
            assert!(died.elapsed() < Duration::from_secs(5), "{:?}", died.elapsed());
            // Its address is free again.
            assert!(b.taken_addresses("n1").await.unwrap().is_empty());
            assert_eq!(b.hosts().await.unwrap().len(), 1);
        })
    });
}

#[test]
fn the_watch_survives_compaction_and_outages_and_records_come_back() {
    let mut f = fabric(1, false);
    let o = options(&f, &["lease-ttl=3"]);
    let ns = f.ns.clone();
    let (tx_go, rx_go) = std::sync::mpsc::channel::<()>();
    let (tx_step, rx_step) = std::sync::mpsc::channel::<&'static str>();
    let t = std::thread::spawn(move || {
        let fd = File::open(&ns).unwrap();
        // SAFETY: setns on this thread only.
        assert_eq!(unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let a = Cluster::open(o.clone(), host("a", 11)).await.unwrap();
            let b = Cluster::open(o, host("b", 12)).await.unwrap();
            healthy(&a, 10).await;
            healthy(&b, 10).await;
            a.create_network("n1", "one", b"{}", &[]).await.unwrap();
            let mut rx = b.watch();
            let mut view = View::default();
            a.put_endpoint(&endpoint("n1", "e1", "one", a.host(), "10.0.0.2"))
                .await
                .unwrap();
            view.until(&mut rx, 5, &["e1"]).await;
            tx_step.send("stop etcd").unwrap();
            rx_go.recv().unwrap();
            // etcd is down: calls fail fast, with the store named.
            let t0 = Instant::now();
            let e = a
                .create_network("n2", "two", b"{}", &[])
                .await
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("the cluster store etcd://198.51.100.1:2379 cannot be reached"),
                "{e}"
            );
            assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
            tokio::time::sleep(Duration::from_secs(4)).await;
            assert!(matches!(a.health().0, Health::Unreachable(_)), "{:?}", a.health());
            tx_step.send("start etcd").unwrap();
            rx_go.recv().unwrap();
            // Back: a keeps (or registers again) its endpoint, and b's
            // watch resumes; what changed meanwhile reaches it.
            healthy(&a, 15).await;
            a.put_endpoint(&endpoint("n1", "e2", "two", a.host(), "10.0.0.3"))
                .await
                .unwrap();
            view.until(&mut rx, 15, &["e1", "e2"]).await;
            // Compaction under a watch that is up to date does not disturb
            // it (a watch that resumes from a compacted revision reads
            // everything again: the daemons' tests cut a host off for that).
            tx_step.send("compact after a change").unwrap();
            rx_go.recv().unwrap();
            a.delete_endpoint("n1", "e2").await.unwrap();
            view.until(&mut rx, 10, &["e1"]).await;
            tx_step.send("done").unwrap();
        });
    });
    loop {
        match rx_step.recv().unwrap() {
            "stop etcd" => f.stop_member(0),
            "start etcd" => f.start_member(0),
            "compact after a change" => {
                let rev = f.etcdctl(&["get", "/berth/v1/", "--prefix", "-w", "json"]).stdout;
                let rev: serde_json::Value = serde_json::from_str(&rev).unwrap();
                let r = rev["header"]["revision"].as_i64().unwrap();
                let out = f.etcdctl(&["compact", &r.to_string()]);
                assert_eq!(out.code, 0, "{}", out.stderr);
            }
            "done" => break,
            other => panic!("{other}"),
        }
        tx_go.send(()).unwrap();
    }
    t.join().unwrap();
}

#[test]
fn tls_and_three_members_with_one_down() {
    let mut f = fabric(3, true);
    let o = options(&f, &[]);
    let ns = f.ns.clone();
    let (tx_go, rx_go) = std::sync::mpsc::channel::<()>();
    let (tx_step, rx_step) = std::sync::mpsc::channel::<&'static str>();
    let t = std::thread::spawn(move || {
        let fd = File::open(&ns).unwrap();
        // SAFETY: setns on this thread only.
        assert_eq!(unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let a = Cluster::open(o, host("a", 11)).await.unwrap();
            healthy(&a, 10).await;
            a.create_network("n1", "one", b"{}", &[]).await.unwrap();
            tx_step.send("stop member 0").unwrap();
            rx_go.recv().unwrap();
            // Two of three answer: everything goes on, retried on another
            // member where the balancer picks the dead one.
            for i in 0..20 {
                a.claim_number("vni", "vxlan.id", (4096, 5000), None, &format!("n{i}"))
                    .await
                    .unwrap();
            }
            a.create_network("n2", "two", b"{}", &[]).await.unwrap();
            tx_step.send("done").unwrap();
        });
    });
    loop {
        match rx_step.recv().unwrap() {
            "stop member 0" => f.stop_member(0),
            "done" => break,
            other => panic!("{other}"),
        }
        tx_go.send(()).unwrap();
    }
    t.join().unwrap();
    // An operator with the certificates reads the layout with etcdctl.
    let out = f.etcdctl(&["get", "/berth/v1/names/one", "--print-value-only"]);
    assert_eq!(out.stdout.trim(), "n1", "{}", out.stderr);
}
