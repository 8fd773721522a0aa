//! `berth` as a CNI plugin (`"type": "berth"`): run with `CNI_COMMAND`
//! set, as a runtime (Podman, containerd, the kubelet) runs plugins, it
//! attaches the runtime's namespace to a berth network through the
//! daemon's `/sandboxes` routes.
//!
//! ```json
//! {"cniVersion": "1.0.0", "name": "web", "type": "berth", "network": "my-net",
//!  "host": "unix:///run/berth/berth.sock",
//!  "capabilities": {"portMappings": true, "aliases": true}}
//! ```
//!
//! - `ADD`: interface `CNI_IFNAME` in `CNI_NETNS` on network `network`,
//!   named in berth's DNS by `CNI_ARGS`' `K8S_POD_NAME` (Podman passes
//!   the container's name there) and by `runtimeConfig.aliases[name]`;
//!   `runtimeConfig.portMappings` are published as `-p` would.
//! - `DEL`: detaches and forgets; an attachment berth does not have is
//!   success. `CHECK`: the daemon checks the attachment.
//! - `STATUS` (1.1.0): the daemon answers and has the network. `GC`
//!   (1.1.0): attachments on the network that `cni.dev/valid-attachments`
//!   does not list are detached.
//! - `VERSION`: the versions below.
//!
//! Failures are CNI error objects on stdout with a non-zero exit: the
//! spec's codes (1 version, 4 environment, 5 I/O, 6 decoding, 7
//! configuration, 3 unknown container for `CHECK`, 11 daemon unreachable,
//! 50 for `STATUS`), 100 for what the daemon refused as a conflict and
//! 101 for what it failed at.

use std::io::Read;
use std::net::IpAddr;
use std::process::ExitCode;

use berth_api::{
    ErrorResponse, SandboxAttachRequest, SandboxAttachResponse, SandboxDetachRequest, SandboxKey,
    SandboxPruneRequest,
};
use berth_engine::plugins::cni::{CniResult, Dns, Interface, IpConfig, PluginError, Route, decode_value};
use ipnet::IpNet;
use serde_json::{Value, json};

use crate::client::{self, Client};

/// The versions of the spec berth answers in.
pub const SUPPORTED_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The daemon refused the request as a conflict with what exists.
const CONFLICT: u64 = 100;
/// The daemon failed at the request.
const FAILED: u64 = 101;

/// Whether the process was started as a CNI plugin.
pub fn called() -> bool {
    std::env::var_os("CNI_COMMAND").is_some()
}

/// Runs the CNI command and prints its result or error object.
pub fn main() -> ExitCode {
    let env = Env::from_process();
    let mut stdin = Vec::new();
    let read = std::io::stdin().read_to_end(&mut stdin);
    let (version, out) = match read {
        Ok(_) => run(&env, &stdin),
        Err(e) => (
            "1.0.0".to_owned(),
            Err(PluginError::new(
                PluginError::IO_FAILURE,
                "cannot read the configuration on stdin",
                e.to_string(),
            )),
        ),
    };
    match out {
        Ok(Some(v)) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            println!("{}", e.to_value(&version));
            ExitCode::FAILURE
        }
    }
}

/// The `CNI_*` environment.
#[derive(Default)]
pub struct Env {
    command: String,
    container_id: String,
    netns: String,
    ifname: String,
    args: String,
}

impl Env {
    fn from_process() -> Self {
        let var = |k| std::env::var(k).unwrap_or_default();
        Self {
            command: var("CNI_COMMAND"),
            container_id: var("CNI_CONTAINERID"),
            netns: var("CNI_NETNS"),
            ifname: var("CNI_IFNAME"),
            args: var("CNI_ARGS"),
        }
    }

    /// Refuses an empty variable among `names`, naming every one.
    fn require(&self, names: &[&str]) -> Result<(), PluginError> {
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| match *n {
                "CNI_CONTAINERID" => self.container_id.is_empty(),
                "CNI_NETNS" => self.netns.is_empty(),
                "CNI_IFNAME" => self.ifname.is_empty(),
                _ => false,
            })
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(PluginError::new(
            PluginError::INVALID_ENVIRONMENT,
            format!("missing environment variables: {}", missing.join(", ")),
            format!("CNI_COMMAND={} needs {}", self.command, names.join(", ")),
        ))
    }

    /// The value of `key` in `CNI_ARGS` (`K=V;K=V`).
    fn arg(&self, key: &str) -> Option<&str> {
        self.args
            .split(';')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .filter(|v| !v.is_empty())
    }

    fn key(&self) -> SandboxKey {
        SandboxKey {
            id: self.container_id.clone(),
            if_name: self.ifname.clone(),
        }
    }
}

