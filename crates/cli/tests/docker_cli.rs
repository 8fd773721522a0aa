//! The real docker CLI pointed at berth's socket (`DOCKER_HOST=unix://…`):
//! version and info, every `docker network` command berth supports, and
//! `docker ps`. Debian's client (`/usr/bin/docker`, 20.10, API 1.41) must
//! be there (`.ci/run` installs `docker.io`); a newer one at
//! `/usr/local/bin/docker` is tested too when present, and its absence is
//! said loudly. No dockerd is ever started: the CLI's only daemon is berth.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use berth_testkit::{Run, TestHost, in_netns};
use serde_json::Value;

/// Debian's docker CLI, which the tests need.
const DEBIAN: &str = "/usr/bin/docker";
/// A newer docker CLI, tested when present.
const NEWER: &str = "/usr/local/bin/docker";

fn host() -> TestHost {
    TestHost::new(Path::new(env!("CARGO_BIN_EXE_berth")))
}

/// The docker CLIs to test with: Debian's always, the newer one if present.
fn clients() -> Vec<&'static str> {
    assert!(
        Path::new(DEBIAN).exists(),
        "{DEBIAN} is missing: install Debian's docker CLI (apt-get install docker.io; .ci/run does)"
    );
    let mut v = vec![DEBIAN];
    if Path::new(NEWER).exists() {
        v.push(NEWER);
    } else {
        eprintln!(
            "\n!!!!!!!! NOT TESTED with a newer docker CLI: {NEWER} is absent; only {DEBIAN} was tested !!!!!!!!\n"
        );
    }
    v
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// One docker CLI talking to one test host's berth, with a configuration
/// directory of its own inside the host's root (removed with it), so
/// nothing is written to ~/.docker.
struct Docker<'a> {
    h: &'a TestHost,
    bin: &'static str,
    config: PathBuf,
}

impl<'a> Docker<'a> {
    fn new(h: &'a TestHost, bin: &'static str) -> Self {
        let config = h
            .root
            .join(format!("docker-config-{}", SEQ.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&config).expect("creating the docker CLI's config directory");
        Self { h, bin, config }
    }

    fn run(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(self.bin);
        cmd.args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.h.socket.display()))
            .env("DOCKER_CONFIG", &self.config)
            .env("DOCKER_CLI_HINTS", "false")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_API_VERSION")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .stdin(Stdio::null());
        in_netns(&mut cmd, &self.h.ns).expect("opening the host namespace");
        cmd.output()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.bin))
            .into()
    }

    /// Runs docker and insists that it succeeds; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(
            r.code, 0,
            "{} {args:?} failed:\nstdout: {}\nstderr: {}",
            self.bin, r.stdout, r.stderr
        );
        r.stdout
    }

    /// Runs docker and insists that it fails with exit code 1 and one
    /// line on stderr; returns that line.
    fn fails(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(
            r.code, 1,
            "{} {args:?} should have failed with 1:\nstdout: {}\nstderr: {}",
            self.bin, r.stdout, r.stderr
        );
        // Newer clients end a multi-object command's errors with their
        // own "exit status 1".
        let lines: Vec<&str> = r
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("exit status "))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "{} {args:?}: one error line expected: {:?}",
            self.bin,
            r.stderr
        );
        lines[0].to_owned()
    }
}

fn inspect(h: &TestHost, what: &[&str]) -> Value {
    let v: Value = serde_json::from_str(&h.ok(what)).expect("inspect prints JSON");
    v[0].clone()
}

