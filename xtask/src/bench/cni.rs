//! The CNI reference `bridge` plugin with `host-local` IPAM as a bench
//! peer, run directly as a runtime would (`CNI_COMMAND=ADD|DEL`, config on
//! stdin), inside a host namespace of its own; and berth itself run the
//! same way as the CNI plugin `berth` ([`BerthCni`]), next to it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use berth_testkit::TestHost;
use serde_json::{Value, json};

use super::attacher::Subject;

/// Where Debian's `containernetworking-plugins` puts the plugins.
pub const DIR: &str = "/usr/lib/cni";
/// The plugins this peer execs.
pub const PLUGINS: [&str; 2] = ["bridge", "host-local"];
/// How to get them.
pub const INSTALL: &str = "apt-get install containernetworking-plugins";

/// A CNI host: a namespace with the `bench` network's bridge and iptables
/// rules, host-local's allocations in the test root, and the probe's
/// namespace.
pub struct Cni {
    host: TestHost,
    conf: Value,
    probe: PathBuf,
    /// The probe's ADD result, which its DEL gets as `prevResult`.
    added: Option<Value>,
}

impl Cni {
    /// A fresh host namespace (no berth daemon in it) and probe namespace.
    pub fn new(berth: &Path) -> Result<Self> {
        let host = TestHost::without_daemon(berth);
        let data = host.root.join("cni");
        fs::create_dir_all(&data).context("creating host-local's data directory")?;
        let probe = host.root.join("netns").join("probe");
        berth_testkit::make_netns(&probe).context("creating the probe namespace")?;
        Ok(Self {
            conf: conf(&data),
            host,
            probe,
            added: None,
        })
    }

    /// `CNI_COMMAND=COMMAND … bridge < stdin`, timed; returns its stdout.
    fn exec(&self, command: &str, id: &str, ns: &Path, stdin: &str) -> Result<(Duration, String)> {
        let mut cmd = Command::new(Path::new(DIR).join("bridge"));
        cmd.env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", ns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", DIR);
        super::timed_in(
            &self.host.ns,
            &mut cmd,
            stdin,
            &format!("CNI bridge {command} {id}"),
        )
    }
}

/// The network: a gateway bridge that masquerades, addresses from
/// host-local in 10.88.0.0/16 with a default route.
pub fn conf(data: &Path) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "bench",
        "type": "bridge",
        "bridge": "cnibr0",
        "isGateway": true,
        "ipMasq": true,
        "hairpinMode": true,
        "ipam": {
            "type": "host-local",
            "ranges": [[{ "subnet": "10.88.0.0/16" }]],
            "routes": [{ "dst": "0.0.0.0/0" }],
            "dataDir": data
        }
    })
}

impl Subject for Cni {
    fn add_other(&mut self, i: usize) -> Result<()> {
        let ns = self.host.root.join("netns").join(format!("o{i}"));
        berth_testkit::make_netns(&ns).with_context(|| format!("creating {}", ns.display()))?;
        self.exec("ADD", &format!("o{i}"), &ns, &self.conf.to_string())
            .map(drop)
    }

    fn attach(&mut self) -> Result<Duration> {
        let (d, out) = self.exec("ADD", "probe", &self.probe, &self.conf.to_string())?;
        let result: Value = serde_json::from_str(&out).with_context(|| format!("CNI ADD printed {out:?}"))?;
        self.added = Some(result);
        Ok(d)
    }

    fn detach(&mut self) -> Result<Duration> {
        let Some(prev) = self.added.take() else {
            bail!("CNI DEL of the probe before its ADD");
        };
        let mut conf = self.conf.clone();
        conf["prevResult"] = prev;
        Ok(self.exec("DEL", "probe", &self.probe, &conf.to_string())?.0)
    }

    fn host_ns(&self) -> &Path {
        &self.host.ns
    }

    fn probe_ns(&self) -> &Path {
        &self.probe
    }
}

/// berth as a CNI plugin: the berth binary run as a runtime runs plugins
/// (`CNI_COMMAND=ADD|DEL`, a `type: berth` configuration on stdin) in the
/// namespace of a test host whose daemon has the berth network, attaching
/// a probe namespace of its own. Timed from spawn to exit, as the
/// reference plugin is.
pub struct BerthCni {
    berth: PathBuf,
    host_ns: PathBuf,
    conf: Value,
    probe: PathBuf,
}

impl BerthCni {
    /// The plugin for berth network `network` of the daemon of `host`,
    /// with a probe namespace under the host's root.
    pub fn new(berth: &Path, host: &TestHost, network: &str) -> Result<Self> {
        let probe = host.root.join("netns").join("cni-probe");
        berth_testkit::make_netns(&probe).context("creating the probe namespace")?;
        Ok(Self {
            berth: berth.to_owned(),
            host_ns: host.ns.clone(),
            conf: json!({
                "cniVersion": "1.0.0",
                "name": "bench",
                "type": "berth",
                "network": network,
                "host": format!("unix://{}", host.socket.display()),
            }),
            probe,
        })
    }

    fn exec(&self, command: &str, id: &str, ns: &Path) -> Result<(Duration, String)> {
        let mut cmd = Command::new(&self.berth);
        cmd.env_clear()
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", ns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", DIR);
        super::timed_in(
            &self.host_ns,
            &mut cmd,
            &self.conf.to_string(),
            &format!("berth CNI {command} {id}"),
        )
    }
}

impl Subject for BerthCni {
    fn add_other(&mut self, i: usize) -> Result<()> {
        let ns = self.probe.with_file_name(format!("cni-o{i}"));
        berth_testkit::make_netns(&ns).with_context(|| format!("creating {}", ns.display()))?;
        self.exec("ADD", &format!("o{i}"), &ns).map(drop)
    }

    fn attach(&mut self) -> Result<Duration> {
        let (d, out) = self.exec("ADD", "probe", &self.probe)?;
        let result: Value =
            serde_json::from_str(&out).with_context(|| format!("berth CNI ADD printed {out:?}"))?;
        if result["ips"].as_array().is_none_or(Vec::is_empty) {
            bail!("berth CNI ADD gave no address: {out}");
        }
        Ok(d)
    }

    fn detach(&mut self) -> Result<Duration> {
        Ok(self.exec("DEL", "probe", &self.probe)?.0)
    }

    fn host_ns(&self) -> &Path {
        &self.host_ns
    }

    fn probe_ns(&self) -> &Path {
        &self.probe
    }
}