/// A berth plugin configuration, checked.
struct Conf {
    version: String,
    /// The CNI network's name (`name`).
    name: String,
    /// The berth network (`network`).
    network: String,
    client: Client,
    raw: Value,
}

fn invalid(msg: impl Into<String>, details: impl Into<String>) -> PluginError {
    PluginError::new(PluginError::INVALID_NETWORK_CONFIG, msg, details)
}

fn version_at_least(v: &str, want: (u64, u64)) -> bool {
    let mut parts = v.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= want
}

impl Conf {
    fn parse(raw: &[u8]) -> Result<Self, PluginError> {
        let v: Value = serde_json::from_slice(raw).map_err(|e| {
            PluginError::new(
                PluginError::DECODING_FAILURE,
                "the network configuration is not JSON",
                e.to_string(),
            )
        })?;
        let o = v.as_object().ok_or_else(|| {
            PluginError::new(
                PluginError::DECODING_FAILURE,
                "the network configuration is not a JSON object",
                "",
            )
        })?;
        let string = |k: &str| -> Result<Option<String>, PluginError> {
            match o.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(invalid(format!("{k} is not a string"), format!("{k}: {other}"))),
            }
        };
        let version = string("cniVersion")?.unwrap_or_else(|| "0.1.0".into());
        if !SUPPORTED_VERSIONS.contains(&version.as_str()) {
            return Err(PluginError::new(
                PluginError::INCOMPATIBLE_VERSION,
                format!("berth does not speak CNI version {version:?}"),
                format!("supported: {}", SUPPORTED_VERSIONS.join(", ")),
            ));
        }
        let name = string("name")?.unwrap_or_default();
        let network = string("network")?.filter(|n| !n.is_empty()).ok_or_else(|| {
            invalid(
                "no berth network",
                "the configuration needs \"network\": the berth network to attach to",
            )
        })?;
        let host = string("host")?.unwrap_or_else(client::default_host);
        let socket =
            crate::args::socket_path(&host).map_err(|e| invalid("invalid host", format!("{e:#}")))?;
        Ok(Self {
            version,
            name,
            network,
            client: Client::new(socket),
            raw: v,
        })
    }

    /// `runtimeConfig`'s `aliases` for this network and its `portMappings`
    /// as `-p` specs.
    fn runtime(&self) -> Result<(Vec<String>, Vec<String>), PluginError> {
        let rc = &self.raw["runtimeConfig"];
        let aliases = match &rc["aliases"] {
            Value::Null => Vec::new(),
            Value::Object(m) => match m.get(&self.name) {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| {
                        x.as_str().map(str::to_owned).ok_or_else(|| {
                            invalid(
                                "runtimeConfig.aliases holds something that is not a string",
                                x.to_string(),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
                Some(other) => {
                    return Err(invalid(
                        "runtimeConfig.aliases is not a list of names",
                        other.to_string(),
                    ));
                }
            },
            other => {
                return Err(invalid(
                    "runtimeConfig.aliases is not an object",
                    other.to_string(),
                ));
            }
        };
        let ports = match &rc["portMappings"] {
            Value::Null => Vec::new(),
            Value::Array(a) => a.iter().map(port_spec).collect::<Result<_, _>>()?,
            other => {
                return Err(invalid(
                    "runtimeConfig.portMappings is not a list",
                    other.to_string(),
                ));
            }
        };
        Ok((aliases, ports))
    }
}

/// One `portMappings` entry (`{"hostPort", "containerPort", "protocol",
/// "hostIP"}`) as a `-p` spec.
fn port_spec(m: &Value) -> Result<String, PluginError> {
    let bad = |why: &str| invalid(format!("runtimeConfig.portMappings: {why}"), m.to_string());
    let port = |k: &str| -> Result<u16, PluginError> {
        m[k].as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| bad(&format!("{k} is not a port from 1 to 65535")))
    };
    let (host, ctr) = (port("hostPort")?, port("containerPort")?);
    let proto = match m["protocol"]
        .as_str()
        .unwrap_or("tcp")
        .to_ascii_lowercase()
        .as_str()
    {
        "" | "tcp" => "tcp",
        "udp" => "udp",
        "sctp" => "sctp",
        _ => return Err(bad("protocol is not tcp, udp or sctp")),
    };
    let ip = match m["hostIP"].as_str().unwrap_or_default() {
        "" => String::new(),
        s => match s.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => format!("{a}:"),
            Ok(IpAddr::V6(a)) => format!("[{a}]:"),
            Err(_) => return Err(bad("hostIP is not an IP address")),
        },
    };
    Ok(format!("{ip}{host}:{ctr}/{proto}"))
}

/// Sends a request to the daemon; an error answer becomes a CNI error with
/// a code from its status.
fn ask<B: serde::Serialize>(
    conf: &Conf,
    method: &str,
    path: &str,
    body: Option<&B>,
) -> Result<Vec<u8>, PluginError> {
    let body = body
        .map(serde_json::to_vec)
        .transpose()
        .map_err(|e| PluginError::new(FAILED, "encoding the request", e.to_string()))?;
    let (status, answer) = conf.client.raw(method, path, body.as_deref()).map_err(|e| {
        PluginError::new(
            PluginError::TRY_AGAIN_LATER,
            "the berth daemon does not answer",
            format!("{}: {e}", conf.client.socket().display()),
        )
    })?;
    if (200..300).contains(&status) {
        return Ok(answer);
    }
    let message = serde_json::from_slice::<ErrorResponse>(&answer)
        .map(|e| e.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&answer).trim().to_owned());
    let code = match status {
        400 | 403 | 404 => PluginError::INVALID_NETWORK_CONFIG,
        409 => CONFLICT,
        _ => FAILED,
    };
    Err(PluginError::new(
        code,
        message,
        format!("the berth daemon answered {status} to {method} {path}"),
    ))
}

