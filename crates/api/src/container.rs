//! Containers: berth's create request and answer and its started/exited
//! reports; Docker's summary (`docker ps`) and inspect shapes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::de::nullable;
use crate::map::OrderedMap;
use crate::network::EndpointSettings;

/// berth: `POST /containers/create`, `berth run`'s flags. Not Docker's
/// request: berth runs host commands, not images, so a request that names
/// an `Image` (`docker run`) is refused.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerCreateRequest {
    /// `--name`; random when empty.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// `-h`; the short id when empty.
    #[serde(default, deserialize_with = "nullable")]
    pub hostname: String,
    /// The command and its arguments.
    #[serde(default, deserialize_with = "nullable")]
    pub cmd: Vec<String>,
    /// `--network`; `bridge` when empty.
    #[serde(default, deserialize_with = "nullable")]
    pub network: String,
    /// `--ip`.
    #[serde(rename = "IPv4Address", default, deserialize_with = "nullable")]
    pub ipv4: String,
    /// `--ip6`.
    #[serde(rename = "IPv6Address", default, deserialize_with = "nullable")]
    pub ipv6: String,
    /// `--rm`.
    #[serde(default, deserialize_with = "nullable")]
    pub auto_remove: bool,
    /// `--domainname`.
    #[serde(default, deserialize_with = "nullable")]
    pub domainname: String,
    /// `--dns`.
    #[serde(default, deserialize_with = "nullable")]
    pub dns: Vec<String>,
    /// `--dns-search`.
    #[serde(default, deserialize_with = "nullable")]
    pub dns_search: Vec<String>,
    /// `--dns-option`.
    #[serde(default, deserialize_with = "nullable")]
    pub dns_options: Vec<String>,
    /// `--add-host NAME:IP`.
    #[serde(default, deserialize_with = "nullable")]
    pub extra_hosts: Vec<String>,
    /// `--link NAME[:ALIAS]`.
    #[serde(default, deserialize_with = "nullable")]
    pub links: Vec<String>,
    /// `--network-alias`.
    #[serde(default, deserialize_with = "nullable")]
    pub aliases: Vec<String>,
    /// `-p`, as given.
    #[serde(default, deserialize_with = "nullable")]
    pub ports: Vec<String>,
    /// `-P`: publish every `--expose`d port on an ephemeral host port.
    #[serde(default, deserialize_with = "nullable")]
    pub publish_all: bool,
    /// `--expose`.
    #[serde(default, deserialize_with = "nullable")]
    pub expose: Vec<String>,
    /// `--mac-address`: the interface's MAC on the container's network;
    /// derived from its address when empty.
    #[serde(default, deserialize_with = "nullable")]
    pub mac_address: String,
    /// Docker's image: never sent by berth, refused when a Docker client
    /// sends it.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub image: String,
    /// `-e`, `--env-file`, `-w`, `-u`, resolved by the client; kept for
    /// `start` and `restart`.
    #[serde(default, deserialize_with = "nullable")]
    pub process: ContainerProcess,
}

/// berth: what `-e`, `--env-file`, `-w` and `-u` set for a container's
/// process, read and resolved on the client before anything is created.
/// The process otherwise inherits the environment and directory of
/// whoever starts it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerProcess {
    /// Variables to set, in order (a later one wins).
    #[serde(default, deserialize_with = "nullable")]
    pub env: Vec<(String, String)>,
    /// An absolute directory that exists.
    #[serde(default, deserialize_with = "nullable")]
    pub working_dir: Option<PathBuf>,
    /// The identity to take after entering the container.
    #[serde(default, deserialize_with = "nullable")]
    pub user: Option<ProcessUser>,
}

/// berth: a user's ids as the host's user and group databases give them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProcessUser {
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
    /// Supplementary groups (the user's groups; none for a uid that is
    /// not in the database).
    #[serde(default, deserialize_with = "nullable")]
    pub groups: Vec<u32>,
}

