//! `berth`: Docker's network modes for containers, without Docker.
//!
//! `berth daemon` runs the engine; every other command is a client of it
//! over a unix socket, speaking Docker's words and flags.

mod args;
mod client;
mod cni;
mod daemon;
mod format;
mod output;
#[cfg(test)]
mod readme;
mod run;
mod template;

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use berth_api::{
    ContainerCreateRequest, ContainerInspect, ContainerSummary, ContainerWaitResponse, EndpointIpamConfig,
    EndpointSettings, Network, NetworkCheck, NetworkConnectRequest, NetworkCreateResponse,
    NetworkDisconnectRequest, NetworkPruneResponse, PluginInfo, SystemInfo, SystemVersion,
};
use serde::Serialize;

use crate::args::{
    Cli, Cmd, ContainerCmd, LifeCmd, NetworkCmd, PluginCmd, PsArgs, RunArgs, SystemCmd, enc, filters,
    filters_query, socket_path,
};
use crate::client::{Client, NO_BODY, connect};
use crate::template::{Format, Template};

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
    // Run by a container runtime as its CNI plugin `berth`.
    if cni::called() {
        return cni::main();
    }
    let cli = args::parse(drivers_help);
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

/// The end of `network create --help`: the drivers one can create
/// networks with and their `-o` options, as the daemon has them (plugins
/// included), else as built in when no daemon answers. Never starts one.
fn drivers_help() -> String {
    let mut argv = std::env::args().skip(1);
    let mut host = std::env::var("BERTH_HOST").ok();
    while let Some(a) = argv.next() {
        match a.as_str() {
            "-H" | "--host" => host = argv.next(),
            _ if a.starts_with("--host=") => host = Some(a["--host=".len()..].to_owned()),
            _ => {}
        }
    }
    let host = host.unwrap_or_else(client::default_host);
    let asked = args::socket_path(&host)
        .map(Client::new)
        .and_then(|c| c.get::<SystemInfo>("/info"));
    let (drivers, whence) = match asked {
        Ok(info) => (info.drivers, format!("as the daemon at {host} has them")),
        Err(_) => (
            berth_engine::plugins::builtin_drivers(),
            format!("built in; no daemon answers at {host}, so plugins are not listed (berth plugin ls)"),
        ),
    };
    output::drivers_help(&drivers, &whence)
}

