//! The daemon itself: `/_ping`, `/version`, `/info`, plugins, errors.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::de::nullable;
use crate::version::ApiVersion;

/// The headers of `/_ping`, after Docker's: a client reads the API
/// version it may use from `Api-Version` (without it a Docker client falls
/// back to 1.24) and the daemon's OS from `Ostype`. `Api-Version` is the
/// daemon's [`crate::API_VERSION`]; berth sends these on every answer, as
/// Docker does.
pub const PING_HEADERS: [(&str, &str); 5] = [
    ("Ostype", "linux"),
    ("Docker-Experimental", "false"),
    ("Swarm", "inactive"),
    ("Cache-Control", "no-cache, no-store, must-revalidate"),
    ("Pragma", "no-cache"),
];

/// Go's name (`GOARCH`) of an architecture named as the kernel and Rust
/// name it (`x86_64` → `amd64`, `aarch64` → `arm64`): Docker's `/version`
/// and `docker version` use Go's names.
pub fn go_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" | "i386" | "i686" => "386",
        "powerpc64" => "ppc64le",
        "riscv64gc" => "riscv64",
        other => other,
    }
}

/// Every error answer: `{"message": "..."}`, one line, with the status
/// Docker would use.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// What went wrong.
    #[serde(default, deserialize_with = "nullable")]
    pub message: String,
}

/// `GET /version`, Docker's shape: `docker version` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SystemVersion {
    /// `{"Name": "berth"}`.
    #[serde(default)]
    pub platform: Platform,
    /// One component, `Engine`: berth with its version and details.
    #[serde(default)]
    pub components: Vec<ComponentVersion>,
    /// berth's version.
    pub version: String,
    /// The newest API version served.
    pub api_version: ApiVersion,
    /// The oldest API version served.
    #[serde(rename = "MinAPIVersion")]
    pub min_api_version: ApiVersion,
    /// Empty: berth is not built from a git checkout it knows of.
    #[serde(default)]
    pub git_commit: String,
    /// Empty: berth is not written in Go.
    #[serde(default)]
    pub go_version: String,
    /// `linux`.
    #[serde(default)]
    pub os: String,
    /// Go's names: `amd64`, `arm64`, …
    #[serde(default)]
    pub arch: String,
    /// The running kernel's release.
    #[serde(default)]
    pub kernel_version: String,
}

/// The server platform of [`SystemVersion`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Platform {
    /// `berth`.
    pub name: String,
}

/// One component of [`SystemVersion`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ComponentVersion {
    /// `Engine`.
    pub name: String,
    /// Its version.
    pub version: String,
    /// `ApiVersion`, `MinAPIVersion`, `Os`, `Arch`, `KernelVersion`, … as
    /// strings (`docker version` prints them by these keys).
    pub details: BTreeMap<String, String>,
}

/// `GET /info`: Docker's shape, with what berth does not have left zero or
/// empty, plus berth's roots and drivers (which `berth info` prints).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SystemInfo {
    /// Empty: berth keeps no daemon id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Containers, all states.
    pub containers: u64,
    /// Running ones.
    pub containers_running: u64,
    /// Always 0.
    pub containers_paused: u64,
    /// Created and exited ones.
    pub containers_stopped: u64,
    /// Always 0: berth has no images.
    pub images: u64,
    /// Docker's storage driver: empty, berth has none.
    pub driver: String,
    /// The drivers by kind: `Network` lists berth's network drivers.
    pub plugins: InfoPlugins,
    /// Always false.
    pub debug: bool,
    /// The running kernel's release.
    pub kernel_version: String,
    /// `PRETTY_NAME` of `/etc/os-release`.
    pub operating_system: String,
    /// `linux`.
    #[serde(rename = "OSType")]
    pub os_type: String,
    /// As `uname -m` says: `x86_64`.
    pub architecture: String,
    /// CPUs berth may run on.
    #[serde(rename = "NCPU")]
    pub ncpu: u64,
    /// Bytes of memory.
    pub mem_total: u64,
    /// The data root.
    pub docker_root_dir: String,
    /// The host's name.
    pub name: String,
    /// Always empty.
    pub labels: Vec<String>,
    /// Always false.
    pub experimental_build: bool,
    /// berth's version.
    pub server_version: String,
    /// `inactive`: berth has no swarm.
    pub swarm: SwarmInfo,
    /// Always false.
    pub live_restore_enabled: bool,
    /// Empty: berth needs no containerd.
    pub containerd_commit: Commit,
    /// Empty: berth needs no runc.
    pub runc_commit: Commit,
    /// Empty.
    pub init_commit: Commit,
    /// Always empty.
    pub security_options: Vec<String>,
    /// What a Docker user should know about this daemon.
    pub warnings: Vec<String>,
    /// berth: persistent state (the store, logs).
    pub data_root: String,
    /// berth: runtime state (pinned namespaces, generated files).
    pub exec_root: String,
    /// berth: the host's resolv.conf it reads.
    pub resolv_conf: String,
    /// berth: each network driver, and whether this kernel supports it.
    pub drivers: Vec<DriverInfo>,
    /// The cluster store (`etcd://…`), when the daemon is in a cluster
    /// (Docker's field of its classic cluster store).
    pub cluster_store: String,
    /// This host's tunnel endpoint in the cluster (Docker's field).
    pub cluster_advertise: String,
    /// berth: the cluster, when the daemon is in one.
    pub cluster: Option<ClusterInfo>,
}