/// Runs one command; returns the version to answer in and what to print.
fn run(env: &Env, stdin: &[u8]) -> (String, Result<Option<Value>, PluginError>) {
    if env.command == "VERSION" {
        let asked = serde_json::from_slice::<Value>(stdin)
            .ok()
            .and_then(|v| v["cniVersion"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "1.1.0".into());
        return (
            asked.clone(),
            Ok(Some(
                json!({"cniVersion": asked, "supportedVersions": SUPPORTED_VERSIONS}),
            )),
        );
    }
    let conf = match Conf::parse(stdin) {
        Ok(c) => c,
        Err(e) => {
            let v = serde_json::from_slice::<Value>(stdin)
                .ok()
                .and_then(|v| v["cniVersion"].as_str().map(str::to_owned))
                .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
                .unwrap_or_else(|| "1.0.0".into());
            return (v, Err(e));
        }
    };
    let out = match env.command.as_str() {
        "ADD" => add(env, &conf).map(Some),
        "DEL" => del(env, &conf).map(|()| None),
        "CHECK" => check(env, &conf).map(|()| None),
        "STATUS" | "GC" if !version_at_least(&conf.version, (1, 1)) => Err(PluginError::new(
            PluginError::INCOMPATIBLE_VERSION,
            format!("{} needs cniVersion 1.1.0", env.command),
            format!("the configuration has {}", conf.version),
        )),
        "STATUS" => status(&conf).map(|()| None),
        "GC" => gc(&conf).map(|()| None),
        other => Err(PluginError::new(
            PluginError::INVALID_ENVIRONMENT,
            format!("unknown CNI_COMMAND {other:?}"),
            "accepted: ADD, DEL, CHECK, STATUS, GC, VERSION",
        )),
    };
    (conf.version, out)
}

fn add(env: &Env, conf: &Conf) -> Result<Value, PluginError> {
    env.require(&["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"])?;
    let (aliases, ports) = conf.runtime()?;
    let req = SandboxAttachRequest {
        key: env.key(),
        netns: env.netns.clone(),
        // The runtime's path is in its mount namespace, which may not be
        // the daemon's (Podman in a private one): the daemon opens it
        // through this process's root while the request lasts.
        netns_via: if env.netns.starts_with('/') {
            format!("/proc/{}/root{}", std::process::id(), env.netns)
        } else {
            String::new()
        },
        network: conf.network.clone(),
        name: env.arg("K8S_POD_NAME").unwrap_or_default().to_owned(),
        aliases,
        ports,
    };
    let answer = ask(conf, "POST", "/sandboxes/attach", Some(&req))?;
    let made: SandboxAttachResponse = serde_json::from_slice(&answer).map_err(|e| {
        PluginError::new(
            FAILED,
            "the berth daemon's answer is not an attachment",
            e.to_string(),
        )
    })?;
    let prev = match &conf.raw["prevResult"] {
        Value::Null => None,
        v => Some(decode_value(v).map_err(|e| invalid("prevResult is not a CNI result", e.to_string()))?),
    };
    result(conf, env, &made, prev).inspect_err(|_| {
        // The attachment is made and the runtime will not know it: undo it.
        let _ = del(env, conf);
    })
}

/// The ADD result: `prevResult`'s (if any) with berth's interface, its
/// addresses, default routes and resolver added.
fn result(
    conf: &Conf,
    env: &Env,
    made: &SandboxAttachResponse,
    prev: Option<CniResult>,
) -> Result<Value, PluginError> {
    let bad = |what: &str, v: &str| {
        PluginError::new(
            FAILED,
            format!("the berth daemon answered an invalid {what}"),
            v.to_owned(),
        )
    };
    let mut r = prev.unwrap_or_default();
    r.cni_version = conf.version.clone();
    let index = r.interfaces.len();
    r.interfaces.push(Interface {
        name: made.if_name.clone(),
        mac: Some(made.mac_address.clone()),
        sandbox: Some(env.netns.clone()),
    });
    let gateways: Vec<IpAddr> = made
        .gateways
        .iter()
        .map(|g| g.parse().map_err(|_| bad("gateway", g)))
        .collect::<Result<_, _>>()?;
    for a in &made.addresses {
        let address: IpNet = a.parse().map_err(|_| bad("address", a))?;
        let v4 = address.addr().is_ipv4();
        r.ips.push(IpConfig {
            address,
            gateway: gateways.iter().copied().find(|g| g.is_ipv4() == v4),
            interface: Some(index),
        });
    }
    for gw in &gateways {
        let dst: IpNet = if gw.is_ipv4() { "0.0.0.0/0" } else { "::/0" }
            .parse()
            .map_err(|_| bad("gateway", &gw.to_string()))?;
        r.routes.push(Route { dst, gw: Some(*gw) });
    }
    if !made.nameservers.is_empty() {
        r.dns = Dns {
            nameservers: made.nameservers.clone(),
            ..r.dns
        };
    }
    Ok(r.to_value())
}

fn del(env: &Env, conf: &Conf) -> Result<(), PluginError> {
    env.require(&["CNI_CONTAINERID", "CNI_IFNAME"])?;
    let req = SandboxDetachRequest {
        key: env.key(),
        network: conf.network.clone(),
    };
    ask(conf, "POST", "/sandboxes/detach", Some(&req)).map(drop)
}

fn check(env: &Env, conf: &Conf) -> Result<(), PluginError> {
    env.require(&["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"])?;
    let req = SandboxDetachRequest {
        key: env.key(),
        network: conf.network.clone(),
    };
    ask(conf, "POST", "/sandboxes/check", Some(&req))
        .map(drop)
        .map_err(|mut e| {
            if e.msg.starts_with("no such container") {
                e.code = PluginError::UNKNOWN_CONTAINER;
            }
            e
        })
}

fn status(conf: &Conf) -> Result<(), PluginError> {
    let path = format!("/networks/{}", crate::args::enc(&conf.network));
    ask::<()>(conf, "GET", &path, None).map(drop).map_err(|mut e| {
        e.code = PluginError::NOT_AVAILABLE;
        e
    })
}

fn gc(conf: &Conf) -> Result<(), PluginError> {
    let keep = match &conf.raw["cni.dev/valid-attachments"] {
        Value::Null => Vec::new(),
        Value::Array(a) => a
            .iter()
            .map(|x| {
                let s = |k: &str| x[k].as_str().map(str::to_owned);
                match (s("containerID"), s("ifname")) {
                    (Some(id), Some(if_name)) => Ok(SandboxKey { id, if_name }),
                    _ => Err(invalid(
                        "cni.dev/valid-attachments holds an entry without containerID and ifname",
                        x.to_string(),
                    )),
                }
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(invalid(
                "cni.dev/valid-attachments is not a list",
                other.to_string(),
            ));
        }
    };
    let req = SandboxPruneRequest {
        network: conf.network.clone(),
        keep,
    };
    ask(conf, "POST", "/sandboxes/prune", Some(&req)).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(command: &str) -> Env {
        Env {
            command: command.into(),
            container_id: "c1".into(),
            netns: "/run/netns/x".into(),
            ifname: "eth0".into(),
            args: "IgnoreUnknown=1;K8S_POD_NAME=web".into(),
        }
    }

    fn code(out: (String, Result<Option<Value>, PluginError>)) -> u64 {
        out.1.unwrap_err().code
    }

    #[test]
    fn bad_configurations_get_the_specs_codes() {
        let e = env("ADD");
        assert_eq!(code(run(&e, b"not json")), 6);
        assert_eq!(code(run(&e, b"[]")), 6);
        assert_eq!(code(run(&e, br#"{"cniVersion":"9.9.9","network":"n"}"#)), 1);
        assert_eq!(code(run(&e, br#"{"cniVersion":"1.0.0","name":"x"}"#)), 7);
        assert_eq!(
            code(run(
                &e,
                br#"{"cniVersion":"1.0.0","network":"n","host":"tcp://x"}"#
            )),
            7
        );
        assert_eq!(code(run(&e, br#"{"cniVersion":"1.0.0","network":7}"#)), 7);
        assert_eq!(
            code(run(&env("STATUS"), br#"{"cniVersion":"1.0.0","network":"n"}"#)),
            1
        );
        assert_eq!(
            code(run(&env("FROB"), br#"{"cniVersion":"1.0.0","network":"n"}"#)),
            4
        );
        let mut missing = env("ADD");
        missing.netns.clear();
        missing.ifname.clear();
        let err = run(&missing, br#"{"cniVersion":"1.0.0","network":"n"}"#)
            .1
            .unwrap_err();
        assert_eq!(err.code, 4);
        assert!(err.msg.contains("CNI_NETNS, CNI_IFNAME"), "{}", err.msg);
    }

    #[test]
    fn version_answers_with_the_asked_version() {
        let (v, out) = run(&env("VERSION"), br#"{"cniVersion":"0.4.0"}"#);
        assert_eq!(v, "0.4.0");
        let out = out.unwrap().unwrap();
        assert_eq!(
            out["supportedVersions"].as_array().unwrap().len(),
            SUPPORTED_VERSIONS.len()
        );
    }

    #[test]
    fn port_mappings_become_publish_specs() {
        let m = json!({"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""});
        assert_eq!(port_spec(&m).unwrap(), "8080:80/tcp");
        let m = json!({"hostPort": 53, "containerPort": 53, "protocol": "UDP", "hostIP": "::1"});
        assert_eq!(port_spec(&m).unwrap(), "[::1]:53:53/udp");
        for bad in [
            json!({"hostPort": 0, "containerPort": 80}),
            json!({"hostPort": 70000, "containerPort": 80}),
            json!({"hostPort": 1, "containerPort": 80, "protocol": "icmp"}),
            json!({"hostPort": 1, "containerPort": 80, "hostIP": "nope"}),
        ] {
            assert_eq!(port_spec(&bad).unwrap_err().code, 7, "{bad}");
        }
    }

    #[test]
    fn cni_args_and_aliases_are_read() {
        let e = env("ADD");
        assert_eq!(e.arg("K8S_POD_NAME"), Some("web"));
        assert_eq!(e.arg("K8S_POD_NAMESPACE"), None);
        let conf = Conf::parse(
            br#"{"cniVersion":"1.0.0","name":"podnet","network":"n","runtimeConfig":{"aliases":{"podnet":["a","b"],"other":["c"]},"portMappings":[{"hostPort":8080,"containerPort":80}]}}"#,
        )
        .unwrap();
        let (aliases, ports) = conf.runtime().unwrap();
        assert_eq!(aliases, ["a", "b"]);
        assert_eq!(ports, ["8080:80/tcp"]);
    }
}