#[test]
fn docker_version_and_info_describe_berth() {
    for bin in clients() {
        let h = host();
        let d = Docker::new(&h, bin);
        let v = d.ok(&["version"]);
        for want in [
            "Server: berth",
            "Engine:",
            concat!("Version:          ", env!("CARGO_PKG_VERSION")),
            "API version:      1.47 (minimum version 1.24)",
            "OS/Arch:          linux/",
        ] {
            assert!(v.contains(want), "{bin} version does not say {want:?}:\n{v}");
        }
        assert_eq!(
            d.ok(&[
                "version",
                "--format",
                "{{.Server.Version}} {{.Server.APIVersion}} {{.Server.MinAPIVersion}} {{.Server.Os}}"
            ])
            .trim(),
            concat!(env!("CARGO_PKG_VERSION"), " 1.47 1.24 linux")
        );
        // The client negotiated from /_ping's Api-Version header instead of
        // falling back to 1.24: Debian's 20.10 speaks up to 1.41, newer
        // clients get berth's 1.47.
        let client_api = d.ok(&["version", "--format", "{{.Client.APIVersion}}"]);
        let want = if bin == DEBIAN { "1.41" } else { "1.47" };
        assert_eq!(client_api.trim(), want, "{bin}");

        let r = d.run(&["info"]);
        assert_eq!(r.code, 0, "{bin} info: {}{}", r.stdout, r.stderr);
        assert!(
            r.stdout
                .contains(concat!("Server Version: ", env!("CARGO_PKG_VERSION"))),
            "{bin} info:\n{}",
            r.stdout
        );
        assert!(
            r.stderr.contains("this daemon is berth, not Docker"),
            "{bin} info: {}",
            r.stderr
        );
        let f = d.ok(&[
            "info",
            "--format",
            "{{.ServerVersion}}|{{.OSType}}|{{.Swarm.LocalNodeState}}|{{json .Plugins.Network}}",
        ]);
        let parts: Vec<&str> = f.trim().splitn(4, '|').collect();
        assert_eq!(
            &parts[..3],
            [env!("CARGO_PKG_VERSION"), "linux", "inactive"],
            "{f}"
        );
        let nets: Vec<String> = serde_json::from_str(parts[3]).expect("Plugins.Network is JSON");
        for want in ["bridge", "host", "null", "macvlan"] {
            assert!(nets.iter().any(|n| n == want), "{want} not in {nets:?}");
        }
    }
}

#[test]
fn berth_version_shows_client_server_and_api() {
    let h = host();
    let v = h.ok(&["version"]);
    let lines: Vec<&str> = v.lines().collect();
    assert_eq!(
        lines,
        [
            "Client:",
            concat!(" Version:           ", env!("CARGO_PKG_VERSION")),
            " API version:       1.47",
            &format!(" OS/Arch:           linux/{}", berth_api_arch()),
            "",
            "Server: berth",
            " Engine:",
            concat!("  Version:          ", env!("CARGO_PKG_VERSION")),
            "  API version:      1.47 (minimum version 1.24)",
            &format!("  OS/Arch:          linux/{}", berth_api_arch()),
        ]
    );
    // No daemon: the client half, then one error line.
    let berth = env!("CARGO_BIN_EXE_berth");
    let r = h.run(berth, &["-H", "unix:///nonexistent/berth.sock", "version"]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.starts_with("Client:\n"), "{}", r.stdout);
    assert!(!r.stdout.contains("Server"), "{}", r.stdout);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("cannot reach the berth daemon"), "{}", r.stderr);
}

