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
use berth_api::{
    ContainerCreateRequest, ContainerInspect, ContainerSummary, EndpointIpamConfig, EndpointSettings,
    Filters, Ipam, IpamConfig, Network, NetworkCheck, NetworkConnectRequest, NetworkCreateRequest,
    NetworkCreateResponse, NetworkDisconnectRequest, NetworkPruneResponse, PluginInfo, SystemInfo,
    SystemVersion,
};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::client::{Client, NO_BODY, connect};

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
    /// Show the client's and the daemon's versions and the API version.
    Version,
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
        /// Filter: driver=X, name=X, id=X, label=KEY[=VALUE], type=custom|builtin,
        /// dangling=true|false, scope=local|global.
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
        /// Filter: label=KEY[=VALUE] or label!=KEY[=VALUE].
        #[arg(long = "filter", value_name = "KEY=VALUE")]
        filters: Vec<String>,
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
            let info: ContainerInspect = c.get(&format!("/containers/{}/json", enc(&args.container)))?;
            if !info.state.running {
                bail!("container {} is not running", args.container);
            }
            let mut cmd = std::process::Command::new(&args.command[0]);
            cmd.args(&args.command[1..]);
            run::enter_process(&mut cmd, info.state.pid)?;
            let mut child = cmd.spawn().with_context(|| {
                format!("cannot run {:?} in container {}", args.command[0], args.container)
            })?;
            Ok(run::exit_code(run::wait_forwarding(&mut child)?))
        }
        Cmd::Ps { all, quiet } => {
            let list: Vec<ContainerSummary> =
                connect(host)?.get(&format!("/containers/json?all={}", u8::from(all)))?;
            output::ps(&list, quiet);
            Ok(0)
        }
        Cmd::Inspect { containers } => {
            let c = connect(host)?;
            let (out, failed) = each(&containers, |k| {
                c.get::<ContainerInspect>(&format!("/containers/{}/json", enc(k)))
            });
            print_json(&out)?;
            Ok(failed)
        }
        Cmd::Rm { force, containers } => {
            let c = connect(host)?;
            let (out, failed) = each(&containers, |k| {
                c.call(
                    "DELETE",
                    &format!("/containers/{}?force={}", enc(k), u8::from(force)),
                    NO_BODY,
                )
                .map(|()| k.to_owned())
            });
            print_lines(&out);
            Ok(failed)
        }
        Cmd::Port {
            container,
            private_port,
        } => {
            let info: ContainerInspect =
                connect(host)?.get(&format!("/containers/{}/json", enc(&container)))?;
            output::ports(&info.network_settings.ports, private_port.as_deref())
        }
        Cmd::System(SystemCmd::Reconcile) => {
            connect(host)?.call("POST", "/system/reconcile", NO_BODY)?;
            Ok(0)
        }
        Cmd::Logs { container } => {
            let body = connect(host)?.get_bytes(&format!("/containers/{}/logs", enc(&container)))?;
            use std::io::Write;
            std::io::stdout().write_all(&body)?;
            Ok(0)
        }
        Cmd::Plugin(PluginCmd::Ls { format }) => {
            let list: Vec<PluginInfo> = connect(host)?.get("/plugins")?;
            output::plugins(&list, &format)?;
            Ok(0)
        }
        Cmd::Plugin(PluginCmd::Reload) => {
            let list: Vec<PluginInfo> = connect(host)?.fetch("POST", "/plugins/reload", NO_BODY)?;
            output::plugins(&list, "table")?;
            Ok(0)
        }
        Cmd::Info => {
            let info: SystemInfo = connect(host)?.get("/info")?;
            output::info(&info);
            Ok(0)
        }
        Cmd::Version => {
            output::version_client();
            let v: SystemVersion = connect(host)?.get("/version")?;
            output::version_server(&v);
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

/// Runs `f` on each key and prints an error line for each failure; returns
/// what succeeded, and the exit code (1 when any failed).
fn each<T>(keys: &[String], f: impl Fn(&str) -> Result<T>) -> (Vec<T>, i32) {
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
    (out, if failed > 0 { 1 } else { 0 })
}

/// Docker's question before a prune: `warning`, then `Are you sure you
/// want to continue? [y/N] ` on stdout, and one line read from stdin,
/// whether it is a terminal or not. Only `y` or `Y` is a yes; anything
/// else is a no: end of input, bytes that are not text, a standard input
/// that cannot be read (closed) included.
fn confirm(warning: &str) -> Result<bool> {
    use std::io::{BufRead, Write};
    let mut out = std::io::stdout().lock();
    write!(out, "{warning}\nAre you sure you want to continue? [y/N] ")?;
    out.flush()?;
    let mut answer = Vec::new();
    if std::io::stdin().lock().read_until(b'\n', &mut answer).is_err() {
        answer.clear();
    }
    let yes = matches!(answer.trim_ascii(), b"y" | b"Y");
    if answer.last() != Some(&b'\n') {
        // End of input: end the prompt's line, as a terminal's Enter would.
        writeln!(out)?;
    }
    Ok(yes)
}

/// A JSON array, as `inspect` prints it.
fn print_json<T: Serialize>(out: &[T]) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(out)?);
    Ok(())
}

/// One line each.
fn print_lines(out: &[String]) {
    for v in out {
        println!("{v}");
    }
}

