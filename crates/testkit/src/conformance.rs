//! The driver conformance suite: the same checks for every driver, each in
//! a fresh test host. `cargo xtask test-drivers` prints it as a table; the
//! integration tests insist that every check passes.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{Error, TestHost};

/// What kind of namespace a driver's containers get, which decides what
/// each check expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Own namespace with an interface on the network (bridge, macvlan, …).
    Own,
    /// The host's namespace (host).
    Host,
    /// Own namespace with only `lo` (none).
    Isolated,
}

/// One row of the table: a driver and how to create its networks.
#[derive(Clone, Debug)]
pub struct Case {
    /// Row label.
    pub label: String,
    /// `-d` value.
    pub driver: String,
    /// Extra `network create` arguments (`-o k=v`, `--subnet`, …).
    pub create_args: Vec<String>,
    /// What its containers get.
    pub kind: Kind,
    /// The built-in network of a driver that allows only one (host, none).
    pub builtin: Option<String>,
    /// Shell commands run in the host namespace first (e.g. make a parent
    /// link for macvlan).
    pub setup: Vec<String>,
    /// `network create` arguments for the second network (the isolation
    /// check); the first network's when empty.
    pub create_args2: Vec<String>,
    /// The driver is a Docker network plugin: the test plugin
    /// ([`crate::docker_plugin`]) is served under the driver's name in the
    /// test host before its daemon starts.
    pub docker_plugin: bool,
    /// Shared-library plugins to put into the host's plugin directory
    /// before its daemon starts (the row of a driver that one provides).
    pub plugins: Vec<PathBuf>,
    /// Hosts of a cluster ([`crate::fabric::Fabric`]) instead of one
    /// test host: the second container (`conf-b`) runs on the second host.
    pub cluster: bool,
}

impl Case {
    /// The rows every berth build has.
    pub fn builtin_rows() -> Vec<Case> {
        vec![
            Case {
                label: "bridge".into(),
                driver: "bridge".into(),
                create_args: vec![],
                kind: Kind::Own,
                builtin: None,
                setup: vec![],
                create_args2: vec![],
                docker_plugin: false,
                plugins: vec![],
                cluster: false,
            },
            Case {
                label: "host".into(),
                driver: "host".into(),
                create_args: vec![],
                kind: Kind::Host,
                builtin: Some("host".into()),
                setup: vec![],
                create_args2: vec![],
                docker_plugin: false,
                plugins: vec![],
                cluster: false,
            },
            Case {
                label: "none".into(),
                driver: "none".into(),
                create_args: vec![],
                kind: Kind::Isolated,
                builtin: Some("none".into()),
                setup: vec![],
                create_args2: vec![],
                docker_plugin: false,
                plugins: vec![],
                cluster: false,
            },
        ]
    }

    /// A macvlan or ipvlan row: each network on a veth parent of its own
    /// in the test host (`-o parent=mv0`, `mv1`), extra options `opts`.
    pub fn sublink(driver: &str, opts: &[&str]) -> Case {
        let args = |parent: &str, subnet: &str| {
            let mut a: Vec<String> = vec![
                "--subnet".into(),
                subnet.into(),
                "-o".into(),
                format!("parent={parent}"),
            ];
            for o in opts {
                a.push("-o".into());
                a.push((*o).into());
            }
            a
        };
        Case {
            label: if opts.is_empty() {
                driver.to_owned()
            } else {
                format!("{driver} {}", opts.join(" "))
            },
            driver: driver.into(),
            create_args: args("mv0", "10.198.1.0/24"),
            kind: Kind::Own,
            builtin: None,
            setup: vec![
                "ip link add mv0 type veth peer name mv0peer && ip link set mv0 up && ip link set mv0peer up"
                    .into(),
                "ip link add mv1 type veth peer name mv1peer && ip link set mv1 up && ip link set mv1peer up"
                    .into(),
            ],
            create_args2: args("mv1", "10.198.2.0/24"),
            docker_plugin: false,
            plugins: vec![],
            cluster: false,
        }
    }