fn dispatch(cli: Cli) -> Result<i32> {
    let host = cli.host.as_deref();
    match cli.cmd {
        Cmd::Daemon(args) => daemon::run(host, args).map(|()| 0),
        Cmd::Network(cmd) => network(&connect(host)?, cmd),
        Cmd::Run(args) => run_container(host, args),
        Cmd::Exec(args) => {
            let process = run::process(&args.process)?;
            let c = connect(host)?;
            let info: ContainerInspect = c.get(&format!("/containers/{}/json", enc(&args.container)))?;
            if !info.state.running {
                bail!("container {} is not running", args.container);
            }
            let mut cmd = std::process::Command::new(&args.command[0]);
            cmd.args(&args.command[1..]);
            run::enter_process(&mut cmd, info.state.pid)?;
            run::apply(&process, &mut cmd)?;
            let mut child = cmd.spawn().with_context(|| {
                format!("cannot run {:?} in container {}", args.command[0], args.container)
            })?;
            Ok(run::exit_code(run::wait_forwarding(&mut child)?))
        }
        Cmd::Ps(args) | Cmd::Container(ContainerCmd::Ls(args)) => {
            let PsArgs {
                all,
                quiet,
                filters: f,
                format,
                no_trunc,
            } = args;
            let format = Format::parse(&format)?;
            let q = filters_query(&filters(&f)?)?.replacen('?', "&", 1);
            let list: Vec<ContainerSummary> =
                connect(host)?.get(&format!("/containers/json?all={}{q}", u8::from(all)))?;
            match format {
                Format::Default => output::ps(&list, quiet, no_trunc),
                _ if quiet => output::ps(&list, quiet, no_trunc),
                format => format::containers(&list, &format, no_trunc)?,
            }
            Ok(0)
        }
        Cmd::Inspect {
            format,
            kind,
            containers,
        } => {
            let template = inspect_template(format.as_deref())?;
            let c = connect(host)?;
            let (out, failed) = each(&containers, |k| inspect_any(&c, k, kind.as_deref()));
            print_inspected(&out, template.as_ref())?;
            Ok(failed)
        }
        Cmd::Rm { force, containers } => {
            let c = connect(host)?;
            let (out, failed) = each_at_once(&containers, |k| {
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
        Cmd::Life(cmd) | Cmd::Container(ContainerCmd::Life(cmd)) => life(&connect(host)?, cmd),
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
            let client = Client::new(socket_path(host.unwrap_or(&client::default_host()))?);
            run::shim(&client, &spec, &argv)
        }
    }
}

/// `stop`, `start`, `restart`, `kill`, `wait` and `logs`.
fn life(c: &Client, cmd: LifeCmd) -> Result<i32> {
    let post = |path: String| c.call("POST", &path, NO_BODY);
    match cmd {
        LifeCmd::Stop { time, containers } => {
            let (out, failed) = each_at_once(&containers, |k| {
                post(format!("/containers/{}/stop?t={time}", enc(k))).map(|()| k.to_owned())
            });
            print_lines(&out);
            Ok(failed)
        }
        LifeCmd::Start { containers } => {
            let (out, failed) = each(&containers, |k| {
                post(format!("/containers/{}/start", enc(k))).map(|()| k.to_owned())
            });
            print_lines(&out);
            Ok(failed)
        }
        LifeCmd::Restart { time, containers } => {
            let (out, failed) = each(&containers, |k| {
                post(format!("/containers/{}/restart?t={time}", enc(k))).map(|()| k.to_owned())
            });
            print_lines(&out);
            Ok(failed)
        }
        LifeCmd::Kill { signal, containers } => {
            let (out, failed) = each_at_once(&containers, |k| {
                post(format!("/containers/{}/kill?signal={}", enc(k), enc(&signal))).map(|()| k.to_owned())
            });
            print_lines(&out);
            Ok(failed)
        }
        LifeCmd::Wait { containers } => {
            let (out, failed) = each(&containers, |k| {
                c.fetch::<ContainerWaitResponse, _>("POST", &format!("/containers/{}/wait", enc(k)), NO_BODY)
                    .map(|r| r.status_code.to_string())
            });
            print_lines(&out);
            Ok(failed)
        }
        LifeCmd::Logs {
            follow,
            tail,
            timestamps,
            container,
        } => logs(c, &container, follow, &tail, timestamps),
    }
}

/// `berth logs`: the last lines, then with `follow` what comes until the
/// container stops (looked at five times a second).
fn logs(c: &Client, container: &str, follow: bool, tail: &str, timestamps: bool) -> Result<i32> {
    use std::io::Write;
    if tail != "all" && tail.parse::<usize>().is_err() {
        bail!("invalid --tail {tail:?}: a number of lines or \"all\"");
    }
    let path = |tail: &str| {
        format!(
            "/containers/{}/logs?tail={tail}&timestamps={}",
            enc(container),
            u8::from(timestamps)
        )
    };
    let mut out = std::io::stdout();
    out.write_all(&c.get_bytes(&path(tail))?)?;
    out.flush()?;
    if !follow {
        return Ok(0);
    }
    // Lines printed so far, counted on the whole log.
    let lines = |b: &[u8]| b.split_inclusive(|x| *x == b'\n').count();
    let mut seen = lines(&c.get_bytes(&path("all"))?);
    loop {
        let info: ContainerInspect = c.get(&format!("/containers/{}/json", enc(container)))?;
        let all = c.get_bytes(&path("all"))?;
        let now: Vec<&[u8]> = all.split_inclusive(|x| *x == b'\n').collect();
        for l in now.iter().skip(seen) {
            out.write_all(l)?;
        }
        out.flush()?;
        seen = seen.max(now.len());
        if !info.state.running {
            return Ok(0);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Runs `f` on each key and prints an error line for each failure; returns
/// what succeeded, and the exit code (1 when any failed).
fn each<T>(keys: &[String], f: impl Fn(&str) -> Result<T>) -> (Vec<T>, i32) {
    tally(keys.iter().map(|k| f(k)).collect())
}

/// Prints an error line for each failure, in order; returns what
/// succeeded, and the exit code (1 when any failed).
fn tally<T>(results: Vec<Result<T>>) -> (Vec<T>, i32) {
    let mut out = Vec::new();
    let mut failed = 0;
    for r in results {
        match r {
            Ok(v) => out.push(v),
            Err(e) => {
                eprintln!("berth: {e:#}");
                failed += 1;
            }
        }
    }
    (out, if failed > 0 { 1 } else { 0 })
}

/// As [`each`], with up to [`AT_ONCE`] keys in flight, as Docker's CLI
/// removes, stops and kills up to 50 containers at once; what succeeded and
/// the error lines keep the keys' order. The first key goes alone, so that
/// a daemon this client has to start is started once.
fn each_at_once<T: Send>(keys: &[String], f: impl Fn(&str) -> Result<T> + Sync) -> (Vec<T>, i32) {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let Some((first, rest)) = keys.split_first() else {
        return (Vec::new(), 0);
    };
    let mut results: Vec<Result<T>> = vec![f(first)];
    let slots: Vec<Mutex<Option<Result<T>>>> = rest.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..rest.len().min(AT_ONCE) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(k) = rest.get(i) else { break };
                    let r = f(k);
                    *slots[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                }
            });
        }
    });
    results.extend(slots.into_iter().map(|m| {
        m.into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or_else(|| Err(anyhow::anyhow!("a worker ended without an answer")))
    }));
    tally(results)
}