fn filters(args: &[String]) -> Result<Filters> {
    let mut f = Filters::new();
    for s in args {
        let (k, v) = key_value("filter", s)?;
        f.add(k, v);
    }
    Ok(f)
}

/// `?filters=…` for a request, or nothing.
fn filters_query(f: &Filters) -> Result<String> {
    Ok(if f.is_empty() {
        String::new()
    } else {
        format!("?filters={}", enc(&serde_json::to_string(f)?))
    })
}

fn network(c: &Client, cmd: NetworkCmd) -> Result<i32> {
    match cmd {
        NetworkCmd::Create(a) => {
            let n = a.subnet.len().max(a.gateway.len()).max(a.ip_range.len());
            let mut config: Vec<IpamConfig> = (0..n)
                .map(|i| IpamConfig {
                    subnet: a.subnet.get(i).cloned().unwrap_or_default(),
                    gateway: a.gateway.get(i).cloned().unwrap_or_default(),
                    ip_range: a.ip_range.get(i).cloned().unwrap_or_default(),
                    ..Default::default()
                })
                .collect();
            if !a.aux_address.is_empty() {
                let aux = a
                    .aux_address
                    .iter()
                    .map(|s| key_value("--aux-address", s))
                    .collect::<Result<_>>()?;
                if config.is_empty() {
                    config.push(IpamConfig::default());
                }
                config[0].auxiliary_addresses = aux;
            }
            let body = NetworkCreateRequest {
                name: a.name,
                driver: a.driver,
                enable_ipv6: a.ipv6,
                internal: a.internal,
                attachable: a.attachable,
                ipam: Ipam {
                    driver: "default".into(),
                    config,
                    ..Default::default()
                },
                options: a
                    .opt
                    .iter()
                    .map(|s| key_value("option", s))
                    .collect::<Result<_>>()?,
                labels: a
                    .label
                    .iter()
                    .map(|s| key_value("label", s))
                    .collect::<Result<_>>()?,
                ..Default::default()
            };
            let r: NetworkCreateResponse = c.fetch("POST", "/networks/create", Some(&body))?;
            println!("{}", r.id);
            Ok(0)
        }
        NetworkCmd::Ls {
            quiet,
            filters: f,
            format,
            no_trunc,
        } => {
            let q = filters_query(&filters(&f)?)?;
            let list: Vec<Network> = c.get(&format!("/networks{q}"))?;
            output::networks(&list, quiet, &format, no_trunc)?;
            Ok(0)
        }
        NetworkCmd::Inspect { networks } => {
            let (out, failed) = each(&networks, |k| c.get::<Network>(&format!("/networks/{}", enc(k))));
            print_json(&out)?;
            Ok(failed)
        }
        NetworkCmd::Rm { networks } => {
            let (out, failed) = each(&networks, |k| {
                c.call("DELETE", &format!("/networks/{}", enc(k)), NO_BODY)
                    .map(|()| k.to_owned())
            });
            print_lines(&out);
            Ok(failed)
        }
        NetworkCmd::Prune { force, filters: f } => {
            let q = filters_query(&filters(&f)?)?;
            if !force
                && !confirm(
                    "WARNING! This will remove all custom networks not used by at least one container.",
                )?
            {
                return Ok(0);
            }
            let r: NetworkPruneResponse = c.fetch("POST", &format!("/networks/prune{q}"), NO_BODY)?;
            if !r.networks_deleted.is_empty() {
                println!("Deleted Networks:");
                print_lines(&r.networks_deleted);
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
            let body = NetworkConnectRequest {
                container,
                endpoint_config: EndpointSettings {
                    ipam_config: Some(EndpointIpamConfig {
                        ipv4_address: ip.unwrap_or_default(),
                        ipv6_address: ip6.unwrap_or_default(),
                        ..Default::default()
                    }),
                    aliases: alias,
                    ..Default::default()
                },
            };
            c.call(
                "POST",
                &format!("/networks/{}/connect", enc(&network)),
                Some(&body),
            )?;
            Ok(0)
        }
        NetworkCmd::Check { network } => {
            let r: Vec<NetworkCheck> =
                c.fetch("POST", &format!("/networks/{}/check", enc(&network)), NO_BODY)?;
            Ok(output::checks(&r))
        }
        NetworkCmd::Disconnect {
            force,
            network,
            container,
        } => {
            let body = NetworkDisconnectRequest { container, force };
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
    let body = ContainerCreateRequest {
        name: a.name.unwrap_or_default(),
        hostname: a.hostname.unwrap_or_default(),
        cmd: a.command.clone(),
        network: a.network.unwrap_or_default(),
        ipv4: a.ip.unwrap_or_default(),
        ipv6: a.ip6.unwrap_or_default(),
        auto_remove: a.rm,
        domainname: a.domainname.unwrap_or_default(),
        dns: a.dns,
        dns_search: a.dns_search,
        dns_options: a.dns_option,
        extra_hosts: a.add_host,
        links: a.link,
        aliases: a.network_alias,
        ports: a.publish,
        publish_all: a.publish_all,
        expose: a.expose,
        image: String::new(),
    };
    let spec: run::Spec = c.fetch("POST", "/containers/create", Some(&body))?;
    if a.detach {
        let host = format!("unix://{}", c.socket().display());
        run::detached(&host, &spec, &a.command)?;
        println!("{}", spec.id);
        Ok(0)
    } else {
        run::foreground(&c, &spec, &a.command)
    }
}