/// berth: the answer to a create, what the client needs to start the
/// container's process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerCreateResponse {
    /// The container's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its hostname.
    pub hostname: String,
    /// The network namespace to join.
    pub sandbox_key: String,
    /// The directory of pinned namespaces, which the process unmounts in
    /// its own mount namespace so it does not hold other containers'.
    pub netns_dir: String,
    /// Files to bind-mount over `/etc/hosts`, `/etc/resolv.conf` and
    /// `/etc/hostname`.
    pub hosts_path: String,
    /// See `hosts_path`.
    pub resolv_conf_path: String,
    /// See `hosts_path`.
    pub hostname_path: String,
    /// Where a detached container's output goes.
    pub log_path: String,
    /// The process's environment, directory and identity.
    #[serde(default, deserialize_with = "nullable")]
    pub process: ContainerProcess,
}

/// berth: `POST /containers/{id}/started`, the client started the process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerStarted {
    /// The process.
    pub pid: u32,
}

/// berth: `POST /containers/{id}/exited`, the process ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerExited {
    /// Its exit code, or 128 plus the signal; -1 when unknown.
    pub exit_code: i32,
}

/// `POST /containers/{id}/wait`: the container stopped, with this code.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerWaitResponse {
    /// Its exit code (128 plus the signal when killed).
    pub status_code: i64,
}

/// One container in `GET /containers/json`, Docker's summary, which
/// `docker ps` prints.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerSummary {
    /// 64 hex digits.
    pub id: String,
    /// `["/NAME"]`.
    pub names: Vec<String>,
    /// Always `host`: berth has no images, a container runs the host's
    /// programs on the host's file system.
    pub image: String,
    /// Always empty.
    #[serde(rename = "ImageID")]
    pub image_id: String,
    /// The command and its arguments, joined by spaces.
    pub command: String,
    /// Creation time, Unix seconds.
    pub created: i64,
    /// Published ports, one per port (ranges are spelled out), and exposed
    /// ones without a host port.
    pub ports: Vec<Port>,
    /// Always empty: berth containers have no labels.
    pub labels: BTreeMap<String, String>,
    /// `created`, `running` or `exited`.
    pub state: String,
    /// As Docker words it: `Up 5 seconds`, `Exited (0) 3 seconds ago`,
    /// `Created`.
    pub status: String,
    /// The network it was started on.
    pub host_config: SummaryHostConfig,
    /// Its networks, in the order it joined them; for an exited container,
    /// the networks it was on (with only their ids).
    pub network_settings: SummaryNetworkSettings,
    /// Always empty: berth mounts only its generated files.
    pub mounts: Vec<MountPoint>,
    /// berth: the published ports as `berth ps` prints them, ranges kept
    /// whole (`0.0.0.0:8000-8009->8000-8009/udp`). Docker clients ignore it.
    pub port_summary: Vec<String>,
}

/// One port in [`ContainerSummary::ports`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Port {
    /// The host address; absent for an exposed port that is not published.
    #[serde(rename = "IP", skip_serializing_if = "String::is_empty")]
    pub ip: String,
    /// The container's port.
    pub private_port: u16,
    /// The host's port; absent when not published.
    #[serde(skip_serializing_if = "is_zero")]
    pub public_port: u16,
    /// `tcp`, `udp` or `sctp`.
    #[serde(rename = "Type")]
    pub kind: String,
}

fn is_zero(p: &u16) -> bool {
    *p == 0
}

/// The summary's `HostConfig`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SummaryHostConfig {
    /// `--network`.
    pub network_mode: String,
}

/// The summary's `NetworkSettings`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SummaryNetworkSettings {
    /// By network name.
    pub networks: OrderedMap<EndpointSettings>,
}

/// A mount in Docker's summary. berth lists none; the type is here so
/// that `Mounts` reads as Docker's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountPoint {
    /// `bind`, `volume`, `tmpfs`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// The volume's name.
    pub name: String,
    /// On the host.
    pub source: String,
    /// In the container.
    pub destination: String,
    /// Mount options.
    pub mode: String,
    /// Writable.
    #[serde(rename = "RW")]
    pub rw: bool,
}