    /// A row for a Docker network plugin: berth's test plugin
    /// ([`crate::docker_plugin`]), served as `NAME` over a unix socket.
    pub fn docker_plugin(name: &str) -> Case {
        Case {
            label: "docker plugin".into(),
            driver: name.into(),
            create_args: vec![],
            kind: Kind::Own,
            builtin: None,
            setup: vec![],
            create_args2: vec![],
            docker_plugin: true,
            plugins: vec![],
            cluster: false,
        }
    }

    /// The row of a driver that a shared-library plugin provides: the
    /// library is installed into the test host's plugin directory.
    pub fn plugin(driver: &str, library: PathBuf) -> Case {
        Case {
            label: driver.to_owned(),
            driver: driver.into(),
            create_args: vec![],
            kind: Kind::Own,
            builtin: None,
            setup: vec![],
            create_args2: vec![],
            docker_plugin: false,
            plugins: vec![library],
            cluster: false,
        }
    }
}

impl Case {
    /// The CNI row: the reference `bridge` plugin with `host-local` IPAM
    /// (`-d cni -o cni.plugin=bridge`, Debian's containernetworking-plugins
    /// in `/usr/lib/cni`). Each network has a bridge and subnet of its own
    /// with its gateway on the bridge and the containers' default route
    /// through it (`isDefaultGateway`), so the host would route between
    /// the two networks: the isolation check tests berth's firewall, not a
    /// missing route. host-local keeps its leases under the test's root.
    pub fn cni_bridge() -> Case {
        let args = |bridge: &str, subnet: &str| -> Vec<String> {
            [
                "cni.plugin=bridge".to_owned(),
                format!("bridge={bridge}"),
                "isDefaultGateway=true".to_owned(),
                "ipam.type=host-local".to_owned(),
                format!("ipam.subnet={subnet}"),
                format!("ipam.dataDir={ROOT}/cni-ipam"),
            ]
            .into_iter()
            .flat_map(|o| ["-o".to_owned(), o])
            .collect()
        };
        // The bridge row's fields, so that rows added later need no edit here.
        let base = Case::builtin_rows().swap_remove(0);
        Case {
            label: "cni bridge".into(),
            driver: "cni".into(),
            create_args: args("cnibr1", "10.197.1.0/24"),
            create_args2: args("cnibr2", "10.197.2.0/24"),
            ..base
        }
    }

    /// The overlay row: two hosts of a cluster with a real etcd
    /// ([`crate::fabric::Fabric`]); the two containers of the network run
    /// on different hosts.
    pub fn overlay() -> Case {
        let base = Case::builtin_rows().swap_remove(0);
        Case {
            label: "overlay".into(),
            driver: "overlay".into(),
            create_args: vec!["--subnet".into(), "10.196.1.0/24".into()],
            create_args2: vec!["--subnet".into(), "10.196.2.0/24".into()],
            cluster: true,
            ..base
        }
    }

    /// The case with [`ROOT`] in its arguments and setup commands replaced
    /// by the test host's root directory.
    fn rooted(&self, root: &Path) -> Case {
        let root = root.display().to_string();
        let fix = |v: &[String]| v.iter().map(|s| s.replace(ROOT, &root)).collect();
        Case {
            create_args: fix(&self.create_args),
            create_args2: fix(&self.create_args2),
            setup: fix(&self.setup),
            ..self.clone()
        }
    }
}

/// Stands for the test host's root directory in a [`Case`]'s
/// `create_args`, `create_args2` and `setup` (for files a driver keeps,
/// such as CNI's host-local leases).
pub const ROOT: &str = "{root}";

/// The checks, in table order.
pub const CHECKS: &[&str] = &[
    "create",
    "attach two sandboxes",
    "reach each other",
    "resolve by name",
    "isolated from a second network",
    "detach is idempotent",
    "delete leaves nothing",
    "bad options rejected",
];