/// `docker version`'s name of this machine's architecture.
fn berth_api_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[test]
fn docker_network_create_inspect_ls_rm() {
    for bin in clients() {
        let h = host();
        let d = Docker::new(&h, bin);
        let id = d.ok(&[
            "network",
            "create",
            "-d",
            "bridge",
            "--subnet",
            "10.61.0.0/16",
            "--gateway",
            "10.61.0.254",
            "--ip-range",
            "10.61.7.0/24",
            "--aux-address",
            "printer=10.61.7.1",
            "--ipv6",
            "--subnet",
            "fd00:61::/64",
            "--internal",
            "--attachable",
            "-o",
            "com.docker.network.driver.mtu=1400",
            "--label",
            "team=net",
            "dnet",
        ]);
        let id = id.trim();
        assert_eq!(id.len(), 64, "{bin}: {id}");
        // What berth recorded.
        let n = inspect(&h, &["network", "inspect", "dnet"]);
        assert_eq!(n["Id"], id);
        assert_eq!(n["Driver"], "bridge");
        assert_eq!(n["Internal"], true);
        assert_eq!(n["Attachable"], true);
        assert_eq!(n["EnableIPv6"], true);
        assert_eq!(n["Labels"]["team"], "net");
        assert_eq!(n["Options"]["com.docker.network.driver.mtu"], "1400");
        let cfg = &n["IPAM"]["Config"];
        assert_eq!(cfg[0]["Subnet"], "10.61.0.0/16", "{n:#}");
        assert_eq!(cfg[0]["Gateway"], "10.61.0.254");
        assert_eq!(cfg[0]["IPRange"], "10.61.7.0/24");
        assert_eq!(cfg[0]["AuxiliaryAddresses"]["printer"], "10.61.7.1");
        assert_eq!(cfg[1]["Subnet"], "fd00:61::/64");
        assert!(h.sh("ip -d link show").contains("mtu 1400"));
        // What docker sees.
        assert_eq!(
            d.ok(&[
                "network",
                "inspect",
                "-f",
                "{{.Name}} {{.Driver}} {{.Internal}} {{.EnableIPv6}} {{index .Labels \"team\"}}",
                "dnet"
            ])
            .trim(),
            "dnet bridge true true net"
        );
        let raw: Value = serde_json::from_str(&d.ok(&["network", "inspect", &id[..10]])).unwrap();
        assert_eq!(raw[0]["Id"], id, "{bin}: inspect by id prefix");
        let ls = d.ok(&["network", "ls"]);
        assert!(ls.starts_with("NETWORK ID"), "{ls}");
        let row: Vec<&str> = ls
            .lines()
            .find(|l| l.contains("dnet"))
            .unwrap_or_else(|| panic!("{bin}: no dnet in {ls}"))
            .split_whitespace()
            .collect();
        assert_eq!(row, [&id[..12], "dnet", "bridge", "local"]);
        let names = |args: &[&str]| -> Vec<String> {
            let mut a = vec!["network", "ls", "--format", "{{.Name}}"];
            a.extend_from_slice(args);
            d.ok(&a).lines().map(str::to_owned).collect()
        };
        assert_eq!(names(&[]), ["bridge", "dnet", "host", "none"]);
        assert_eq!(names(&["--filter", "driver=bridge"]), ["bridge", "dnet"]);
        assert_eq!(names(&["--filter", "driver=null"]), ["none"]);
        assert_eq!(names(&["--filter", "name=dn"]), ["dnet"]);
        assert_eq!(names(&["--filter", &format!("id={}", &id[..6])]), ["dnet"]);
        assert_eq!(names(&["--filter", "label=team"]), ["dnet"]);
        assert_eq!(names(&["--filter", "label=team=net"]), ["dnet"]);
        assert_eq!(names(&["--filter", "label=team=other"]), [] as [&str; 0]);
        assert_eq!(names(&["--filter", "type=custom"]), ["dnet"]);
        assert_eq!(names(&["--filter", "type=builtin"]), ["bridge", "host", "none"]);
        assert_eq!(names(&["--filter", "dangling=true"]), ["dnet"]);
        assert_eq!(
            d.ok(&["network", "ls", "-q", "--filter", "name=dnet"]).trim(),
            &id[..12]
        );
        assert_eq!(
            d.ok(&["network", "ls", "-q", "--no-trunc", "--filter", "name=dnet"])
                .trim(),
            id
        );
        assert!(d.ok(&["network", "ls", "--no-trunc"]).contains(id));

        // Refusals: one line, Docker's status, berth's message.
        let e = d.fails(&["network", "create", "dnet"]);
        assert!(e.contains("network with name dnet already exists"), "{bin}: {e}");
        for builtin in ["bridge", "host", "none"] {
            let e = d.fails(&["network", "rm", builtin]);
            assert!(
                e.contains(&format!(
                    "{builtin} is a pre-defined network and cannot be removed"
                )),
                "{bin}: {e}"
            );
        }
        let e = d.fails(&["network", "create", "-d", "nosuch", "x"]);
        assert!(e.contains("unknown driver \"nosuch\""), "{bin}: {e}");
        let e = d.fails(&["network", "ls", "--filter", "colour=red"]);
        assert!(
            e.contains(
                "invalid filter \"colour\" (accepted: dangling, driver, id, label, name, scope, type)"
            ),
            "{bin}: {e}"
        );
        let e = d.fails(&["network", "ls", "--filter", "type=mine"]);
        assert!(e.contains("accepted: custom, builtin"), "{bin}: {e}");
        let e = d.fails(&["network", "inspect", "nope"]);
        assert!(e.contains("nope"), "{bin}: {e}");
        let e = d.fails(&["network", "rm", "nope"]);
        assert!(e.contains("nope"), "{bin}: {e}");

        // rm prints each name; the kernel's bridge goes with it.
        d.ok(&["network", "create", "second"]);
        let out = d.ok(&["network", "rm", "dnet", "second"]);
        assert_eq!(out.lines().collect::<Vec<_>>(), ["dnet", "second"]);
        assert_eq!(names(&[]), ["bridge", "host", "none"]);
        assert!(!h.sh("ip -d link show").contains("mtu 1400"));
    }
}