/// `docker inspect`'s shape, cut to what berth has.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerInspect {
    /// 64 hex digits.
    pub id: String,
    /// `/NAME`.
    pub name: String,
    /// RFC 3339.
    pub created: String,
    /// The program.
    pub path: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Where its process is.
    pub state: ContainerState,
    /// Generated `/etc/hostname`.
    pub hostname_path: String,
    /// Generated `/etc/hosts`.
    pub hosts_path: String,
    /// Generated `/etc/resolv.conf`.
    pub resolv_conf_path: String,
    /// A detached container's output.
    pub log_path: String,
    /// What it was created with.
    pub config: ContainerConfig,
    /// How its network was set up.
    pub host_config: HostConfig,
    /// What its network is now.
    pub network_settings: NetworkSettings,
}

/// A container's process.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerState {
    /// `created`, `running` or `exited`.
    pub status: String,
    /// `status` is `running`.
    pub running: bool,
    /// The process while running, else 0.
    pub pid: u32,
    /// The exit code once exited (-1: died unreported).
    pub exit_code: i32,
    /// RFC 3339; empty before start.
    pub started_at: String,
    /// RFC 3339; empty before exit.
    pub finished_at: String,
}

/// Inspect's `Config`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerConfig {
    /// `-h`.
    pub hostname: String,
    /// `--domainname`.
    pub domainname: String,
    /// The command.
    pub cmd: Vec<String>,
    /// `--expose`, as `PORT/PROTO` (ranges as `A-B/PROTO`), each `{}`.
    pub exposed_ports: OrderedMap<Empty>,
}

/// The `{}` value of Docker's sets (`ExposedPorts`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// Inspect's `HostConfig`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    /// `--network`.
    pub network_mode: String,
    /// `--rm`.
    pub auto_remove: bool,
    /// `--dns`.
    pub dns: Vec<String>,
    /// `--dns-search`.
    pub dns_search: Vec<String>,
    /// `--dns-option`.
    pub dns_options: Vec<String>,
    /// `--add-host`, as `NAME:IP`.
    pub extra_hosts: Vec<String>,
    /// `--link`, as `/NAME:/CONTAINER/ALIAS`.
    pub links: Vec<String>,
    /// Published ports.
    pub port_bindings: PortMap,
}

/// Inspect's `NetworkSettings`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkSettings {
    /// The pinned network namespace; empty when its network is down.
    pub sandbox_key: String,
    /// By network name, in the order it joined them.
    pub networks: OrderedMap<EndpointSettings>,
    /// Published ports.
    pub ports: PortMap,
    /// berth: published ports as `berth ps` prints them.
    pub port_summary: Vec<String>,
}

/// Docker's `{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}`,
/// one key per container port, in the order they were published.
pub type PortMap = OrderedMap<Vec<PortBinding>>;

/// Where one container port is published.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBinding {
    /// `0.0.0.0`, `::` or one address.
    pub host_ip: String,
    /// The host port, as a string (Docker's habit).
    pub host_port: String,
}

/// A duration as `docker ps` words it: "Less than a second", "5 seconds",
/// "About a minute", "10 minutes", "About an hour", "5 hours", "3 days".
/// The daemon builds [`ContainerSummary::status`] with it and `berth ps`
/// its CREATED column.
pub fn human_duration(secs: i64) -> String {
    match secs.max(0) {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".into(),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 7200 => "About an hour".into(),
        s if s < 172_800 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_like_dockers() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(600), "10 minutes");
        assert_eq!(human_duration(200_000), "2 days");
        assert_eq!(human_duration(-3), "Less than a second");
    }

    use super::*;

    #[test]
    fn exposed_ports_are_empty_objects() {
        let mut c = ContainerConfig::default();
        c.exposed_ports.insert("80/tcp", Empty {});
        let s = serde_json::to_string(&c).unwrap();
        assert!(s.ends_with(r#""ExposedPorts":{"80/tcp":{}}}"#), "{s}");
    }

    #[test]
    fn a_run_request_reads_nulls() {
        let r: ContainerCreateRequest =
            serde_json::from_str(r#"{"Cmd":["true"],"Dns":null,"Image":null}"#).unwrap();
        assert_eq!(r.cmd, ["true"]);
        assert!(r.dns.is_empty() && r.image.is_empty());
        assert!(!serde_json::to_string(&r).unwrap().contains("Image"));
    }
}
