//! Several test hosts on one underlay, with a real etcd: berth's
//! multi-host world.
//!
//! The underlay is a bridge, `fab0`, in a namespace of its own (the
//! "fabric") on 198.51.100.0/24. The etcd members (Debian's `etcd-server`)
//! run in the fabric namespace on 198.51.100.1, .2 and .3, their data under
//! the fabric's temporary root; host `i` (from 0) is 198.51.100.(11 + i) on
//! its `eth0`, a veth whose peer is a port of `fab0`. Each host is a
//! [`TestHost`] running its own berth daemon with `--cluster-store` and
//! `--advertise-addr`. Nothing is created in the machine's own namespace,
//! and the fabric's `Drop` ends the etcd members (by PID) and removes the
//! namespaces and directories, also when a test fails.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::{Run, TestHost, cleanup, in_netns, make_netns, remove_root, require_root, run_in};

/// The underlay's prefix length; addresses are 198.51.100.0/24.
const UNDERLAY: &str = "198.51.100";

/// One etcd member of the fabric.
struct Member {
    name: String,
    ip: String,
    data: PathBuf,
    child: Option<Child>,
}

/// TLS material the fabric made for etcd and its clients.
#[derive(Clone, Debug)]
pub struct Tls {
    /// The CA certificate (PEM).
    pub ca: PathBuf,
    /// A client certificate signed by the CA (PEM).
    pub cert: PathBuf,
    /// Its key (PEM).
    pub key: PathBuf,
}

/// Test hosts on an underlay, with etcd: see the module docs.
pub struct Fabric {
    /// The temporary directory of the fabric (etcd data, certificates).
    pub root: PathBuf,
    /// The pinned fabric namespace.
    pub ns: PathBuf,
    /// The hosts, in order: host `i` is 198.51.100.(11 + i).
    pub hosts: Vec<TestHost>,
    berth: PathBuf,
    members: Vec<Member>,
    tls: Option<Tls>,
    /// The underlay's MTU when set with [`Fabric::set_underlay_mtu`].
    mtu: Option<u32>,
}

impl Fabric {
    /// A fabric with one etcd member and `hosts` hosts, each running a
    /// berth daemon that joined the cluster.
    pub fn new(berth: &Path, hosts: usize) -> Self {
        Self::build(berth, hosts, 1, false)
    }