#[test]
fn docker_network_connect_disconnect_prune() {
    for bin in clients() {
        let h = host();
        let d = Docker::new(&h, bin);
        h.ok(&[
            "network",
            "create",
            "--subnet",
            "10.63.0.0/16",
            "--ipv6",
            "--subnet",
            "fd00:63::/64",
            "dn",
        ]);
        h.ok(&["run", "-d", "--name", "c1", "--", "sleep", "600"]);
        d.ok(&[
            "network",
            "connect",
            "--ip",
            "10.63.0.50",
            "--ip6",
            "fd00:63::50",
            "--alias",
            "web",
            "--alias",
            "www",
            "dn",
            "c1",
        ]);
        let c = inspect(&h, &["inspect", "c1"]);
        let ep = &c["NetworkSettings"]["Networks"]["dn"];
        assert_eq!(ep["IPAddress"], "10.63.0.50", "{bin}: {c:#}");
        assert_eq!(ep["GlobalIPv6Address"], "fd00:63::50");
        assert_eq!(ep["Aliases"], serde_json::json!(["web", "www"]));
        assert_eq!(ep["IPAMConfig"]["IPv4Address"], "10.63.0.50");
        let addrs = h.ok(&["exec", "c1", "--", "ip", "-br", "addr"]);
        assert!(addrs.contains("10.63.0.50/16"), "{addrs}");
        assert_eq!(
            d.ok(&[
                "network",
                "inspect",
                "-f",
                "{{range .Containers}}{{.Name}} {{.IPv4Address}} {{.IPv6Address}}{{end}}",
                "dn"
            ])
            .trim(),
            "c1 10.63.0.50/16 fd00:63::50/64"
        );
        let e = d.fails(&["network", "connect", "dn", "c1"]);
        assert!(
            e.contains("container c1 is already connected to network dn"),
            "{bin}: {e}"
        );
        let e = d.fails(&["network", "connect", "dn", "nope"]);
        assert!(e.contains("no such container: nope"), "{bin}: {e}");

        d.ok(&["network", "disconnect", "dn", "c1"]);
        let e = d.fails(&["network", "connect", "--ip", "10.99.0.5", "dn", "c1"]);
        assert!(e.contains("10.99.0.5"), "{bin}: {e}");
        let c = inspect(&h, &["inspect", "c1"]);
        assert!(
            c["NetworkSettings"]["Networks"].get("dn").is_none(),
            "{bin}: {c:#}"
        );
        let e = d.fails(&["network", "disconnect", "-f", "dn", "c1"]);
        assert!(
            e.contains("container c1 is not connected to network dn"),
            "{bin}: {e}"
        );
        // -f is passed on: connect again, disconnect with force.
        d.ok(&["network", "connect", "dn", "c1"]);
        d.ok(&["network", "disconnect", "-f", "dn", "c1"]);

        // prune, with and without a label filter.
        h.ok(&["network", "create", "--label", "temp=1", "p1"]);
        h.ok(&["network", "create", "--label", "temp=1", "--label", "x=y", "p2"]);
        h.ok(&["network", "create", "used"]);
        d.ok(&["network", "connect", "used", "c1"]);
        let out = d.ok(&["network", "prune", "-f", "--filter", "label=temp=1"]);
        let mut deleted: Vec<&str> = out.lines().skip(1).filter(|l| !l.is_empty()).collect();
        deleted.sort();
        assert!(out.starts_with("Deleted Networks:\n"), "{bin}: {out}");
        assert_eq!(deleted, ["p1", "p2"], "{bin}: {out}");
        let e = d.fails(&["network", "prune", "-f", "--filter", "until=1h"]);
        assert!(e.contains("filter \"until\" is not supported"), "{bin}: {e}");
        let e = d.fails(&["network", "prune", "-f", "--filter", "name=x"]);
        assert!(e.contains("accepted: label, label!"), "{bin}: {e}");
        let out = d.ok(&["network", "prune", "-f"]);
        assert_eq!(out, "Deleted Networks:\ndn\n\n", "{bin}: {out:?}");
        let left: Vec<String> = d
            .ok(&["network", "ls", "--format", "{{.Name}}"])
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(left, ["bridge", "host", "none", "used"], "{bin}");
    }
}

