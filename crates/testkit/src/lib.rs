//! Throwaway hosts made of network namespaces, for berth's tests, its demo
//! and its benches.
//!
//! A [`TestHost`] is a fresh network namespace that plays the host, a
//! temporary directory that holds berth's data and exec roots, and a berth
//! daemon running inside that namespace. Every command it runs (`berth`,
//! `ip`, `nft`, …) runs inside the namespace, never in the machine's own.
//! Its `Drop` ends every process in its namespaces (containers, shims, the
//! daemon), unmounts everything under its directory and removes it: the
//! kernel then frees the namespaces and every link and nftables table in
//! them, also when a test fails. On SIGINT or SIGTERM the process's
//! cleanup thread does the same for every host it has, and a run killed
//! outright is cleaned up by the next one ([`cleanup`]).
#![deny(missing_docs)]

pub mod cleanup;
pub mod conformance;
pub mod dns;
pub mod docker_plugin;
pub mod dockerd;
mod error;
pub mod fabric;

pub use cleanup::{ROOT_ENV, ROOT_PREFIX, remove_root, stale_roots};
pub use error::Error;
pub use hickory_proto; // the tests read answers with its types

use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};

/// Fails loudly (never skips) when not root: berth's tests need
/// CAP_SYS_ADMIN and CAP_NET_ADMIN to make namespaces.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!(
            "this test needs root (namespaces, netlink, nftables): run it as root, e.g. `cargo xtask test`"
        );
    }
}

/// Creates a network namespace pinned by a bind mount at `path`.
pub fn make_netns(path: &Path) -> io::Result<()> {
    cleanup::checkpoint();
    File::create(path)?;
    let p = path.to_owned();
    thread::spawn(move || -> io::Result<()> {
        unshare(CloneFlags::CLONE_NEWNET)?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &p,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )?;
        // Loopback up, as on a real host.
        let st = Command::new("ip").args(["link", "set", "lo", "up"]).status()?;
        if !st.success() {
            return Err(io::Error::other("ip link set lo up failed"));
        }
        Ok(())
    })
    .join()
    .map_err(|_| io::Error::other("namespace thread panicked"))?
}

/// Gives `cmd` [`ROOT_ENV`] naming the test root `path` lies in, when it
/// lies in one: that ties the command and its children to the root for
/// every cleanup (see [`cleanup`]).
pub fn tie_to_root(cmd: &mut Command, path: &Path) {
    if let Some(root) = cleanup::root_of(path) {
        cmd.env(ROOT_ENV, root);
    }
}

