//! `cargo xtask demo`: the Docker walkthrough of
//! `../shared/seed/docker-network-modes.txt`, played by berth inside a
//! throwaway host namespace. Nothing touches the machine's own network:
//! the "host" is a fresh namespace, removed at the end.
//!
//! `cargo xtask demo overlay`: the sixth mode across two hosts
//! ([`overlay`]).

mod overlay;

use anyhow::{Result, bail};
use berth_testkit::TestHost;

struct Demo {
    h: TestHost,
}

/// Prints and runs one berth command on host `h`, the prompt saying
/// which (`$`, `hostA$`); stops the demo if it fails.
fn step_on(h: &TestHost, prompt: &str, args: &[&str]) -> Result<String> {
    let shown: Vec<String> = args
        .iter()
        .map(|a| {
            if a.contains(' ') {
                format!("'{a}'")
            } else {
                (*a).to_owned()
            }
        })
        .collect();
    println!("\n{prompt} berth {}", shown.join(" "));
    let r = h.berth(args);
    print!("{}", r.stdout);
    eprint!("{}", r.stderr);
    if r.code != 0 {
        bail!("berth {} failed (exit {})", args.join(" "), r.code);
    }
    Ok(r.stdout)
}

fn say(text: &str) {
    println!("\n# {text}");
}

impl Demo {
    /// Prints and runs one berth command; stops the demo if it fails.
    fn step(&self, args: &[&str]) -> Result<String> {
        step_on(&self.h, "$", args)
    }

    fn say(&self, text: &str) {
        say(text);
    }
}

fn ip_of(demo: &Demo, name: &str, net: &str) -> Result<String> {
    let v: serde_json::Value = serde_json::from_str(&demo.h.ok(&["inspect", name]))?;
    match v[0]["NetworkSettings"]["Networks"][net]["IPAddress"].as_str() {
        Some(ip) if !ip.is_empty() => Ok(ip.to_owned()),
        _ => bail!("{name} has no address on {net}"),
    }
}

pub fn run(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        None => {}
        Some("overlay") => return overlay::run(),
        Some(other) => bail!("no demo named {other:?} (demos: the walkthrough, with no name; overlay)"),
    }
    berth_testkit::require_root();
    crate::needs::ensure(crate::needs::DEMO, "the demo")?;
    let berth = crate::build_berth(false)?;
    println!("berth demo: Docker's network walkthrough, played in a throwaway host namespace");
    println!(
        "(the daemon and every container live in fresh namespaces; the machine's network is not touched)"
    );
    let d = Demo {
        h: TestHost::new(&berth),
    };

    d.say("Create a network and list them all: bridge (default), host and none exist from the start");
    d.step(&["network", "create", "-d", "bridge", "my-net"])?;
    d.step(&["network", "ls"])?;

    d.say("Two containers on my-net (the walkthrough's centos01 and centos02; here they run host commands)");
    d.step(&[
        "run",
        "-d",
        "--name",
        "centos01",
        "--network",
        "my-net",
        "--",
        "sleep",
        "3600",
    ])?;
    d.step(&[
        "run",
        "-d",
        "--name",
        "centos02",
        "--network",
        "my-net",
        "--",
        "sleep",
        "3600",
    ])?;
    d.step(&["ps"])?;

    let ip1 = ip_of(&d, "centos01", "my-net")?;
    d.say(
        "They find each other by name: the embedded resolver at 127.0.0.11 answers on user-defined networks",
    );
    d.step(&["exec", "centos01", "--", "ping", "-c2", "centos02"])?;
    d.step(&["exec", "centos02", "--", "ping", "-c2", "centos01"])?;

    d.say(
        "Each has its own /etc/hosts (its address with its hostname, the short id), hostname and resolv.conf",
    );
    d.step(&["exec", "centos02", "--", "cat", "/etc/hosts"])?;
    d.step(&["exec", "centos02", "--", "hostname"])?;
    d.step(&["exec", "centos02", "--", "cat", "/etc/resolv.conf"])?;

    d.say("-h sets the hostname, seen only inside the container");
    d.step(&[
        "run",
        "--rm",
        "-h",
        "myhost",
        "--network",
        "my-net",
        "--",
        "sh",
        "-c",
        "hostname; tail -1 /etc/hosts",
    ])?;

    d.say("On the default bridge there is no embedded DNS: resolv.conf is the host's without loopback servers, and --dns, --dns-search replace its lines");
    d.step(&["run", "--rm", "--", "cat", "/etc/resolv.conf"])?;
    d.step(&[
        "run",
        "--rm",
        "--dns",
        "10.0.0.53",
        "--dns-search",
        "example.com",
        "--",
        "cat",
        "/etc/resolv.conf",
    ])?;

    d.say("Legacy --link on the default bridge writes the linked container into /etc/hosts");
    d.step(&["run", "-d", "--name", "legacy01", "--", "sleep", "3600"])?;
    d.step(&[
        "run", "-d", "--name", "legacy02", "--link", "legacy01", "--", "sleep", "3600",
    ])?;
    d.step(&["exec", "legacy02", "--", "cat", "/etc/hosts"])?;
    d.step(&["exec", "legacy02", "--", "ping", "-c1", "legacy01"])?;

    d.say("Networks are isolated: a container on the default bridge cannot reach my-net");
    println!("\n$ berth run --rm -- ping -c1 -W1 {ip1}");
    let r = d.h.berth(&["run", "--rm", "--", "ping", "-c1", "-W1", &ip1]);
    print!("{}", r.stdout);
    if r.code == 0 {
        bail!("a container on the default bridge reached my-net");
    }
    println!("(exit {}: unreachable, as it should be)", r.code);

    d.say("host and none modes");
    d.step(&["run", "--rm", "--network", "host", "--", "ip", "-br", "link"])?;
    d.step(&["run", "--rm", "--network", "none", "--", "ip", "-br", "addr"])?;

    d.say("network connect gives a container one more interface");
    d.step(&["network", "create", "--subnet", "10.10.0.0/24", "backend"])?;
    d.step(&["network", "connect", "--ip", "10.10.0.10", "backend", "centos01"])?;
    d.step(&["exec", "centos01", "--", "ip", "-br", "addr"])?;
    d.step(&["network", "inspect", "backend"])?;

    d.say("Clean up");
    d.step(&["rm", "-f", "centos01", "centos02", "legacy01", "legacy02"])?;
    d.step(&["network", "rm", "my-net", "backend"])?;
    d.step(&["network", "ls"])?;
    println!("\ndemo done; the throwaway host namespace is removed now");
    Ok(())
}