#[test]
fn docker_ps_lists_berth_containers() {
    for bin in clients() {
        let h = host();
        let d = Docker::new(&h, bin);
        h.ok(&["network", "create", "--subnet", "10.64.0.0/16", "web"]);
        let id = h.ok(&[
            "run",
            "-d",
            "--name",
            "srv",
            "--network",
            "web",
            "-p",
            "8080:80",
            "--",
            "sleep",
            "600",
        ]);
        let id = id.trim();
        let r = h.berth(&[
            "run",
            "--name",
            "done",
            "--network",
            "web",
            "--",
            "sh",
            "-c",
            "exit 3",
        ]);
        assert_eq!(r.code, 3);
        let ps = d.ok(&["ps"]);
        assert!(ps.starts_with("CONTAINER ID"), "{bin}: {ps}");
        assert_eq!(ps.lines().count(), 2, "{bin}: running containers only:\n{ps}");
        let row = ps.lines().nth(1).unwrap();
        for want in [
            &id[..12],
            "host",
            "\"sleep 600\"",
            "Up ",
            "0.0.0.0:8080->80/tcp",
            "srv",
        ] {
            assert!(row.contains(want), "{bin}: {want:?} not in {row:?}");
        }
        let fmt =
            "{{.ID}}|{{.Names}}|{{.Image}}|{{.Command}}|{{.Status}}|{{.Ports}}|{{.Networks}}|{{.RunningFor}}";
        let rows: Vec<Vec<String>> = d
            .ok(&["ps", "-a", "--format", fmt])
            .lines()
            .map(|l| l.split('|').map(str::to_owned).collect())
            .collect();
        assert_eq!(rows.len(), 2, "{bin}: {rows:?}");
        // Newest first, as Docker lists them.
        let (done, srv) = (&rows[0], &rows[1]);
        assert_eq!(srv[0], &id[..12]);
        assert_eq!(srv[1], "srv");
        assert_eq!(srv[2], "host");
        assert_eq!(srv[3], "\"sleep 600\"");
        assert!(srv[4].starts_with("Up "), "{bin}: {srv:?}");
        assert_eq!(srv[5], "0.0.0.0:8080->80/tcp");
        assert_eq!(srv[6], "web");
        assert!(srv[7].ends_with(" ago"), "{bin}: {srv:?}");
        assert_eq!(done[1], "done");
        assert!(
            done[4].starts_with("Exited (3) ") && done[4].ends_with(" ago"),
            "{bin}: {done:?}"
        );
        assert_eq!(done[5], "");
        assert_eq!(
            done[6], "web",
            "{bin}: an exited container shows the networks it was on"
        );
        assert_eq!(d.ok(&["ps", "-q"]).trim(), &id[..12]);
        let all: Vec<String> = d
            .ok(&["ps", "-a", "-q", "--no-trunc"])
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1], id);
        // The summary behind it, as a Go template sees it.
        assert_eq!(
            d.ok(&["ps", "--format", "{{.Label \"x\"}}|{{.Mounts}}|{{.State}}"])
                .trim(),
            "||running"
        );
        // berth's own ps still prints its table from the same answer.
        let ps = h.ok(&["ps", "-a"]);
        assert!(
            ps.lines()
                .any(|l| l.contains("srv") && l.contains("0.0.0.0:8080->80/tcp") && l.contains("web")),
            "{ps}"
        );
        assert!(
            ps.lines()
                .any(|l| l.contains("done") && l.contains("Exited (3)") && l.contains("web")),
            "{ps}"
        );
        // docker inspect reads berth's container inspect.
        assert_eq!(
            d.ok(&[
                "inspect",
                "-f",
                "{{.State.Status}} {{.State.Running}} {{.Name}}",
                "srv"
            ])
            .trim(),
            "running true /srv"
        );
        // Filters on the container list.
        let names = |args: &[&str]| -> Vec<String> {
            let mut a = vec!["ps", "-a", "--format", "{{.Names}}"];
            a.extend_from_slice(args);
            d.ok(&a).lines().map(str::to_owned).collect()
        };
        assert_eq!(names(&["--filter", "status=exited"]), ["done"]);
        assert_eq!(names(&["--filter", "name=sr"]), ["srv"]);
        assert_eq!(names(&["--filter", "network=web"]), ["done", "srv"]);
        assert_eq!(names(&["--filter", &format!("id={}", &id[..8])]), ["srv"]);
        let e = d.fails(&["ps", "--filter", "ancestor=busybox"]);
        assert!(e.contains("invalid filter \"ancestor\""), "{bin}: {e}");
        // docker run asks for an image: refused, nothing made.
        let r = d.run(&["run", "--rm", "busybox", "true"]);
        assert_ne!(r.code, 0, "{bin}: {}", r.stdout);
        assert!(r.stderr.contains("berth runs no images"), "{bin}: {}", r.stderr);
        assert_eq!(d.ok(&["ps", "-a", "-q"]).lines().count(), 2);
    }
}

