//! `berth`: Docker's network modes for containers, without Docker.
//!
//! `berth daemon` runs the engine; every other command is a client of it
//! over a unix socket, speaking Docker's words and flags.

mod args;
mod client;
mod daemon;
mod output;
mod run;

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use berth_api::{
    ContainerCreateRequest, ContainerInspect, ContainerSummary, EndpointIpamConfig, EndpointSettings,
    Network, NetworkCheck, NetworkConnectRequest, NetworkCreateResponse, NetworkDisconnectRequest,
    NetworkPruneResponse, PluginInfo, SystemInfo, SystemVersion,
};
use serde::Serialize;

use crate::args::{
    Cli, Cmd, NetworkCmd, PluginCmd, RunArgs, SystemCmd, enc, filters, filters_query, socket_path,
};
use crate::client::{Client, NO_BODY, connect};

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
    let cli = args::parse();
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

fn dispatch(cli: Cli) -> Result<i32> {
    let host = cli.host.as_deref();
    match cli.cmd {
        Cmd::Daemon(args) => daemon::run(host, args).map(|()| 0),
        Cmd::Network(cmd) => network(&connect(host)?, cmd),
        Cmd::Run(args) => run_container(host, args),
        Cmd::Exec(args) => {
            let process = run::Process::new(&args.process)?;
            let c = connect(host)?;
            let info: ContainerInspect = c.get(&format!("/containers/{}/json", enc(&args.container)))?;
            if !info.state.running {
                bail!("container {} is not running", args.container);
            }
            let mut cmd = std::process::Command::new(&args.command[0]);
            cmd.args(&args.command[1..]);
            run::enter_process(&mut cmd, info.state.pid)?;
            process.apply(&mut cmd)?;
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
            let launch: run::Launch =
                serde_json::from_str(&spec).context("decoding the shim's container spec")?;
            let client = Client::new(socket_path(host.unwrap_or(&client::default_host()))?);
            run::shim(&client, &launch, &argv)
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

fn network(c: &Client, cmd: NetworkCmd) -> Result<i32> {
    match cmd {
        NetworkCmd::Create(a) => {
            let body = a.request()?;
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
            mac_address,
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
                    mac_address: mac_address.unwrap_or_default(),
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
    let process = run::Process::new(&a.process)?;
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
        mac_address: a.mac_address.unwrap_or_default(),
        image: String::new(),
    };
    let spec: run::Spec = c.fetch("POST", "/containers/create", Some(&body))?;
    if a.detach {
        let host = format!("unix://{}", c.socket().display());
        run::detached(&host, &spec, &a.command, &process)?;
        println!("{}", spec.id);
        Ok(0)
    } else {
        run::foreground(&c, &spec, &a.command, &process)
    }
}