/// How one check went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It held.
    Pass,
    /// It did not, and why.
    Fail(String),
    /// It does not apply to this kind of driver, and why.
    NotApplicable(&'static str),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Pass => f.write_str("ok"),
            Outcome::Fail(_) => f.write_str("FAIL"),
            Outcome::NotApplicable(_) => f.write_str("n/a"),
        }
    }
}

type Check = Result<Outcome, Error>;

fn ensure(cond: bool, why: impl Into<String>) -> Result<(), Error> {
    if cond {
        Ok(())
    } else {
        Err(Error::Unmet(why.into()))
    }
}

fn ok(h: &TestHost, args: &[&str]) -> Result<String, Error> {
    let r = h.berth(args);
    if r.code == 0 {
        Ok(r.stdout)
    } else {
        Err(Error::Berth {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            stderr: r.stderr.trim().to_owned(),
        })
    }
}

fn inspect(h: &TestHost, c: &str) -> Result<Value, Error> {
    let out = ok(h, &["inspect", c])?;
    let v: Value = serde_json::from_str(&out).map_err(|error| Error::Inspect {
        container: c.to_owned(),
        error,
    })?;
    Ok(v[0].clone())
}

fn ipv4(h: &TestHost, c: &str, net: &str) -> Result<String, Error> {
    let v = inspect(h, c)?;
    v["NetworkSettings"]["Networks"][net]["IPAddress"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| Error::Unmet(format!("container {c} has no IPv4 address on {net}")))
}

fn pid(h: &TestHost, c: &str) -> Result<u32, Error> {
    inspect(h, c)?["State"]["Pid"]
        .as_u64()
        .map(|p| p as u32)
        .ok_or_else(|| Error::Unmet(format!("{c} has no pid")))
}

fn netns_inode(pid: u32) -> Result<u64, Error> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .map(|m| m.ino())
        .map_err(|error| Error::ProcessNetns { pid, error })
}

fn can_ping(h: &TestHost, from: &str, ip: &str) -> bool {
    h.berth(&["exec", from, "--", "ping", "-c1", "-W1", ip]).code == 0
}

/// The state of one row's run, shared by its checks.
struct Row<'a> {
    /// The hosts: one, or two of a cluster.
    hosts: &'a [TestHost],
    /// The first host, where the networks are made.
    h: &'a TestHost,
    case: &'a Case,
    net: String,
    /// Each host's kernel state before the row.
    before: Vec<String>,
}

