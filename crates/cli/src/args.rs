//! The command line: every command's flags (clap), and the parsing that
//! happens before the daemon is asked anything: `KEY=VALUE` options and
//! labels, filters, `-H`, `--default-address-pool`. Pure: it needs only
//! std, clap, anyhow, serde_json, ipnet and berth-api, so that the fuzz
//! target `cli_args` compiles it on its own (`#[path]`).

use std::path::PathBuf;

use anyhow::{Result, bail};
use berth_api::{Filters, Ipam, IpamConfig, NetworkCreateRequest};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "Docker's network modes for containers, without Docker",
    after_help = "Every command takes -H unix:///PATH, the daemon's socket: by default $BERTH_HOST, \
                  else unix://$BERTH_EXEC_ROOT/berth.sock, else unix:///run/berth/berth.sock."
)]
pub(crate) struct Cli {
    /// The daemon's socket, unix:///PATH (its default: `berth --help`).
    #[arg(
        short = 'H',
        long = "host",
        env = "BERTH_HOST",
        hide_env = true,
        global = true
    )]
    pub(crate) host: Option<String>,
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
    /// Run the berth engine.
    Daemon(DaemonArgs),
    /// Manage networks.
    #[command(subcommand)]
    Network(NetworkCmd),
    /// Run a command in a new container.
    Run(RunArgs),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// List containers.
    Ps(PsArgs),
    /// Show containers, or else networks, in detail, as JSON.
    Inspect {
        /// Format the output with a Go template (`json` is the default).
        #[arg(short, long)]
        format: Option<String>,
        /// Only look for objects of this type: container or network.
        #[arg(long = "type", value_name = "TYPE", value_parser = ["container", "network"])]
        kind: Option<String>,
        /// Containers or networks (name or id).
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
    /// Containers' lifecycle: stop, start, restart, kill, wait, logs.
    #[command(flatten)]
    Life(LifeCmd),
    /// Manage containers (`container ls`, and the lifecycle commands).
    #[command(subcommand)]
    Container(ContainerCmd),
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

/// The commands that `berth X` and `berth container X` both have.
#[derive(Subcommand)]
pub(crate) enum LifeCmd {
    /// Stop containers: SIGTERM, then SIGKILL after the timeout.
    Stop {
        /// Seconds to wait before killing.
        #[arg(short = 't', long = "time", alias = "timeout", default_value_t = 10)]
        time: i64,
        /// Containers (name or id).
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Start stopped containers: the same command, detached, on the same
    /// networks.
    Start {
        /// Containers (name or id).
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stop and start containers.
    Restart {
        /// Seconds to wait before killing.
        #[arg(short = 't', long = "time", alias = "timeout", default_value_t = 10)]
        time: i64,
        /// Containers (name or id).
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Send a signal to containers' processes.
    Kill {
        /// The signal: a name, with or without SIG, or a number.
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        /// Containers (name or id).
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Wait until containers stop and print their exit codes.
    Wait {
        /// Containers (name or id).
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Show what a container printed.
    Logs {
        /// Go on printing until the container stops.
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines (or `all`).
        #[arg(short = 'n', long, default_value = "all")]
        tail: String,
        /// Each line after its time (RFC 3339 with nanoseconds).
        #[arg(short, long)]
        timestamps: bool,
        /// Container (name or id).
        container: String,
    },
}

/// The flags of `berth ps` and `berth container ls`.
#[derive(clap::Args)]
pub(crate) struct PsArgs {
    /// Show all containers, exited ones too.
    #[arg(short, long)]
    pub(crate) all: bool,
    /// Only show ids.
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// Filter: id=X, name=X, network=X, status=created|running|exited,
    /// label=KEY[=VALUE] (values of one key are alternatives, different
    /// keys must all match).
    #[arg(short, long = "filter", value_name = "KEY=VALUE")]
    pub(crate) filters: Vec<String>,
    /// table, json, a Go template, or `table TEMPLATE`.
    #[arg(long, default_value = "table")]
    pub(crate) format: String,
    /// Show full ids and commands.
    #[arg(long)]
    pub(crate) no_trunc: bool,
}

/// `berth container ...`, as Docker's.
#[derive(Subcommand)]
pub(crate) enum ContainerCmd {
    /// List containers (as `berth ps`).
    #[command(alias = "ps", alias = "list")]
    Ls(PsArgs),
    /// The lifecycle commands.
    #[command(flatten)]
    Life(LifeCmd),
}

#[derive(Subcommand)]
pub(crate) enum NetworkCmd {
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
        /// table, json, a Go template, or `table TEMPLATE`.
        #[arg(long, default_value = "table")]
        format: String,
        /// Show full ids.
        #[arg(long)]
        no_trunc: bool,
    },
    /// Show networks in detail, as JSON.
    Inspect {
        /// Format the output with a Go template (`json` is the default).
        #[arg(short, long)]
        format: Option<String>,
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
        /// The MAC address of the container's interface on this network (unicast).
        #[arg(long = "mac-address", value_name = "MAC")]
        mac_address: Option<String>,
        /// Network.
        network: String,
        /// Container.
        container: String,
    },
    /// For cni networks: check that every container is still wired as its
    /// plugins left it (CNI's CHECK): one line per container, exit 1 if any
    /// failed. Other drivers have no check and refuse.
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
pub(crate) enum SystemCmd {
    /// Re-install berth's firewall table with every network's and port's
    /// elements (after someone flushed nftables); other tables are left
    /// alone. The daemon does the same on SIGHUP.
    Reconcile,
}

#[derive(Subcommand)]
pub(crate) enum PluginCmd {
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
pub(crate) struct CreateArgs {
    /// Driver: one of the list below.
    #[arg(short, long, default_value = "bridge")]
    pub(crate) driver: String,
    /// Subnet in CIDR notation (repeatable).
    #[arg(long)]
    pub(crate) subnet: Vec<String>,
    /// Gateway for a subnet (repeatable).
    #[arg(long)]
    pub(crate) gateway: Vec<String>,
    /// Allocate container addresses from this sub-range (repeatable).
    #[arg(long = "ip-range")]
    pub(crate) ip_range: Vec<String>,
    /// Reserve an address: NAME=IP (repeatable).
    #[arg(long = "aux-address", value_name = "NAME=IP")]
    pub(crate) aux_address: Vec<String>,
    /// Enable IPv6.
    #[arg(long)]
    pub(crate) ipv6: bool,
    /// No traffic leaves the network.
    #[arg(long)]
    pub(crate) internal: bool,
    /// Mark the network attachable, as Docker's swarm overlays: recorded and shown by inspect;
    /// any berth network takes containers by hand (run --network, network connect) without it.
    #[arg(long)]
    pub(crate) attachable: bool,
    /// Driver option KEY=VALUE (repeatable).
    #[arg(short, long = "opt", value_name = "KEY=VALUE")]
    pub(crate) opt: Vec<String>,
    /// Label KEY=VALUE (repeatable).
    #[arg(long)]
    pub(crate) label: Vec<String>,
    /// Network name.
    pub(crate) name: String,
}

#[derive(Args)]
#[command(disable_help_flag = true)]
pub(crate) struct RunArgs {
    /// Run in the background and print the container's id.
    #[arg(short, long)]
    pub(crate) detach: bool,
    /// Remove the container when its command ends.
    #[arg(long)]
    pub(crate) rm: bool,
    /// Container name.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Network (default: bridge).
    #[arg(long, alias = "net")]
    pub(crate) network: Option<String>,
    /// IPv4 address on a user-defined network.
    #[arg(long)]
    pub(crate) ip: Option<String>,
    /// IPv6 address on a user-defined network.
    #[arg(long)]
    pub(crate) ip6: Option<String>,
    /// Hostname inside the container.
    #[arg(short = 'h', long)]
    pub(crate) hostname: Option<String>,
    /// Domain name inside the container.
    #[arg(long)]
    pub(crate) domainname: Option<String>,
    /// DNS server for the container (repeatable).
    #[arg(long, value_name = "IP")]
    pub(crate) dns: Vec<String>,
    /// DNS search domain (repeatable; "." for none).
    #[arg(long = "dns-search", value_name = "DOMAIN")]
    pub(crate) dns_search: Vec<String>,
    /// resolv.conf option (repeatable).
    #[arg(long = "dns-option", value_name = "OPT")]
    pub(crate) dns_option: Vec<String>,
    /// Add a line to /etc/hosts: NAME:IP or NAME:host-gateway (repeatable).
    #[arg(long = "add-host", value_name = "NAME:IP")]
    pub(crate) add_host: Vec<String>,
    /// Legacy link to another container: NAME[:ALIAS] (repeatable).
    #[arg(long, value_name = "NAME[:ALIAS]")]
    pub(crate) link: Vec<String>,
    /// Extra name on the network (repeatable; user-defined networks only).
    #[arg(long = "network-alias", alias = "net-alias", value_name = "ALIAS")]
    pub(crate) network_alias: Vec<String>,
    /// Publish a port: [HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/tcp|udp|sctp]
    /// (repeatable; bridge networks only).
    #[arg(short = 'p', long = "publish", value_name = "SPEC")]
    pub(crate) publish: Vec<String>,
    /// Publish every --expose'd port on a free ephemeral host port.
    #[arg(short = 'P', long = "publish-all")]
    pub(crate) publish_all: bool,
    /// Declare a port the container listens on: PORT[-END][/PROTO] (repeatable; see -P).
    #[arg(long, value_name = "PORT")]
    pub(crate) expose: Vec<String>,
    /// The MAC address of the container's interface on its network (unicast).
    #[arg(long = "mac-address", value_name = "MAC")]
    pub(crate) mac_address: Option<String>,
    #[command(flatten)]
    pub(crate) process: ProcessArgs,
    /// Accepted for Docker compatibility; the terminal is always passed on.
    #[arg(short = 'i', long)]
    pub(crate) interactive: bool,
    /// Accepted for Docker compatibility; the terminal is always passed on.
    #[arg(short = 't', long)]
    pub(crate) tty: bool,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub(crate) help: Option<bool>,
    /// The command and its arguments (options come before it, as in Docker).
    #[arg(required = true, trailing_var_arg = true)]
    pub(crate) command: Vec<String>,
}

/// What `run` and `exec` set for the command's process: environment,
/// working directory and user, as Docker's flags of the same names.
#[derive(Args)]
pub(crate) struct ProcessArgs {
    /// Set an environment variable: KEY=VALUE, or KEY alone to pass on the client's (repeatable).
    #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]")]
    pub(crate) env: Vec<String>,
    /// Read environment variables from a file: KEY=VALUE or KEY lines, # comments (repeatable).
    #[arg(long = "env-file", value_name = "FILE")]
    pub(crate) env_file: Vec<PathBuf>,
    /// The command's working directory.
    #[arg(short = 'w', long, value_name = "DIR")]
    pub(crate) workdir: Option<PathBuf>,
    /// Run the command as USER[:GROUP] (names or numeric ids, resolved on the host).
    #[arg(short = 'u', long, value_name = "USER[:GROUP]")]
    pub(crate) user: Option<String>,
}

#[derive(Args)]
pub(crate) struct ExecArgs {
    /// Accepted for Docker compatibility.
    #[arg(short = 'i', long)]
    pub(crate) interactive: bool,
    /// Accepted for Docker compatibility.
    #[arg(short = 't', long)]
    pub(crate) tty: bool,
    #[command(flatten)]
    pub(crate) process: ProcessArgs,
    /// Container.
    pub(crate) container: String,
    /// The command and its arguments (options come before it, as in Docker).
    #[arg(required = true, trailing_var_arg = true)]
    pub(crate) command: Vec<String>,
}

/// Options of `berth daemon`.
#[derive(Args)]
pub(crate) struct DaemonArgs {
    /// Persistent state: the store, container logs [default: $BERTH_DATA_ROOT or /var/lib/berth].
    #[arg(long)]
    pub(crate) data_root: Option<PathBuf>,
    /// Runtime state: pinned namespaces, generated files, the socket [default: $BERTH_EXEC_ROOT or /run/berth].
    #[arg(long)]
    pub(crate) exec_root: Option<PathBuf>,
    /// The host's resolv.conf (default: /etc/resolv.conf, or systemd-resolved's upstream list when
    /// /etc/resolv.conf only names its local stub).
    #[arg(long)]
    pub(crate) resolv_conf: Option<PathBuf>,
    /// Directory of shared-library network plugins (repeatable)
    /// [default: /usr/lib/berth/plugins and /etc/berth/plugins].
    #[arg(long = "plugin-dir", value_name = "DIR")]
    pub(crate) plugin_dir: Vec<PathBuf>,
    /// Directory of Docker network plugin sockets (repeatable) [default: /run/docker/plugins].
    #[arg(long = "docker-plugin-dir", value_name = "DIR")]
    pub(crate) docker_plugin_dir: Vec<PathBuf>,
    /// Directory of Docker plugin .spec and .json files (repeatable)
    /// [default: /etc/docker/plugins and /usr/lib/docker/plugins].
    #[arg(long = "docker-plugin-spec-dir", value_name = "DIR")]
    pub(crate) docker_plugin_spec_dir: Vec<PathBuf>,
    /// Directory of CNI network configuration lists.
    #[arg(long = "cni-config-dir", default_value = "/etc/cni/net.d")]
    pub(crate) cni_config_dir: PathBuf,
    /// Where CNI plugin programs are, `:`-separated.
    #[arg(long = "cni-path", default_value = "/opt/cni/bin:/usr/lib/cni")]
    pub(crate) cni_path: String,
    /// The cluster store for global (overlay) networks: etcd://HOST:PORT[,HOST:PORT...].
    #[arg(long, value_name = "URL")]
    pub(crate) cluster_store: Option<String>,
    /// Options of the cluster store, KEY=VALUE[,KEY=VALUE...] (repeatable): cacert=PATH,cert=PATH,
    /// key=PATH for TLS (or Docker's kv.cacertfile, kv.certfile, kv.keyfile), prefix=/berth/v1,
    /// lease-ttl=SECONDS (default 10: how soon the others forget this host once it is gone).
    #[arg(long = "cluster-store-opt", value_name = "KEY=VALUE")]
    pub(crate) cluster_store_opt: Vec<String>,
    /// This host's tunnel endpoint in the cluster: one of its addresses, or an interface that has
    /// one (needed with --cluster-store).
    #[arg(long, alias = "cluster-advertise", value_name = "IP|INTERFACE")]
    pub(crate) advertise_addr: Option<String>,
    /// The group that may use the API besides root: the socket is 0660 and belongs to it (a group
    /// name or a numeric gid) [default: berth when that group exists, else root's group only].
    #[arg(short = 'G', long, value_name = "GROUP")]
    pub(crate) group: Option<String>,
    /// Start even if the store is damaged: keep every record that can still be read, rebuild
    /// lost bridge networks from their bridges, set the damaged file aside
    /// (berth.redb.corrupt-<unix time>) and log what was kept, rebuilt and lost.
    #[arg(long)]
    pub(crate) recover_store: bool,
    /// A pool that networks created without --subnet take their IPv4 subnets from, as dockerd's
    /// flag: base=CIDR,size=N (repeatable, in order; replaces the default pools 172.17-31.0.0/16
    /// and 192.168.0-240.0/20).
    #[arg(long = "default-address-pool", value_name = "base=CIDR,size=N")]
    pub(crate) default_address_pool: Vec<String>,
    /// br_netfilter's sysctls in the daemon's namespace (bridge-nf-call-iptables, -ip6tables,
    /// -arptables): auto turns them off (bridged frames skip the IP hooks, about 7% of a bridge's
    /// throughput; icc off holds by bridge port isolation) unless a bridge berth did
    /// not make is there (docker0, cni0, virbr0), off turns them off anyway, keep leaves them.
    #[arg(long = "bridge-nf-call", value_name = "auto|off|keep", default_value = "auto", value_parser = bridge_nf_call)]
    pub(crate) bridge_nf_call: berth_engine::BridgeNfCall,
    /// Serve berth's drivers to a dockerd as Docker network plugins: sockets berth-DRIVER.sock
    /// (bridge, macvlan, ipvlan, overlay, loaded plugins; `docker network create -d berth-bridge`)
    /// and the IPAM plugin berth.sock (`--ipam-driver berth`) in DIR, removed when the daemon
    /// stops [DIR default: /run/docker/plugins].
    #[arg(
        long,
        value_name = "DIR",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = berth_engine::serve_docker::DEFAULT_DIR
    )]
    pub(crate) serve_docker: Option<PathBuf>,
    /// Log filter (error, warn, info, debug, trace).
    #[arg(long, default_value = "info")]
    pub(crate) log_level: String,
}

fn bridge_nf_call(s: &str) -> Result<berth_engine::BridgeNfCall, String> {
    use berth_engine::BridgeNfCall as B;
    match s {
        "auto" => Ok(B::Auto),
        "off" => Ok(B::Off),
        "keep" => Ok(B::Keep),
        _ => Err(format!("{s:?} is not one of auto, off, keep")),
    }
}

/// Parses berth's command line. For `run` and `exec`, a flag error is
/// Docker's exit code 125, and an unknown flag is one line that names it
/// (with what berth does instead, for Docker's flags it does not have):
/// options come before the command, so the flag is not taken for one.
///
/// `network create --help` ends with `drivers()`: the drivers one can
/// create networks with and their options, asked only when that help is.
pub(crate) fn parse(drivers: impl FnOnce() -> String) -> Cli {
    use clap::{CommandFactory, FromArgMatches};
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(cli) = run_alone(&argv) {
        return cli;
    }
    let mut cmd = Cli::command();
    if asks_create_help(&argv[1..]) {
        let text = drivers();
        cmd = cmd.mut_subcommand("network", |n| n.mut_subcommand("create", |c| c.after_help(text)));
    }
    let e = match cmd
        .try_get_matches_from(&argv)
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(cli) => return cli,
        Err(e) => e,
    };
    let Some(sub) = subcommand(&argv[1..]) else {
        e.exit()
    };
    if !e.use_stderr() {
        e.exit()
    }
    if let Some(line) = unknown_flag(&e, sub) {
        eprintln!("berth: {line}");
    } else {
        let _ = e.print();
    }
    std::process::exit(125)
}

/// `berth run …` parsed on a command tree that has `run` alone, which a
/// new container's client builds in a fraction of the whole tree's time
/// (the whole tree is most of what the client does before it asks the
/// daemon). Only a clean parse is taken: help, a version, any error, or
/// another command is `None`, and the whole tree parses it again, so that
/// what the user reads is the same either way.
fn run_alone(argv: &[std::ffi::OsString]) -> Option<Cli> {
    use clap::{Arg, Command, FromArgMatches};
    if subcommand(argv.get(1..)?) != Some("run") {
        return None;
    }
    let tree = Command::new("berth")
        .arg(
            Arg::new("host")
                .short('H')
                .long("host")
                .env("BERTH_HOST")
                .global(true),
        )
        .subcommand(RunArgs::augment_args(Command::new("run")));
    let m = tree.try_get_matches_from(argv).ok()?;
    let ("run", sub) = m.subcommand()? else {
        return None;
    };
    Some(Cli {
        host: m.get_one::<String>("host").cloned(),
        cmd: Cmd::Run(RunArgs::from_arg_matches(sub).ok()?),
    })
}

/// The command line asks for `network create`'s help (`-h`, `--help`, or
/// `help network create`).
fn asks_create_help(args: &[std::ffi::OsString]) -> bool {
    let mut words = Vec::new();
    let mut help = false;
    let mut it = args.iter().map(|a| a.to_str().unwrap_or(""));
    while let Some(a) = it.next() {
        match a {
            "-H" | "--host" => {
                it.next();
            }
            "-h" | "--help" => help = true,
            _ if a.starts_with('-') => {}
            _ => words.push(a),
        }
    }
    match words.as_slice() {
        ["help", "network", "create", ..] => true,
        ["network", "create", ..] => help,
        _ => false,
    }
}

/// `run` or `exec` when that is the command (after the global `-H`).
fn subcommand(args: &[std::ffi::OsString]) -> Option<&'static str> {
    let mut it = args.iter().map(|a| a.to_str().unwrap_or(""));
    while let Some(a) = it.next() {
        match a {
            "-H" | "--host" => {
                it.next();
            }
            _ if a.starts_with("--host=") || (a.starts_with("-H") && a.len() > 2) => {}
            "run" => return Some("run"),
            "exec" => return Some("exec"),
            _ => return None,
        }
    }
    None
}

/// The line for an unknown flag of `run` or `exec`, if that is the error.
fn unknown_flag(e: &clap::Error, sub: &str) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(flag)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let name = flag.split_once('=').map_or(flag.as_str(), |(n, _)| n);
    let why = match name {
        "-v" | "--volume" | "--mount" | "--volumes-from" | "--tmpfs" | "--read-only" => {
            "berth runs host commands and has no images or volumes"
        }
        "--entrypoint" | "--pull" | "--platform" => "berth runs host commands and has no images",
        "--privileged" | "--cap-add" | "--cap-drop" | "--security-opt" | "--device" => {
            "berth isolates the network, not privileges: the command runs with berth's own"
        }
        "--restart" => "berth does not restart containers",
        "--cpus" | "-c" | "--cpu-shares" | "--cpuset-cpus" | "-m" | "--memory" | "--memory-swap"
        | "--pids-limit" | "--ulimit" => "berth sets no resource limits",
        _ => {
            return Some(format!(
                "unknown flag {name} for {sub}: options come before the command; see `berth {sub} --help`"
            ));
        }
    };
    Some(format!("unknown flag {name} for {sub}: {why}"))
}

/// The environment `-e` and `--env-file` give, as Docker reads them: the
/// files first, then `-e`; `KEY=VALUE` (the value as written, quotes and
/// all) or `KEY` alone, which takes the value `lookup` gives and is left
/// out when it gives none; in a file, blank lines and `#` comments are
/// skipped.
pub(crate) fn environment(
    files: &[PathBuf],
    env: &[String],
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut one = |what: &str, s: &str| -> Result<()> {
        let (k, v) = match s.split_once('=') {
            Some((k, v)) => (k, Some(v.to_owned())),
            None => (s, None),
        };
        if k.is_empty() || k.contains(char::is_whitespace) || k.contains('\0') {
            bail!("invalid {what} {s:?} (accepted: KEY=VALUE or KEY, KEY without spaces)");
        }
        if let Some(v) = v.or_else(|| lookup(k)) {
            out.push((k.to_owned(), v));
        }
        Ok(())
    };
    for f in files {
        let text =
            std::fs::read(f).map_err(|e| anyhow::anyhow!("reading --env-file {}: {e}", f.display()))?;
        let Ok(text) = String::from_utf8(text) else {
            bail!("reading --env-file {}: it is not UTF-8 text", f.display());
        };
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            one(&format!("variable on line {} of {}", n + 1, f.display()), line)?;
        }
    }
    for s in env {
        one("--env", s)?;
    }
    Ok(out)
}

/// Splits `KEY=VALUE` (the value may be empty or hold more `=`); `what`
/// names the option in the error.
pub(crate) fn key_value(what: &str, s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => bail!("invalid {what} {s:?} (accepted: KEY=VALUE)"),
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters, for a
/// name or id in a request path or a query value.
pub(crate) fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The `--filter KEY=VALUE` options as Docker's filters.
pub(crate) fn filters(args: &[String]) -> Result<Filters> {
    let mut f = Filters::new();
    for s in args {
        let (k, v) = key_value("filter", s)?;
        f.add(k, v);
    }
    Ok(f)
}

/// `?filters=…` for a request, or nothing.
pub(crate) fn filters_query(f: &Filters) -> Result<String> {
    Ok(if f.is_empty() {
        String::new()
    } else {
        format!("?filters={}", enc(&serde_json::to_string(f)?))
    })
}

/// Turns `unix:///PATH` (or a bare path) into the socket's path.
pub(crate) fn socket_path(host: &str) -> Result<PathBuf> {
    if let Some(p) = host.strip_prefix("unix://") {
        if p.is_empty() {
            bail!("invalid host {host:?}: the unix socket path is empty (accepted: unix:///PATH)");
        }
        return Ok(PathBuf::from(p));
    }
    if host.starts_with('/') {
        return Ok(PathBuf::from(host));
    }
    bail!("invalid host {host:?} (accepted: unix:///PATH; berth listens on unix sockets only)")
}

/// Reads `--default-address-pool base=CIDR,size=N` as dockerd does (the
/// keys in any order). `pool` is the engine's `AddressPool::new`, passed
/// in so that this module needs no engine: `None` when `size` does not
/// fit the base.
pub(crate) fn address_pool<P>(value: &str, pool: impl FnOnce(ipnet::Ipv4Net, u8) -> Option<P>) -> Result<P> {
    let bad = |why: &str| anyhow::anyhow!("invalid --default-address-pool {value:?}: {why}");
    let (mut base, mut size) = (None, None);
    for part in value.split(',') {
        match part.split_once('=') {
            Some(("base", b)) => {
                base = Some(
                    b.parse::<ipnet::Ipv4Net>()
                        .map_err(|_| bad("base must be an IPv4 CIDR such as 10.10.0.0/16"))?,
                )
            }
            Some(("size", n)) => {
                size = Some(n.parse::<u8>().map_err(|_| bad("size must be a prefix length"))?)
            }
            _ => return Err(bad("accepted: base=CIDR,size=N")),
        }
    }
    let (Some(base), Some(size)) = (base, size) else {
        return Err(bad("accepted: base=CIDR,size=N"));
    };
    pool(base, size).ok_or_else(|| {
        bad(&format!(
            "size must be between the base's prefix length ({}) and 30",
            base.prefix_len()
        ))
    })
}

impl CreateArgs {
    /// The body of `POST /networks/create`: the i-th `--subnet`,
    /// `--gateway` and `--ip-range` make the i-th IPAM config, the
    /// `--aux-address`es go to the first.
    pub(crate) fn request(self) -> Result<NetworkCreateRequest> {
        let a = self;
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
        Ok(NetworkCreateRequest {
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
        })
    }
}

/// `--serve-docker[=DIR]`'s directory: `None` without the flag; an empty
/// DIR (`--serve-docker=`) is refused in one line.
pub(crate) fn serve_docker_dir(value: Option<&std::path::Path>) -> Result<Option<PathBuf>> {
    match value {
        None => Ok(None),
        Some(d) if d.as_os_str().is_empty() => {
            bail!("--serve-docker=DIR: an empty directory name (leave out =DIR for /run/docker/plugins)")
        }
        Some(d) => Ok(Some(d.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<std::ffi::OsString> {
        line.split(' ').map(Into::into).collect()
    }

    /// What a parse gave, as text: the host and every `run` flag and word.
    fn seen(cli: &Cli) -> String {
        let Cmd::Run(r) = &cli.cmd else {
            return "not run".into();
        };
        format!(
            "{:?} d={} rm={} name={:?} net={:?} ip={:?} h={:?} dns={:?} p={:?} P={} alias={:?} env={:?} \
             w={:?} u={:?} i={} t={} cmd={:?}",
            cli.host,
            r.detach,
            r.rm,
            r.name,
            r.network,
            r.ip,
            r.hostname,
            r.dns,
            r.publish,
            r.publish_all,
            r.network_alias,
            r.process.env,
            r.process.workdir,
            r.process.user,
            r.interactive,
            r.tty,
            r.command
        )
    }

    #[test]
    fn run_alone_parses_as_the_whole_tree_does() {
        use clap::{CommandFactory, FromArgMatches};
        for line in [
            "berth run -d --name c1 --network n -- sleep 1000",
            "berth -H unix:///x.sock run --rm -it --net=n --ip 10.1.0.5 -h web sh -c true",
            "berth run -H unix:///y.sock -p 8080:80 -P --network-alias a --network-alias b -e A=1 -w /tmp -u 0 sleep 1 -d",
            "berth --host=unix:///z.sock run --dns 10.0.0.1 --dns-search . busybox --name not-a-flag",
        ] {
            let fast = run_alone(&argv(line)).unwrap_or_else(|| panic!("{line}: not parsed alone"));
            let m = Cli::command().try_get_matches_from(argv(line)).unwrap();
            let whole = Cli::from_arg_matches(&m).unwrap();
            assert_eq!(seen(&fast), seen(&whole), "{line}");
        }
    }

    #[test]
    fn run_alone_leaves_help_errors_and_other_commands_to_the_whole_tree() {
        for line in [
            "berth run --help",
            "berth run -d",
            "berth run --volume /x:/y sleep 1",
            "berth run --ip",
            "berth -V run sleep 1",
            "berth ps",
            "berth network create n",
            "berth exec c1 true",
        ] {
            assert!(run_alone(&argv(line)).is_none(), "{line}");
        }
    }

    #[test]
    fn hosts_parse() {
        assert_eq!(
            socket_path("unix:///run/x.sock").unwrap(),
            PathBuf::from("/run/x.sock")
        );
        assert_eq!(socket_path("/tmp/b.sock").unwrap(), PathBuf::from("/tmp/b.sock"));
        assert!(
            socket_path("tcp://1.2.3.4:2375")
                .unwrap_err()
                .to_string()
                .contains("unix sockets only")
        );
        assert!(socket_path("unix://").is_err());
    }
}
