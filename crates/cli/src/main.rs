//! `berth`: Docker's network modes for containers, without Docker.
//!
//! `berth daemon` runs the engine; every other command is a client of it
//! over a unix socket, speaking Docker's words and flags.

mod client;
mod daemon;
mod output;
mod run;

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

use crate::client::{Client, connect};

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "Docker's network modes for containers, without Docker"
)]
struct Cli {
    /// The daemon's socket, unix:///PATH [default: unix://$BERTH_EXEC_ROOT/berth.sock, else
    /// unix:///run/berth/berth.sock].
    #[arg(short = 'H', long = "host", env = "BERTH_HOST", global = true)]
    host: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the berth engine.
    Daemon(daemon::DaemonArgs),
    /// Manage networks.
    #[command(subcommand)]
    Network(NetworkCmd),
    /// Run a command in a new container.
    Run(RunArgs),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// List containers.
    Ps {
        /// Show all containers, exited ones too.
        #[arg(short, long)]
        all: bool,
        /// Only show ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show containers in detail, as JSON.
    Inspect {
        /// Containers (name or id).
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove containers.
    Rm {
        /// Kill running containers first.
        #[arg(short, long)]
        force: bool,
        /// Containers (name or id).
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// List a container's published ports, or where one container port is
    /// published (`berth port NAME 80/tcp`).
    Port {
        /// Container (name or id).
        container: String,
        /// PORT[/PROTO] to show alone.
        private_port: Option<String>,
    },
    /// Daemon-wide operations.
    #[command(subcommand)]
    System(SystemCmd),
    /// Show what a detached container printed.
    Logs {
        /// Container (name or id).
        container: String,
    },
    /// Show the daemon's configuration and drivers.
    Info,
    /// Manage network plugins.
    #[command(subcommand)]
    Plugin(PluginCmd),
    #[command(name = "__shim", hide = true)]
    Shim {
        spec: String,
        #[arg(last = true, required = true)]
        argv: Vec<String>,
    },
}

#[derive(Subcommand)]
enum NetworkCmd {
    /// Create a network.
    Create(CreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls {
        /// Only show ids.
        #[arg(short, long)]
        quiet: bool,
        /// Filter: driver=X, name=X or id=X.
        #[arg(short, long = "filter", value_name = "KEY=VALUE")]
        filters: Vec<String>,
        /// table or json.
        #[arg(long, default_value = "table")]
        format: String,
        /// Show full ids.
        #[arg(long)]
        no_trunc: bool,
    },
    /// Show networks in detail, as JSON.
    Inspect {
        /// Networks (name or id).
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove networks.
    #[command(alias = "remove")]
    Rm {
        /// Networks (name or id).
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove every network no container uses.
    Prune {
        /// Do not ask.
        #[arg(short, long)]
        force: bool,
    },
    /// Connect a container to a network.
    Connect {
        /// IPv4 address for the container.
        #[arg(long)]
        ip: Option<String>,
        /// IPv6 address for the container.
        #[arg(long)]
        ip6: Option<String>,
        /// Extra name for the container on this network (repeatable).
        #[arg(long)]
        alias: Vec<String>,
        /// Network.
        network: String,
        /// Container.
        container: String,
    },
    /// Check that every container on a network is still wired as its driver
    /// left it (CNI's CHECK): one line per container, exit 1 if any failed.
    Check {
        /// Network.
        network: String,
    },
    /// Disconnect a container from a network.
    Disconnect {
        /// Go on even if the driver fails to undo its work.
        #[arg(short, long)]
        force: bool,
        /// Network.
        network: String,
        /// Container.
        container: String,
    },
}

#[derive(Subcommand)]
enum SystemCmd {
    /// Re-install berth's firewall table with every network's and port's
    /// elements (after someone flushed nftables); other tables are left
    /// alone. The daemon does the same on SIGHUP.
    Reconcile,
}

#[derive(Subcommand)]
enum PluginCmd {
    /// List plugins: name, transport, path, ABI version, status.
    #[command(alias = "list")]
    Ls {
        /// table or json.
        #[arg(long, default_value = "table")]
        format: String,
    },
    /// Discover plugins again.
    Reload,
}

#[derive(Args)]
struct CreateArgs {
    /// Driver: bridge (default), host, none, …
    #[arg(short, long, default_value = "bridge")]
    driver: String,
    /// Subnet in CIDR notation (repeatable).
    #[arg(long)]
    subnet: Vec<String>,
    /// Gateway for a subnet (repeatable).
    #[arg(long)]
    gateway: Vec<String>,
    /// Allocate container addresses from this sub-range (repeatable).
    #[arg(long = "ip-range")]
    ip_range: Vec<String>,
    /// Reserve an address: NAME=IP (repeatable).
    #[arg(long = "aux-address", value_name = "NAME=IP")]
    aux_address: Vec<String>,
    /// Enable IPv6.
    #[arg(long)]
    ipv6: bool,
    /// No traffic leaves the network.
    #[arg(long)]
    internal: bool,
    /// Containers may be attached by hand.
    #[arg(long)]
    attachable: bool,
    /// Driver option KEY=VALUE (repeatable).
    #[arg(short, long = "opt", value_name = "KEY=VALUE")]
    opt: Vec<String>,
    /// Label KEY=VALUE (repeatable).
    #[arg(long)]
    label: Vec<String>,
    /// Network name.
    name: String,
}

#[derive(Args)]
#[command(disable_help_flag = true)]
struct RunArgs {
    /// Run in the background and print the container's id.
    #[arg(short, long)]
    detach: bool,
    /// Remove the container when its command ends.
    #[arg(long)]
    rm: bool,
    /// Container name.
    #[arg(long)]
    name: Option<String>,
    /// Network (default: bridge).
    #[arg(long, alias = "net")]
    network: Option<String>,
    /// IPv4 address on a user-defined network.
    #[arg(long)]
    ip: Option<String>,
    /// IPv6 address on a user-defined network.
    #[arg(long)]
    ip6: Option<String>,
    /// Hostname inside the container.
    #[arg(short = 'h', long)]
    hostname: Option<String>,
    /// Domain name inside the container.
    #[arg(long)]
    domainname: Option<String>,
    /// DNS server for the container (repeatable).
    #[arg(long, value_name = "IP")]
    dns: Vec<String>,
    /// DNS search domain (repeatable; "." for none).
    #[arg(long = "dns-search", value_name = "DOMAIN")]
    dns_search: Vec<String>,
    /// resolv.conf option (repeatable).
    #[arg(long = "dns-option", value_name = "OPT")]
    dns_option: Vec<String>,
    /// Add a line to /etc/hosts: NAME:IP or NAME:host-gateway (repeatable).
    #[arg(long = "add-host", value_name = "NAME:IP")]
    add_host: Vec<String>,
    /// Legacy link to another container: NAME[:ALIAS] (repeatable).
    #[arg(long, value_name = "NAME[:ALIAS]")]
    link: Vec<String>,
    /// Extra name on the network (repeatable; user-defined networks only).
    #[arg(long = "network-alias", alias = "net-alias", value_name = "ALIAS")]
    network_alias: Vec<String>,
    /// Publish a port: [HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/tcp|udp|sctp]
    /// (repeatable; bridge networks only).
    #[arg(short = 'p', long = "publish", value_name = "SPEC")]
    publish: Vec<String>,
    /// Publish every --expose'd port on a free ephemeral host port.
    #[arg(short = 'P', long = "publish-all")]
    publish_all: bool,
    /// Declare a port the container listens on: PORT[-END][/PROTO] (repeatable; see -P).
    #[arg(long, value_name = "PORT")]
    expose: Vec<String>,
    /// Accepted for Docker compatibility; the terminal is always passed on.
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Accepted for Docker compatibility; the terminal is always passed on.
    #[arg(short = 't', long)]
    tty: bool,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Args)]
struct ExecArgs {
    /// Accepted for Docker compatibility.
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Accepted for Docker compatibility.
    #[arg(short = 't', long)]
    tty: bool,
    /// Container.
    container: String,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// An error that ends berth with a particular exit code (127 when a
/// container's command cannot be run, as a shell does).
#[derive(Debug)]
pub struct ExitWith(pub u8, pub String);

impl std::fmt::Display for ExitWith {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl std::error::Error for ExitWith {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(err) => {
            eprintln!("berth: {err:#}");
            match err.downcast_ref::<ExitWith>() {
                Some(ExitWith(code, _)) => ExitCode::from(*code),
                None => ExitCode::FAILURE,
            }
        }
    }
}

fn key_value(what: &str, s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => bail!("invalid {what} {s:?} (accepted: KEY=VALUE)"),
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn dispatch(cli: Cli) -> Result<i32> {
    let host = cli.host.as_deref();
    match cli.cmd {
        Cmd::Daemon(args) => daemon::run(host, args).map(|()| 0),
        Cmd::Network(cmd) => network(&connect(host)?, cmd),
        Cmd::Run(args) => run_container(host, args),
        Cmd::Exec(args) => {
            let c = connect(host)?;
            let info = c.call("GET", &format!("/containers/{}/json", enc(&args.container)), None)?;
            if info["State"]["Running"] != json!(true) {
                bail!("container {} is not running", args.container);
            }
            let pid = info["State"]["Pid"]
                .as_u64()
                .context("the daemon did not say the container's pid")? as u32;
            let mut cmd = std::process::Command::new(&args.command[0]);
            cmd.args(&args.command[1..]);
            run::enter_process(&mut cmd, pid)?;
            let mut child = cmd.spawn().with_context(|| {
                format!("cannot run {:?} in container {}", args.command[0], args.container)
            })?;
            Ok(run::exit_code(run::wait_forwarding(&mut child)?))
        }
        Cmd::Ps { all, quiet } => {
            let list =
                connect(host)?.call("GET", &format!("/containers/json?all={}", u8::from(all)), None)?;
            output::ps(&list, quiet);
            Ok(0)
        }
        Cmd::Inspect { containers } => {
            let c = connect(host)?;
            each(
                &containers,
                |k| c.call("GET", &format!("/containers/{}/json", enc(k)), None),
                true,
            )
        }
        Cmd::Rm { force, containers } => {
            let c = connect(host)?;
            each(
                &containers,
                |k| {
                    c.call(
                        "DELETE",
                        &format!("/containers/{}?force={}", enc(k), u8::from(force)),
                        None,
                    )
                    .map(|_| json!(k))
                },
                false,
            )
        }
        Cmd::Port {
            container,
            private_port,
        } => {
            let info = connect(host)?.call("GET", &format!("/containers/{}/json", enc(&container)), None)?;
            output::ports(&info["NetworkSettings"]["Ports"], private_port.as_deref())
        }
        Cmd::System(SystemCmd::Reconcile) => {
            connect(host)?.call("POST", "/system/reconcile", None)?;
            Ok(0)
        }
        Cmd::Logs { container } => {
            let body = connect(host)?.get_bytes(&format!("/containers/{}/logs", enc(&container)))?;
            use std::io::Write;
            std::io::stdout().write_all(&body)?;
            Ok(0)
        }
        Cmd::Plugin(PluginCmd::Ls { format }) => {
            let list = connect(host)?.call("GET", "/plugins", None)?;
            output::plugins(&list, &format)?;
            Ok(0)
        }
        Cmd::Plugin(PluginCmd::Reload) => {
            let list = connect(host)?.call("POST", "/plugins/reload", None)?;
            output::plugins(&list, "table")?;
            Ok(0)
        }
        Cmd::Info => {
            let info = connect(host)?.call("GET", "/info", None)?;
            output::info(&info);
            Ok(0)
        }
        Cmd::Shim { spec, argv } => {
            let spec: run::Spec =
                serde_json::from_str(&spec).context("decoding the shim's container spec")?;
            let client = Client::new(client::socket_path(host.unwrap_or(&client::default_host()))?);
            run::shim(&client, &spec, &argv)
        }
    }
}

/// Runs `f` on each key; prints what succeeded (a JSON array when `json`,
/// else one line each) and an error line for each failure.
fn each(keys: &[String], f: impl Fn(&str) -> Result<Value>, json: bool) -> Result<i32> {
    let mut out = Vec::new();
    let mut failed = 0;
    for k in keys {
        match f(k) {
            Ok(v) => out.push(v),
            Err(e) => {
                eprintln!("berth: {e:#}");
                failed += 1;
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for v in &out {
            println!("{}", v.as_str().unwrap_or_default());
        }
    }
    Ok(if failed > 0 { 1 } else { 0 })
}

fn network(c: &Client, cmd: NetworkCmd) -> Result<i32> {
    match cmd {
        NetworkCmd::Create(a) => {
            let n = a.subnet.len().max(a.gateway.len()).max(a.ip_range.len());
            let mut config: Vec<Value> = (0..n)
                .map(|i| {
                    json!({
                        "Subnet": a.subnet.get(i).cloned().unwrap_or_default(),
                        "Gateway": a.gateway.get(i).cloned().unwrap_or_default(),
                        "IPRange": a.ip_range.get(i).cloned().unwrap_or_default(),
                    })
                })
                .collect();
            if !a.aux_address.is_empty() {
                let aux: serde_json::Map<String, Value> = a
                    .aux_address
                    .iter()
                    .map(|s| key_value("--aux-address", s).map(|(k, v)| (k, json!(v))))
                    .collect::<Result<_>>()?;
                if config.is_empty() {
                    config.push(json!({}));
                }
                config[0]["AuxiliaryAddresses"] = Value::Object(aux);
            }
            let opts: serde_json::Map<String, Value> = a
                .opt
                .iter()
                .map(|s| key_value("option", s).map(|(k, v)| (k, json!(v))))
                .collect::<Result<_>>()?;
            let labels: serde_json::Map<String, Value> = a
                .label
                .iter()
                .map(|s| key_value("label", s).map(|(k, v)| (k, json!(v))))
                .collect::<Result<_>>()?;
            let body = json!({
                "Name": a.name,
                "Driver": a.driver,
                "EnableIPv6": a.ipv6,
                "Internal": a.internal,
                "Attachable": a.attachable,
                "IPAM": { "Driver": "default", "Config": config },
                "Options": opts,
                "Labels": labels,
            });
            let r = c.call("POST", "/networks/create", Some(&body))?;
            println!("{}", r["Id"].as_str().unwrap_or_default());
            Ok(0)
        }
        NetworkCmd::Ls {
            quiet,
            filters,
            format,
            no_trunc,
        } => {
            let mut f: serde_json::Map<String, Value> = serde_json::Map::new();
            for s in &filters {
                let (k, v) = key_value("filter", s)?;
                if let Some(a) = f.entry(k).or_insert_with(|| json!([])).as_array_mut() {
                    a.push(json!(v));
                }
            }
            let q = if f.is_empty() {
                String::new()
            } else {
                format!("?filters={}", enc(&Value::Object(f).to_string()))
            };
            let list = c.call("GET", &format!("/networks{q}"), None)?;
            output::networks(&list, quiet, &format, no_trunc)?;
            Ok(0)
        }
        NetworkCmd::Inspect { networks } => each(
            &networks,
            |k| c.call("GET", &format!("/networks/{}", enc(k)), None),
            true,
        ),
        NetworkCmd::Rm { networks } => each(
            &networks,
            |k| {
                c.call("DELETE", &format!("/networks/{}", enc(k)), None)
                    .map(|_| json!(k))
            },
            false,
        ),
        NetworkCmd::Prune { force } => {
            use std::io::IsTerminal;
            if !force && std::io::stdin().is_terminal() {
                eprint!(
                    "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] "
                );
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    return Ok(0);
                }
            }
            let r = c.call("POST", "/networks/prune", None)?;
            let deleted = r["NetworksDeleted"].as_array().cloned().unwrap_or_default();
            if !deleted.is_empty() {
                println!("Deleted Networks:");
                for d in deleted {
                    println!("{}", d.as_str().unwrap_or_default());
                }
            }
            Ok(0)
        }
        NetworkCmd::Connect {
            ip,
            ip6,
            alias,
            network,
            container,
        } => {
            let body = json!({
                "Container": container,
                "EndpointConfig": {
                    "IPAMConfig": { "IPv4Address": ip.unwrap_or_default(), "IPv6Address": ip6.unwrap_or_default() },
                    "Aliases": alias,
                },
            });
            c.call(
                "POST",
                &format!("/networks/{}/connect", enc(&network)),
                Some(&body),
            )?;
            Ok(0)
        }
        NetworkCmd::Check { network } => {
            let r = c.call("POST", &format!("/networks/{}/check", enc(&network)), None)?;
            let mut failed = 0;
            for item in r.as_array().into_iter().flatten() {
                let name = item["Container"].as_str().unwrap_or_default();
                if item["Ok"] == json!(true) {
                    println!("{name}: OK");
                } else {
                    failed += 1;
                    println!("{name}: {}", item["Error"].as_str().unwrap_or_default());
                }
            }
            Ok(if failed > 0 { 1 } else { 0 })
        }
        NetworkCmd::Disconnect {
            force,
            network,
            container,
        } => {
            let body = json!({ "Container": container, "Force": force });
            c.call(
                "POST",
                &format!("/networks/{}/disconnect", enc(&network)),
                Some(&body),
            )?;
            Ok(0)
        }
    }
}

fn run_container(host: Option<&str>, a: RunArgs) -> Result<i32> {
    let _ = (a.interactive, a.tty);
    let c = connect(host)?;
    let body = json!({
        "Name": a.name.unwrap_or_default(),
        "Hostname": a.hostname.unwrap_or_default(),
        "Cmd": a.command,
        "Network": a.network.unwrap_or_default(),
        "IPv4Address": a.ip.unwrap_or_default(),
        "IPv6Address": a.ip6.unwrap_or_default(),
        "AutoRemove": a.rm,
        "Domainname": a.domainname.unwrap_or_default(),
        "Dns": a.dns,
        "DnsSearch": a.dns_search,
        "DnsOptions": a.dns_option,
        "ExtraHosts": a.add_host,
        "Links": a.link,
        "Aliases": a.network_alias,
        "Ports": a.publish,
        "PublishAll": a.publish_all,
        "Expose": a.expose,
    });
    let spec: run::Spec = serde_json::from_value(c.call("POST", "/containers/create", Some(&body))?)
        .context("decoding the daemon's answer")?;
    if a.detach {
        let host = format!("unix://{}", c.socket().display());
        run::detached(&host, &spec, &a.command)?;
        println!("{}", spec.id);
        Ok(0)
    } else {
        run::foreground(&c, &spec, &a.command)
    }
}