    /// Like [`Fabric::new`] with `members` etcd members (1 to 3) and, with
    /// `tls`, etcd serving TLS only, with client certificates required.
    pub fn build(berth: &Path, hosts: usize, members: usize, tls: bool) -> Self {
        require_root();
        assert!((1..=3).contains(&members), "1 to 3 etcd members");
        let root = cleanup::new_root();
        fs::create_dir_all(root.join("netns")).expect("creating the fabric's root");
        let ns = root.join("netns").join("fabric");
        make_netns(&ns).expect("creating the fabric namespace");
        let mut fabric = Self {
            root,
            ns,
            hosts: Vec::new(),
            berth: berth.to_owned(),
            members: Vec::new(),
            tls: None,
            mtu: None,
        };
        let mut script = "ip link add fab0 type bridge && ip link set fab0 up".to_owned();
        for m in 1..=members {
            script.push_str(&format!(" && ip addr add {UNDERLAY}.{m}/24 dev fab0"));
        }
        fabric.sh(&script);
        if tls {
            fabric.tls = Some(fabric.make_certs(members));
        }
        for m in 1..=members {
            let data = fabric.root.join(format!("etcd{m}"));
            fabric.members.push(Member {
                name: format!("e{m}"),
                ip: format!("{UNDERLAY}.{m}"),
                data,
                child: None,
            });
        }
        for m in 0..members {
            fabric.spawn_member(m);
        }
        for m in 0..members {
            fabric.wait_member(m);
        }
        for _ in 0..hosts {
            fabric.add_host();
        }
        fabric
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Runs a shell script inside the fabric namespace; panics if it fails.
    pub fn sh(&self, script: &str) -> String {
        let r = run_in(&self.ns, "sh", &["-c", script]);
        assert_eq!(r.code, 0, "sh -c {script:?} failed: {}{}", r.stdout, r.stderr);
        r.stdout
    }

    /// The TLS material, when the fabric serves TLS.
    pub fn tls(&self) -> Option<&Tls> {
        self.tls.as_ref()
    }

    /// `--cluster-store`'s value: `etcd://IP:2379,…` of every member.
    pub fn store_url(&self) -> String {
        let list: Vec<String> = self.members.iter().map(|m| format!("{}:2379", m.ip)).collect();
        format!("etcd://{}", list.join(","))
    }

    /// The underlay address of host `i`.
    pub fn address(i: usize) -> String {
        format!("{UNDERLAY}.{}", 11 + i)
    }

    /// Host `i`'s port of `fab0`, the fabric's end of its `eth0`.
    fn port(i: usize) -> String {
        format!("fabh{}", 11 + i)
    }

    /// The arguments that make host `i`'s daemon join the cluster.
    pub fn daemon_args(&self, i: usize) -> Vec<String> {
        let mut args = vec![
            "--cluster-store".to_owned(),
            self.store_url(),
            "--advertise-addr".to_owned(),
            Self::address(i),
        ];
        if let Some(t) = &self.tls {
            args.push("--cluster-store-opt".into());
            args.push(format!(
                "cacert={},cert={},key={}",
                t.ca.display(),
                t.cert.display(),
                t.key.display()
            ));
        }
        args
    }

    /// Adds a host on the underlay and starts its daemon in the cluster;
    /// returns its index.
    pub fn add_host(&mut self) -> usize {
        let i = self.hosts.len();
        let h = TestHost::without_daemon(&self.berth);
        let port = Self::port(i);
        h.sh(&format!(
            "ip link add eth0 type veth peer name {port} netns {fab} && ip addr add {ip}/24 dev eth0 && ip link set eth0 up",
            fab = self.ns.display(),
            ip = Self::address(i),
        ));
        self.sh(&format!(
            "ip link set {port} master fab0 && ip link set {port} up"
        ));
        self.hosts.push(h);
        if let Some(mtu) = self.mtu {
            self.host_mtu(i, mtu);
        }
        self.start_daemon(i, &[]);
        i
    }

    /// Sets the underlay's MTU, like `ip link set DEV mtu MTU` on `fab0`
    /// and on every host's `eth0` and fabric port, those of hosts added
    /// later too. A daemon reads its underlay's MTU when it starts, so set
    /// it before adding the hosts (build with 0 hosts), or restart their
    /// daemons.
    pub fn set_underlay_mtu(&mut self, mtu: u32) {
        self.mtu = Some(mtu);
        self.sh(&format!("ip link set fab0 mtu {mtu}"));
        for i in 0..self.hosts.len() {
            self.host_mtu(i, mtu);
        }
    }

    /// Sets `mtu` on host `i`'s `eth0` and its fabric port.
    fn host_mtu(&self, i: usize, mtu: u32) {
        self.hosts[i].sh(&format!("ip link set eth0 mtu {mtu}"));
        self.sh(&format!("ip link set {} mtu {mtu}", Self::port(i)));
    }

    /// Starts host `i`'s daemon in the cluster, with `extra` arguments.
    pub fn start_daemon(&mut self, i: usize, extra: &[&str]) {
        let mut args: Vec<String> = self.daemon_args(i);
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.hosts[i].start_daemon(&args);
    }

    /// Host `i`.
    pub fn host(&self, i: usize) -> &TestHost {
        &self.hosts[i]
    }

    /// Host `i`, to restart or kill its daemon.
    pub fn host_mut(&mut self, i: usize) -> &mut TestHost {
        &mut self.hosts[i]
    }

    /// Runs `etcdctl` (API v3) in the fabric namespace against every
    /// member, bounded by a few seconds.
    pub fn etcdctl(&self, args: &[&str]) -> Run {
        let endpoints: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}://{}:2379", self.scheme(), m.ip))
            .collect();
        let mut cmd = Command::new("timeout");
        cmd.args(["5", "etcdctl", "--dial-timeout=1s", "--command-timeout=3s"])
            .arg(format!("--endpoints={}", endpoints.join(",")));
        if let Some(t) = &self.tls {
            cmd.arg(format!("--cacert={}", t.ca.display()))
                .arg(format!("--cert={}", t.cert.display()))
                .arg(format!("--key={}", t.key.display()));
        }
        cmd.args(args).env("ETCDCTL_API", "3").stdin(Stdio::null());
        in_netns(&mut cmd, &self.ns).expect("opening the fabric namespace");
        cmd.output().expect("running etcdctl").into()
    }