impl Row<'_> {
    /// The host container `c` runs on: `conf-b` on the last one.
    fn at(&self, c: &str) -> &TestHost {
        match self.hosts.last() {
            Some(last) if c == "conf-b" => last,
            _ => self.h,
        }
    }

    /// Waits (bounded) until every host knows network `net`.
    fn everywhere(&self, net: &str) -> Result<(), Error> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        for h in self.hosts {
            while h.berth(&["network", "inspect", net]).code != 0 {
                ensure(
                    std::time::Instant::now() < deadline,
                    format!("network {net} is not known on every host within 5 s"),
                )?;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        Ok(())
    }

    fn create(&mut self) -> Check {
        if let Some(b) = &self.case.builtin {
            self.net = b.clone();
            let ls = ok(
                self.h,
                &[
                    "network",
                    "ls",
                    "--filter",
                    &format!("name={b}"),
                    "--format",
                    "json",
                ],
            )?;
            ensure(
                ls.contains(&format!("\"Name\":\"{b}\"")),
                format!("built-in network {b} is missing"),
            )?;
            // Only one network of this driver may exist.
            let r = self
                .h
                .berth(&["network", "create", "-d", &self.case.driver, "second"]);
            ensure(
                r.code != 0 && r.stderr.contains("only one instance"),
                format!(
                    "a second {} network was not refused: {}",
                    self.case.driver, r.stderr
                ),
            )?;
            return Ok(Outcome::Pass);
        }
        self.net = "conf1".into();
        let mut args = vec!["network", "create", "-d", &self.case.driver];
        args.extend(self.case.create_args.iter().map(String::as_str));
        args.push("conf1");
        ok(self.h, &args)?;
        self.everywhere("conf1")?;
        let v: Value = serde_json::from_str(&ok(self.h, &["network", "inspect", "conf1"])?)?;
        ensure(v[0]["Driver"].as_str().is_some(), "inspect shows no driver")?;
        Ok(Outcome::Pass)
    }

    fn attach_two(&self) -> Check {
        for c in ["conf-a", "conf-b"] {
            ok(
                self.at(c),
                &[
                    "run",
                    "-d",
                    "--name",
                    c,
                    "--network",
                    &self.net,
                    "--",
                    "sleep",
                    "600",
                ],
            )?;
        }
        for c in ["conf-a", "conf-b"] {
            let links = ok(self.at(c), &["exec", c, "--", "ip", "-o", "link", "show"])?;
            match self.case.kind {
                Kind::Own => {
                    ensure(links.contains("eth0"), format!("{c} has no eth0: {links}"))?;
                    ipv4(self.at(c), c, &self.net)?;
                }
                Kind::Isolated => ensure(
                    links.lines().count() == 1 && links.contains("lo:"),
                    format!("{c} should have only lo: {links}"),
                )?,
                Kind::Host => ensure(
                    netns_inode(pid(self.h, c)?)?
                        == std::fs::metadata(&self.h.ns).map(|m| {
                            use std::os::unix::fs::MetadataExt;
                            m.ino()
                        })?,
                    format!("{c} is not in the host's namespace"),
                )?,
            }
        }
        Ok(Outcome::Pass)
    }

    fn reach(&self) -> Check {
        match self.case.kind {
            Kind::Own => {
                let a = ipv4(self.h, "conf-a", &self.net)?;
                let b = ipv4(self.at("conf-b"), "conf-b", &self.net)?;
                ensure(
                    can_ping(self.h, "conf-a", &b),
                    format!("conf-a cannot ping conf-b at {b}"),
                )?;
                ensure(
                    can_ping(self.at("conf-b"), "conf-b", &a),
                    format!("conf-b cannot ping conf-a at {a}"),
                )?;
                Ok(Outcome::Pass)
            }
            Kind::Host => {
                ensure(
                    netns_inode(pid(self.h, "conf-a")?)? == netns_inode(pid(self.h, "conf-b")?)?,
                    "the two host-mode containers do not share one stack",
                )?;
                ensure(
                    can_ping(self.h, "conf-a", "127.0.0.1"),
                    "host-mode container cannot reach 127.0.0.1",
                )?;
                Ok(Outcome::Pass)
            }
            Kind::Isolated => {
                // By design they cannot: no route anywhere.
                let routes = ok(self.h, &["exec", "conf-a", "--", "ip", "route", "show"])?;
                ensure(
                    routes.trim().is_empty(),
                    format!("none-mode container has routes: {routes}"),
                )?;
                ensure(
                    !can_ping(self.h, "conf-a", "10.0.0.1"),
                    "none-mode container reached an address",
                )?;
                Ok(Outcome::Pass)
            }
        }
    }

    fn resolve(&self) -> Check {
        match self.case.kind {
            Kind::Own => {
                // Through the container's own libc resolver: /etc/hosts,
                // then the embedded resolver at 127.0.0.11.
                let b = ipv4(self.at("conf-b"), "conf-b", &self.net)?;
                let out = ok(self.h, &["exec", "conf-a", "--", "getent", "hosts", "conf-b"])?;
                ensure(
                    out.starts_with(&format!("{b} ")),
                    format!("conf-b resolved to {out:?}, not {b}"),
                )?;
                let a = ipv4(self.h, "conf-a", &self.net)?;
                let out = ok(
                    self.at("conf-b"),
                    &["exec", "conf-b", "--", "getent", "hosts", "conf-a"],
                )?;
                ensure(
                    out.starts_with(&format!("{a} ")),
                    format!("conf-a resolved to {out:?}, not {a}"),
                )?;
                Ok(Outcome::Pass)
            }
            Kind::Host => {
                // Host mode resolves exactly as the host does.
                let mine = ok(self.h, &["exec", "conf-a", "--", "cat", "/etc/resolv.conf"])?;
                let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
                ensure(
                    mine == host,
                    format!("resolv.conf differs from the host's: {mine:?}"),
                )?;
                Ok(Outcome::Pass)
            }
            Kind::Isolated => {
                let conf = ok(self.h, &["exec", "conf-a", "--", "cat", "/etc/resolv.conf"])?;
                ensure(
                    !conf.contains("127.0.0.11"),
                    "a none-mode container points at the embedded resolver",
                )?;
                let r = self
                    .h
                    .berth(&["exec", "conf-a", "--", "getent", "hosts", "conf-b"]);
                ensure(
                    r.code != 0,
                    format!("a none-mode container resolved conf-b: {}", r.stdout),
                )?;
                Ok(Outcome::Pass)
            }
        }
    }

    fn isolated(&self) -> Check {
        if self.case.kind != Kind::Own {
            return Ok(Outcome::NotApplicable(
                "a shared or empty stack has no second network to be isolated from",
            ));
        }
        let mut args = vec!["network", "create", "-d", &self.case.driver];
        let second = if self.case.create_args2.is_empty() {
            &self.case.create_args
        } else {
            &self.case.create_args2
        };
        args.extend(second.iter().map(String::as_str));
        args.push("conf2");
        ok(self.h, &args)?;
        self.everywhere("conf2")?;
        ok(
            self.h,
            &[
                "run",
                "-d",
                "--name",
                "conf-c",
                "--network",
                "conf2",
                "--",
                "sleep",
                "600",
            ],
        )?;
        let c = ipv4(self.h, "conf-c", "conf2")?;
        let a = ipv4(self.h, "conf-a", &self.net)?;
        ensure(
            !can_ping(self.h, "conf-a", &c),
            format!("conf-a on {} reached conf-c on conf2", self.net),
        )?;
        ensure(
            !can_ping(self.h, "conf-c", &a),
            format!("conf-c on conf2 reached conf-a on {}", self.net),
        )?;
        Ok(Outcome::Pass)
    }

    fn detach_idempotent(&self) -> Check {
        if self.case.kind == Kind::Own {
            // Connect conf-c to the first network, take its link away from
            // under berth, and disconnect: "already gone" is success.
            ok(self.h, &["network", "connect", &self.net, "conf-c"])?;
            let v = inspect(self.h, "conf-c")?;
            let ep = v["NetworkSettings"]["Networks"][&self.net]["EndpointID"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let veth = format!("veth{}", &ep[..11.min(ep.len())]);
            if self.h.run("ip", &["link", "show", &veth]).code == 0 {
                self.h.run("ip", &["link", "del", &veth]);
            } else {
                // Drivers without a host-side link in the host: remove the
                // interface inside, found by the endpoint's MAC (the
                // overlay's connected interface is not always eth1).
                let mac = v["NetworkSettings"]["Networks"][&self.net]["MacAddress"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let links = ok(self.h, &["exec", "conf-c", "--", "ip", "-o", "link", "show"])?;
                // ipvlan's share the parent's MAC: then the newest link.
                let ifname = links
                    .lines()
                    .find(|l| !mac.is_empty() && l.contains(&mac))
                    .or_else(|| links.lines().last())
                    .and_then(|l| l.split(':').nth(1))
                    .map(|n| n.trim().split('@').next().unwrap_or_default().to_owned())
                    .ok_or_else(|| Error::Unmet(format!("conf-c has no link with MAC {mac:?}: {links}")))?;
                self.h
                    .berth(&["exec", "conf-c", "--", "ip", "link", "del", &ifname]);
            }
            ok(self.h, &["network", "disconnect", &self.net, "conf-c"])?;
        }
        // A container whose process died behind berth's back is removed cleanly.
        let b = self.at("conf-b");
        let p = pid(b, "conf-b")?;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
        ok(b, &["rm", "-f", "conf-b"])?;
        let r = b.berth(&["rm", "-f", "conf-b"]);
        ensure(
            r.code != 0 && r.stderr.contains("no such container"),
            format!("second rm: {}", r.stderr),
        )?;
        Ok(Outcome::Pass)
    }

    fn delete(&self) -> Check {
        for h in self.hosts {
            let _ = h.berth(&["rm", "-f", "conf-a", "conf-b", "conf-c"]);
        }
        if self.case.builtin.is_none() {
            ok(self.h, &["network", "rm", &self.net])?;
            let _ = self.h.berth(&["network", "rm", "conf2"]);
        }
        for (h, before) in self.hosts.iter().zip(&self.before) {
            let after = h.kernel_state();
            ensure(
                &after == before,
                format!("kernel state differs:\nbefore:\n{before}\nafter:\n{after}"),
            )?;
        }
        Ok(Outcome::Pass)
    }

    fn bad_options(&self) -> Check {
        let before = self.h.kernel_state();
        let r = self.h.berth(&[
            "network",
            "create",
            "-d",
            &self.case.driver,
            "-o",
            "bogus.option=1",
            "conf-bad",
        ]);
        ensure(r.code != 0, "an unknown option was accepted")?;
        ensure(
            r.stderr.lines().count() == 1 && r.stderr.contains("bogus.option"),
            format!("the error should be one line naming the option: {:?}", r.stderr),
        )?;
        ensure(
            self.h.kernel_state() == before,
            "a refused create changed the kernel",
        )?;
        let ls = ok(self.h, &["network", "ls", "-q", "--filter", "name=conf-bad"])?;
        ensure(ls.trim().is_empty(), "a refused network was recorded")?;
        Ok(Outcome::Pass)
    }
}

/// Runs every check for `case` in a fresh test host and returns the
/// outcomes in [`CHECKS`] order. A failed check fails the ones that
/// depend on it too.
pub fn run(berth: &Path, case: &Case) -> Vec<Outcome> {
    if case.cluster {
        let fabric = crate::fabric::Fabric::new(berth, 2);
        return run_on(&fabric.hosts, case);
    }
    let mut h = TestHost::without_daemon(berth);
    let case = &case.rooted(&h.root);
    // Served before the daemon starts, which activates it; stopped before
    // the host goes.
    let _plugin = case
        .docker_plugin
        .then(|| crate::docker_plugin::DockerPlugin::start(&h, &case.driver));
    for lib in &case.plugins {
        std::fs::create_dir_all(h.plugin_dir()).expect("creating the plugin directory");
        let name = lib.file_name().expect("a library file name");
        std::fs::copy(lib, h.plugin_dir().join(name)).expect("installing a plugin");
    }
    h.start_daemon(&[]);
    run_on(std::slice::from_ref(&h), case)
}

/// Runs every check for `case` on `hosts`, whose daemons run.
fn run_on(hosts: &[TestHost], case: &Case) -> Vec<Outcome> {
    let h = &hosts[0];
    for cmd in &case.setup {
        h.sh(cmd);
    }
    let mut row = Row {
        hosts,
        h,
        case,
        net: String::new(),
        before: hosts.iter().map(TestHost::kernel_state).collect(),
    };
    let mut out = Vec::new();
    let mut broken: Option<String> = None;
    type Step<'a> = fn(&mut Row<'a>) -> Check;
    let steps: [Step<'_>; 8] = [
        Row::create,
        |r| r.attach_two(),
        |r| r.reach(),
        |r| r.resolve(),
        |r| r.isolated(),
        |r| r.detach_idempotent(),
        |r| r.delete(),
        |r| r.bad_options(),
    ];
    for (i, step) in steps.iter().enumerate() {
        // "delete" and "bad options" run even after a failure: they clean up
        // and test independent things.
        if let Some(why) = &broken
            && i < 6
        {
            out.push(Outcome::Fail(format!("not run: {why}")));
            continue;
        }
        match step(&mut row) {
            Ok(o) => out.push(o),
            Err(e) => {
                broken.get_or_insert_with(|| format!("{} failed", CHECKS[i]));
                out.push(Outcome::Fail(e.to_string()));
            }
        }
    }
    out
}
