//! `cargo xtask demo overlay`: one network across two hosts. The hosts are
//! namespaces on an underlay (testkit's `Fabric`: a bridge in a fabric
//! namespace on 198.51.100.0/24, a real etcd there), each running its own
//! berth daemon in the cluster. The demo creates an overlay on host A,
//! runs a container on each host, pings by name across, shows what etcd
//! and the kernel hold, then kills host B's daemon and watches host A
//! forget its container.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use berth_testkit::fabric::Fabric;
use berth_testkit::run_in;

use super::{say, step_on};

pub fn run() -> Result<()> {
    berth_testkit::require_root();
    crate::needs::ensure(crate::needs::DEMO, "the demo")?;
    crate::needs::ensure(crate::needs::DEMO_OVERLAY, "the overlay demo")?;
    let berth = crate::build_berth(false)?;
    println!("berth demo overlay: one network across two hosts, over etcd");
    println!(
        "(hosts A and B are throwaway namespaces on an underlay, 198.51.100.11 and .12, with etcd at .1;"
    );
    println!(" the machine's network is not touched)");
    let mut f = Fabric::new(&berth, 2);
    let (a, b) = (f.host(0), f.host(1));

    say(
        "Each host's daemon joined the cluster: berth daemon --cluster-store etcd://198.51.100.1:2379 --advertise-addr 198.51.100.1x",
    );
    step_on(a, "hostA$", &["info"])?;

    say("An overlay network made on host A is at once a network of host B too (scope global)");
    step_on(a, "hostA$", &["network", "create", "-d", "overlay", "my-overlay"])?;
    wait("host B to know my-overlay", || {
        b.berth(&["network", "inspect", "my-overlay"]).code == 0
    })?;
    step_on(b, "hostB$", &["network", "ls"])?;

    say("A container on each host");
    step_on(
        a,
        "hostA$",
        &[
            "run",
            "-d",
            "--name",
            "web",
            "--network",
            "my-overlay",
            "--",
            "sleep",
            "3600",
        ],
    )?;
    step_on(
        b,
        "hostB$",
        &[
            "run",
            "-d",
            "--name",
            "client",
            "--network",
            "my-overlay",
            "--",
            "sleep",
            "3600",
        ],
    )?;

    say("They reach each other by name, across the hosts, both ways");
    step_on(b, "hostB$", &["exec", "client", "--", "ping", "-c2", "web"])?;
    step_on(a, "hostA$", &["exec", "web", "--", "ping", "-c2", "client"])?;

    say("What etcd holds, under /berth/v1/ (etcdctl get --prefix --keys-only /berth/v1/)");
    let keys = f.etcdctl(&["get", "--prefix", "--keys-only", "/berth/v1/"]);
    for k in keys.stdout.lines().filter(|l| !l.is_empty()) {
        println!("  {k}");
    }

    let net: serde_json::Value = serde_json::from_str(&a.ok(&["network", "inspect", "my-overlay"]))?;
    let id = net[0]["Id"].as_str().unwrap_or_default().to_owned();
    let ns = a.exec_root().join("overlay").join(&id);
    say(
        "Host A's VXLAN device learns nothing: client's entries come from etcd (ip neigh / bridge fdb in the network's namespace)",
    );
    print!(
        "{}",
        run_in(&ns, "ip", &["neigh", "show", "dev", "vxlan0"]).stdout
    );
    print!(
        "{}",
        run_in(&ns, "bridge", &["fdb", "show", "dev", "vxlan0"]).stdout
    );

    say("Host B's daemon is killed (-9): its lease in etcd is no longer renewed (TTL 10 s)");
    f.host_mut(1).kill_daemon();
    let a = f.host(0);
    let t = Instant::now();
    loop {
        let entries = run_in(&ns, "ip", &["neigh", "show", "dev", "vxlan0"]).stdout;
        if entries.trim().is_empty() {
            println!(
                "  host A forgot client after {:.1} s: no entries left",
                t.elapsed().as_secs_f64()
            );
            break;
        }
        if t.elapsed() > Duration::from_secs(20) {
            bail!("host A still has client's entries after 20 s: {entries}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    step_on(a, "hostA$", &["info"])?;
    println!("\nhostA$ berth exec web -- ping -c1 -W1 client");
    let r = a.berth(&["exec", "web", "--", "ping", "-c1", "-W1", "client"]);
    print!("{}{}", r.stdout, r.stderr);
    if r.code == 0 {
        bail!("client still resolves and answers on host A");
    }
    println!(
        "(exit {}: client is gone from host A's resolver and its tables)",
        r.code
    );

    say("Clean up on host A");
    step_on(a, "hostA$", &["rm", "-f", "web"])?;
    println!("\ndemo done; the hosts, the underlay and etcd are removed now");
    Ok(())
}

/// Waits (at most 5 s) for `f`, naming `what` if it does not come.
fn wait(what: &str, mut f: impl FnMut() -> bool) -> Result<()> {
    let t = Instant::now();
    while !f() {
        if t.elapsed() > Duration::from_secs(5) {
            bail!("waited 5 s for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