    /// Stops etcd member `m` (0-based) with SIGKILL.
    pub fn stop_member(&mut self, m: usize) {
        if let Some(mut c) = self.members[m].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts etcd member `m` again on its data and waits until it serves.
    pub fn start_member(&mut self, m: usize) {
        self.spawn_member(m);
        self.wait_member(m);
    }

    fn spawn_member(&mut self, m: usize) {
        let cluster: Vec<String> = self
            .members
            .iter()
            .map(|o| format!("{}={}://{}:2380", o.name, self.scheme(), o.ip))
            .collect();
        let scheme = self.scheme();
        let mem = &self.members[m];
        let fresh = !mem.data.exists();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join(format!("{}.log", mem.name)))
            .expect("opening etcd's log");
        let mut cmd = Command::new("etcd");
        cmd.arg("--name")
            .arg(&mem.name)
            .arg("--data-dir")
            .arg(&mem.data)
            .arg(format!("--listen-client-urls={scheme}://{}:2379", mem.ip))
            .arg(format!("--advertise-client-urls={scheme}://{}:2379", mem.ip))
            .arg(format!("--listen-peer-urls={scheme}://{}:2380", mem.ip))
            .arg(format!(
                "--initial-advertise-peer-urls={scheme}://{}:2380",
                mem.ip
            ))
            .arg(format!("--initial-cluster={}", cluster.join(",")))
            .arg("--initial-cluster-token=berth-test")
            .arg(if fresh {
                "--initial-cluster-state=new"
            } else {
                "--initial-cluster-state=existing"
            })
            // Fast elections: a test waits for them.
            .arg("--heartbeat-interval=10")
            .arg("--election-timeout=100")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("etcd's log"))
            .stderr(log);
        if let Some(t) = &self.tls {
            let server = self.root.join("certs");
            for (flag, file) in [
                ("--cert-file", "server.pem"),
                ("--key-file", "server-key.pem"),
                ("--peer-cert-file", "server.pem"),
                ("--peer-key-file", "server-key.pem"),
            ] {
                cmd.arg(format!("{flag}={}", server.join(file).display()));
            }
            cmd.arg(format!("--trusted-ca-file={}", t.ca.display()))
                .arg(format!("--peer-trusted-ca-file={}", t.ca.display()))
                .arg("--client-cert-auth")
                .arg("--peer-client-cert-auth");
        }
        in_netns(&mut cmd, &self.ns).expect("opening the fabric namespace");
        let child = cmd
            .spawn()
            .expect("starting etcd (Debian's etcd-server; cargo xtask test installs it when it is missing)");
        self.members[m].child = Some(child);
    }

    /// Waits until member `m` answers a health check (at most 20 s).
    fn wait_member(&mut self, m: usize) {
        let url = format!("{}://{}:2379", self.scheme(), self.members[m].ip);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut cmd = Command::new("timeout");
            cmd.args(["2", "etcdctl", "--dial-timeout=200ms", "--command-timeout=500ms"])
                .arg(format!("--endpoints={url}"));
            if let Some(t) = &self.tls {
                cmd.arg(format!("--cacert={}", t.ca.display()))
                    .arg(format!("--cert={}", t.cert.display()))
                    .arg(format!("--key={}", t.key.display()));
            }
            cmd.args(["endpoint", "health"])
                .env("ETCDCTL_API", "3")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            in_netns(&mut cmd, &self.ns).expect("opening the fabric namespace");
            if cmd.status().is_ok_and(|s| s.success()) {
                return;
            }
            if let Some(Ok(Some(st))) = self.members[m].child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "etcd member {} exited at start ({st}); its log:\n{}",
                    self.members[m].name,
                    fs::read_to_string(self.root.join(format!("{}.log", self.members[m].name)))
                        .unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "etcd member {} did not become healthy within 20 s",
                self.members[m].name
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// A CA, a server certificate for every member's address (also used
    /// between members) and a client certificate, made with `openssl`.
    fn make_certs(&self, members: usize) -> Tls {
        let dir = self.root.join("certs");
        fs::create_dir_all(&dir).expect("creating the certificate directory");
        let sans: Vec<String> = (1..=members).map(|m| format!("IP:{UNDERLAY}.{m}")).collect();
        let script = format!(
            r#"set -e
openssl ecparam -name prime256v1 -genkey -noout -out ca-key.pem
openssl req -x509 -new -key ca-key.pem -subj /CN=berth-test-ca -days 2 -out ca.pem
openssl ecparam -name prime256v1 -genkey -noout -out server-key.pem
openssl req -new -key server-key.pem -subj /CN=etcd -out server.csr
printf 'subjectAltName={sans}\nextendedKeyUsage=serverAuth,clientAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 -extfile server.ext -out server.pem
openssl ecparam -name prime256v1 -genkey -noout -out client-key.pem
openssl req -new -key client-key.pem -subj /CN=berth -out client.csr
printf 'extendedKeyUsage=clientAuth\n' > client.ext
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 -extfile client.ext -out client.pem
"#,
            sans = sans.join(",")
        );
        let out = Command::new("sh")
            .args(["-c", &script])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .expect("running openssl");
        assert!(
            out.status.success(),
            "making the test certificates: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tls {
            ca: dir.join("ca.pem"),
            cert: dir.join("client.pem"),
            key: dir.join("client-key.pem"),
        }
    }
}

impl Drop for Fabric {
    fn drop(&mut self) {
        // Hosts first: their daemons talk to etcd until they stop.
        self.hosts.clear();
        for m in 0..self.members.len() {
            self.stop_member(m);
        }
        remove_root(&self.root);
        cleanup::untrack(&self.root);
    }
}