/// berth: [`SystemInfo::cluster`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ClusterInfo {
    /// `etcd://…`.
    pub store: String,
    /// `connecting`, `healthy`, or `unreachable: WHY`.
    pub health: String,
    /// For how many seconds it has been so.
    pub health_since_seconds: u64,
    /// This host's id in the cluster.
    #[serde(rename = "HostID")]
    pub host_id: String,
    /// This host's tunnel endpoint (`--advertise-addr`), its interface and
    /// that interface's MTU.
    pub advertise: String,
    /// The interface of the tunnel endpoint.
    pub interface: String,
    /// Its MTU.
    #[serde(rename = "MTU")]
    pub mtu: u32,
    /// The hosts the store lists now (this one included); the last ones
    /// this host heard of when the store cannot be reached.
    pub hosts: Vec<ClusterHost>,
}

/// berth: one host of [`ClusterInfo::hosts`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ClusterHost {
    /// Its id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Its host name.
    pub name: String,
    /// Its tunnel endpoint.
    pub address: String,
    /// Unix time it joined.
    pub since: u64,
    /// How long ago it joined, in seconds.
    pub age_seconds: u64,
    /// Seconds left on its lease: its records go when that reaches 0
    /// unless the host renews it; -1 when the store could not say.
    pub lease_seconds_left: i64,
}

/// [`SystemInfo::plugins`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InfoPlugins {
    /// Always empty.
    pub volume: Vec<String>,
    /// The network drivers (`-d` names).
    pub network: Vec<String>,
    /// Always empty.
    pub log: Vec<String>,
}

/// [`SystemInfo::swarm`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SwarmInfo {
    /// `inactive`.
    pub local_node_state: String,
}

/// A commit of a component Docker runs with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Commit {
    /// The commit in use.
    #[serde(rename = "ID")]
    pub id: String,
    /// The commit expected.
    pub expected: String,
}

/// berth: one network driver in [`SystemInfo::drivers`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DriverInfo {
    /// The `-d` name.
    pub name: String,
    /// `local` or `global`.
    pub scope: String,
    /// The `-o` options it takes.
    pub options: Vec<String>,
    /// Other names `-d` takes for it (`none` for `null`).
    pub aliases: Vec<String>,
    /// It has one network only, which berth makes (host, none): no
    /// `network create` with it.
    pub one_network: bool,
    /// The running kernel can do what it needs.
    pub supported: bool,
    /// Why not, when not.
    pub unsupported: String,
}

/// berth: one plugin as `berth plugin ls` shows it (`GET /plugins`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PluginInfo {
    /// The driver name it provides (`-d NAME`).
    pub name: String,
    /// `shared-library`, `docker` or `cni`.
    pub transport: String,
    /// The library, socket or spec file.
    pub path: String,
    /// The ABI version it declares, where there is one.
    pub abi: Option<u32>,
    /// `loaded`, or why not.
    pub status: String,
}