/// How many containers `rm`, `stop` and `kill` work on at once.
const AT_ONCE: usize = 32;

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

/// `inspect -f`'s template; none for the default JSON (`-f json` too).
fn inspect_template(format: Option<&str>) -> Result<Option<Template>> {
    match format.map(str::trim) {
        None | Some("" | "json") => Ok(None),
        Some(t) => Ok(Some(Template::parse(t)?)),
    }
}

/// The inspected objects: a JSON array, or the template's line for each.
fn print_inspected(out: &[serde_json::Value], template: Option<&Template>) -> Result<()> {
    match template {
        Some(t) => format::inspect(out, t),
        None => print_json(out),
    }
}

/// `inspect`'s object named `key`: a container, else a network, as
/// Docker looks at every object type; with `kind`, only that type.
fn inspect_any(c: &Client, key: &str, kind: Option<&str>) -> Result<serde_json::Value> {
    let container = format!("/containers/{}/json", enc(key));
    let network = format!("/networks/{}", enc(key));
    match kind {
        Some("container") => Ok(serde_json::to_value(c.get::<ContainerInspect>(&container)?)?),
        Some("network") => Ok(serde_json::to_value(c.get::<Network>(&network)?)?),
        _ => {
            for (path, is_container) in [(&container, true), (&network, false)] {
                let (status, body) = c
                    .raw("GET", path, None)
                    .with_context(|| format!("cannot reach the berth daemon at {}", c.socket().display()))?;
                if status == 404 {
                    continue;
                }
                if !(200..300).contains(&status) {
                    // The daemon's own error, as every other command reports it.
                    return Ok(serde_json::to_value(c.get::<ContainerInspect>(path)?)?);
                }
                return Ok(if is_container {
                    serde_json::to_value(serde_json::from_slice::<ContainerInspect>(&body)?)?
                } else {
                    serde_json::to_value(serde_json::from_slice::<Network>(&body)?)?
                });
            }
            bail!("no such container or network: {key}")
        }
    }
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
            let format = Format::parse(&format)?;
            let list: Vec<Network> = c.get(&format!("/networks{q}"))?;
            match format {
                Format::Default => output::networks(&list, quiet, "table", no_trunc)?,
                Format::Json => output::networks(&list, quiet, "json", no_trunc)?,
                _ if quiet => output::networks(&list, quiet, "table", no_trunc)?,
                format => format::networks(&list, &format, no_trunc)?,
            }
            Ok(0)
        }
        NetworkCmd::Inspect { format, networks } => {
            let template = inspect_template(format.as_deref())?;
            let (out, failed) = each(&networks, |k| {
                let n: Network = c.get(&format!("/networks/{}", enc(k)))?;
                Ok(serde_json::to_value(n)?)
            });
            print_inspected(&out, template.as_ref())?;
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
    let process = run::process(&a.process)?;
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
        process,
    };
    let spec: run::Spec = c.fetch("POST", "/containers/create", Some(&body))?;
    if a.detach {
        run::detached(c.socket(), &spec, &a.command)?;
        println!("{}", spec.id);
        Ok(0)
    } else {
        run::foreground(&c, &spec, &a.command)
    }
}