/// Makes `cmd` start inside the network namespace pinned at `ns`. When
/// `ns` is in a test root, the command also gets [`ROOT_ENV`] naming it,
/// which ties it and its children to the root for every cleanup (see
/// [`cleanup`]).
pub fn in_netns(cmd: &mut Command, ns: &Path) -> io::Result<()> {
    cleanup::checkpoint();
    tie_to_root(cmd, ns);
    let f = File::open(ns)?;
    // SAFETY: setns is a raw syscall on an fd opened before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

/// A host made of a network namespace, with a berth daemon inside.
pub struct TestHost {
    /// The temporary directory that holds everything.
    pub root: PathBuf,
    /// The pinned namespace that plays the host.
    pub ns: PathBuf,
    /// The daemon's socket.
    pub socket: PathBuf,
    berth: PathBuf,
    daemon: Option<Child>,
    env: Vec<(String, String)>,
}

/// What a command printed and how it ended.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 for a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl TestHost {
    /// A fresh host namespace with a berth daemon (the binary `berth`)
    /// running in it, ready to answer.
    pub fn new(berth: &Path) -> Self {
        let mut h = Self::without_daemon(berth);
        h.start_daemon(&[]);
        h
    }

    /// A fresh host namespace, without a daemon yet.
    pub fn without_daemon(berth: &Path) -> Self {
        require_root();
        let root = cleanup::new_root();
        fs::create_dir_all(root.join("netns")).expect("creating the test root");
        let ns = root.join("netns").join("host");
        let h = Self {
            socket: root.join("berth.sock"),
            root,
            ns,
            berth: berth.to_owned(),
            daemon: None,
            env: Vec::new(),
        };
        make_netns(&h.ns).expect("creating the test host namespace");
        h
    }

    /// Adds an environment variable for every daemon this host starts.
    pub fn daemon_env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// Forgets the variables given with [`TestHost::daemon_env`].
    pub fn clear_daemon_env(&mut self) {
        self.env.clear();
    }

    /// The directory this host's daemon loads shared-library plugins from
    /// (also `docker-plugins`, `docker-plugin-specs` and `cni` beside it).
    pub fn plugin_dir(&self) -> PathBuf {
        self.root.join("plugins")
    }

    /// The data root.
    pub fn data_root(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The exec root.
    pub fn exec_root(&self) -> PathBuf {
        self.root.join("run")
    }

    /// Starts the daemon with extra arguments and waits until it answers.
    pub fn start_daemon(&mut self, extra: &[&str]) {
        let child = self.spawn_daemon(extra).expect("starting berth daemon");
        self.daemon = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.berth(&["network", "ls", "-q"]).code == 0 {
                return;
            }
            if let Some(Ok(Some(st))) = self.daemon.as_mut().map(|c| c.try_wait()) {
                panic!("berth daemon exited at start ({st}); log:\n{}", self.daemon_log());
            }
            assert!(
                Instant::now() < deadline,
                "berth daemon did not answer within 20 s; log:\n{}",
                self.daemon_log()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts a daemon and returns it without waiting (for tests of a
    /// daemon that must refuse to start).
    pub fn spawn_daemon(&self, extra: &[&str]) -> io::Result<Child> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("daemon.log"))?;
        let mut cmd = Command::new(&self.berth);
        cmd.arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .arg("daemon")
            .arg("--data-root")
            .arg(self.data_root())
            .arg("--exec-root")
            .arg(self.exec_root())
            // Plugins only from this host's own directories, never the machine's.
            .arg("--plugin-dir")
            .arg(self.plugin_dir())
            .arg("--docker-plugin-dir")
            .arg(self.root.join("docker-plugins"))
            .arg("--docker-plugin-spec-dir")
            .arg(self.root.join("docker-plugin-specs"))
            .arg("--cni-config-dir")
            .arg(self.root.join("cni"))
            .args(extra)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        in_netns(&mut cmd, &self.ns)?;
        cmd.spawn()
    }

    /// The daemon's log so far.
    pub fn daemon_log(&self) -> String {
        fs::read_to_string(self.root.join("daemon.log")).unwrap_or_default()
    }

    /// Kills the daemon with SIGKILL, as a crash would, and reaps it.
    pub fn kill_daemon(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the daemon with SIGTERM, as `systemctl stop` would, and waits.
    pub fn stop_daemon(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
    }

    /// Waits for the current daemon to exit by itself (after a failpoint).
    pub fn wait_daemon(&mut self) -> Option<std::process::ExitStatus> {
        self.daemon.take().and_then(|mut c| c.wait().ok())
    }

    /// Runs `berth -H <socket> ARGS…` inside the host namespace.
    pub fn berth(&self, args: &[&str]) -> Run {
        let mut cmd = self.berth_cmd(args);
        cmd.stdin(Stdio::null());
        cmd.output().expect("running berth").into()
    }

    /// A `berth -H <socket> ARGS…` command that will start inside the host
    /// namespace, to spawn by hand.
    pub fn berth_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = self.client_cmd(args);
        in_netns(&mut cmd, &self.ns).expect("opening the host namespace");
        cmd
    }

    /// [`TestHost::berth_cmd`] left in the caller's network namespace: a
    /// client needs only the daemon's socket, and the containers it starts
    /// join their own namespaces. Without a `pre_exec` step std starts it
    /// with `posix_spawn` (a vfork) instead of a fork of the whole caller,
    /// which a bench would otherwise time as the client's (a `docker`
    /// command is started the same way). It carries [`ROOT_ENV`] all the
    /// same, so the test host's cleanup finds what it leaves running.
    pub fn client_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.berth);
        cmd.arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args);
        tie_to_root(&mut cmd, &self.ns);
        cmd
    }

    /// Gives the test host up links to use as macvlan/ipvlan parents: a
    /// veth pair per name, `NAME` with its peer `NAMEx`, both inside the
    /// test host.
    pub fn add_lan_parents(&self, names: &[&str]) {
        for p in names {
            self.sh(&format!(
                "ip link add {p} type veth peer name {p}x && ip link set {p} up && ip link set {p}x up"
            ));
        }
    }

    /// A container's IPv4 address on network `net`, as `berth inspect`
    /// says; panics (naming what inspect said) when it has none.
    pub fn address(&self, container: &str, net: &str) -> String {
        let v: serde_json::Value =
            serde_json::from_str(&self.ok(&["inspect", container])).expect("berth inspect prints JSON");
        let ip = v[0]["NetworkSettings"]["Networks"][net]["IPAddress"]
            .as_str()
            .unwrap_or_default();
        assert!(!ip.is_empty(), "{container} has no address on {net}: {v:#}");
        ip.to_owned()
    }

    /// Runs berth and insists that it succeeds; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.berth(args);
        assert_eq!(
            r.code, 0,
            "berth {args:?} failed:\nstdout: {}\nstderr: {}",
            r.stdout, r.stderr
        );
        r.stdout
    }

    /// Runs berth and insists that it fails with one line on stderr;
    /// returns that line.
    pub fn fails(&self, args: &[&str]) -> String {
        let r = self.berth(args);
        assert_ne!(
            r.code, 0,
            "berth {args:?} should have failed but printed: {}",
            r.stdout
        );
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "berth {args:?} should print one error line, printed: {:?}",
            r.stderr
        );
        assert!(
            !r.stderr.contains("panicked"),
            "berth {args:?} panicked: {}",
            r.stderr
        );
        lines[0].to_owned()
    }

    /// Runs `sleep 600` detached as container `name` on network `net`
    /// (`berth run -d --name NAME --network NET -- sleep 600`) and insists
    /// on success; returns what berth printed (the container's id).
    pub fn run_sleeper(&self, name: &str, net: &str) -> String {
        self.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            net,
            "--",
            "sleep",
            "600",
        ])
    }

    /// Runs a program (`ip`, `nft`, `sh`, …) inside the host namespace.
    pub fn run(&self, prog: &str, args: &[&str]) -> Run {
        let mut cmd = Command::new(prog);
        cmd.args(args).stdin(Stdio::null());
        in_netns(&mut cmd, &self.ns).expect("opening the host namespace");
        cmd.output()
            .unwrap_or_else(|e| panic!("running {prog}: {e}"))
            .into()
    }

    /// Runs a shell command inside the host namespace and insists on
    /// success; returns stdout.
    pub fn sh(&self, script: &str) -> String {
        let r = self.run("sh", &["-c", script]);
        assert_eq!(r.code, 0, "sh -c {script:?} failed: {}{}", r.stdout, r.stderr);
        r.stdout
    }

    /// Makes another namespace (a second host, an "internet", …) pinned
    /// under this host's root, and returns its path.
    pub fn namespace(&self, name: &str) -> PathBuf {
        let p = self.root.join("netns").join(name);
        make_netns(&p).expect("creating a namespace");
        p
    }

    /// Joins the namespace `peer` to the host with a veth pair: `host_if`
    /// with `host_addr` in the host, `eth0` with `peer_addr` in the peer
    /// (both CIDR), and a default route in the peer via the host.
    pub fn wire(&self, peer: &Path, host_if: &str, host_addr: &str, peer_addr: &str) {
        self.sh(&format!(
            "ip link add {host_if} type veth peer name eth0 netns {p} && ip addr add {host_addr} dev {host_if} && ip link set {host_if} up",
            p = peer.display()
        ));
        let gw = host_addr.split('/').next().unwrap_or_default();
        let r = run_in(
            peer,
            "sh",
            &[
                "-c",
                &format!(
                    "ip addr add {peer_addr} dev eth0 && ip link set eth0 up && ip route add default via {gw}"
                ),
            ],
        );
        assert_eq!(r.code, 0, "configuring {}: {}", peer.display(), r.stderr);
    }

    /// The snapshot of kernel state berth is responsible for in this host:
    /// links, the nftables table, pinned sandboxes and overlay networks'
    /// namespaces. Two equal snapshots
    /// mean nothing was created or leaked in between.
    pub fn kernel_state(&self) -> String {
        let links = self.run("ip", &["-o", "link", "show"]).stdout;
        let mut links: Vec<String> = links
            .lines()
            .map(|l| {
                l.split(':')
                    .nth(1)
                    .unwrap_or_default()
                    .trim()
                    .split('@')
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        links.sort();
        // Addresses without their flags (IPv6 DAD's "tentative" comes and
        // goes) and without link-local ones, which the kernel makes itself.
        let addrs: Vec<String> = self
            .run("ip", &["-o", "addr", "show"])
            .stdout
            .lines()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                let (dev, addr) = (w.get(1)?, w.get(3)?);
                (!addr.starts_with("fe80:")).then(|| format!("{dev} {addr}"))
            })
            .collect();
        let nft = self.run("nft", &["list", "ruleset"]).stdout;
        let mut sandboxes: Vec<String> = fs::read_dir(self.exec_root().join("netns"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        sandboxes.sort();
        // Overlay networks' namespaces, pinned by the overlay driver.
        let mut overlays: Vec<String> = fs::read_dir(self.exec_root().join("overlay"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        overlays.sort();
        format!(
            "links: {links:?}\naddresses: {addrs:?}\nsandboxes: {sandboxes:?}\noverlays: {overlays:?}\nnftables:\n{nft}"
        )
    }
}

/// Builds the `cdylib` of a workspace package (an example plugin under
/// `examples/`) with cargo, once per test process, and returns the path of
/// the shared library. A build that fails fails the test.
pub fn plugin_library(package: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, p)) = built.iter().find(|(n, _)| n == package) {
        return p.clone();
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(&cargo)
        .current_dir(&root)
        .args(["build", "--quiet", "--message-format=json", "-p", package])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running {cargo} build -p {package}: {e}"));
    assert!(out.status.success(), "cargo build -p {package} failed");
    let lib = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["reason"] == "compiler-artifact"
                && v["target"]["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|x| x == "cdylib"))
        })
        .flat_map(|v| v["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| f.as_str().map(PathBuf::from))
        .find(|p| p.extension().is_some_and(|e| e == "so"))
        .unwrap_or_else(|| panic!("cargo build -p {package} made no shared library"));
    built.push((package.to_owned(), lib.clone()));
    lib
}

/// Runs a program inside the namespace pinned at `ns`.
pub fn run_in(ns: &Path, prog: &str, args: &[&str]) -> Run {
    let mut cmd = Command::new(prog);
    cmd.args(args).stdin(Stdio::null());
    in_netns(&mut cmd, ns).expect("opening a namespace");
    cmd.output()
        .unwrap_or_else(|e| panic!("running {prog}: {e}"))
        .into()
}

/// Listens on TCP `port` inside the namespace pinned at `ns` (all
/// addresses) and returns a handle that yields the address of the first
/// peer to connect, or `None` after `timeout`.
pub fn accept_one(
    ns: &Path,
    port: u16,
    timeout: Duration,
) -> thread::JoinHandle<Option<std::net::SocketAddr>> {
    let f = File::open(ns).expect("opening a namespace");
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = thread::spawn(move || {
        // SAFETY: setns on this thread only; the fd is open.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            let _ = tx.send(false);
            return None;
        }
        let listener = std::net::TcpListener::bind(("0.0.0.0", port)).ok()?;
        listener.set_nonblocking(true).ok()?;
        let _ = tx.send(true);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match listener.accept() {
                Ok((_, peer)) => return Some(peer),
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
        None
    });
    assert_eq!(rx.recv().ok(), Some(true), "listening in {}", ns.display());
    handle
}

impl Drop for TestHost {
    fn drop(&mut self) {
        self.kill_daemon();
        remove_root(&self.root);
        cleanup::untrack(&self.root);
    }
}