#[test]
fn docker_network_create_d_overlay_on_hosts_of_a_cluster() {
    let f = berth_testkit::fabric::Fabric::new(Path::new(env!("CARGO_BIN_EXE_berth")), 2);
    for (k, bin) in clients().into_iter().enumerate() {
        let (d0, d1) = (Docker::new(f.host(0), bin), Docker::new(f.host(1), bin));
        let name = format!("ovd{k}");
        let subnet = format!("10.30.{k}.0/24");
        d0.ok(&[
            "network",
            "create",
            "-d",
            "overlay",
            "--attachable",
            "--subnet",
            &subnet,
            &name,
        ]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while d1.run(&["network", "inspect", &name]).code != 0 {
            assert!(std::time::Instant::now() < deadline, "host 1 never knew {name}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let ls = d1.ok(&[
            "network",
            "ls",
            "--filter",
            "driver=overlay",
            "--format",
            "{{.Name}} {{.Scope}}",
        ]);
        assert_eq!(ls.trim(), format!("{name} global"), "{bin}");
        let v = d1.ok(&[
            "network",
            "inspect",
            "-f",
            "{{.Driver}} {{.Attachable}} {{(index .IPAM.Config 0).Subnet}}",
            &name,
        ]);
        assert_eq!(v.trim(), format!("overlay true {subnet}"), "{bin}");
        let e = d0.fails(&["network", "create", "--scope", "global", "-d", "bridge", "wrong"]);
        assert!(
            e.contains("invalid scope \"global\" for driver bridge"),
            "{bin}: {e}"
        );
        d1.ok(&["network", "rm", &name]);
    }
}
