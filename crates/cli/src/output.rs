//! Tables for people, JSON for scripts, from the API's typed answers.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use berth_api::{
    API_VERSION, ContainerSummary, DriverInfo, Network, NetworkCheck, PluginInfo, PortBinding, PortMap,
    SystemInfo, SystemVersion, human_duration,
};
use comfy_table::presets::NOTHING;
use comfy_table::{Cell, Table};

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(NOTHING);
    t.set_header(header.iter().map(Cell::new));
    t
}

fn print(t: &Table) {
    for line in t.to_string().lines() {
        println!("{}", line.trim_end().strip_prefix(' ').unwrap_or(line.trim_end()));
    }
}

/// `network ls`.
pub fn networks(list: &[Network], quiet: bool, format: &str, no_trunc: bool) -> Result<()> {
    let id = |n: &Network| {
        if no_trunc {
            n.id.clone()
        } else {
            n.id.chars().take(12).collect()
        }
    };
    if quiet {
        for n in list {
            println!("{}", id(n));
        }
        return Ok(());
    }
    match format {
        "table" => {
            let mut t = table(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"]);
            for n in list {
                t.add_row(vec![id(n), n.name.clone(), n.driver.clone(), n.scope.clone()]);
            }
            print(&t);
        }
        "json" => {
            for n in list {
                println!("{}", serde_json::to_string(n)?);
            }
        }
        other => bail!("unknown format {other:?} (accepted: table, json)"),
    }
    Ok(())
}

/// `plugin ls`.
pub fn plugins(list: &[PluginInfo], format: &str) -> Result<()> {
    match format {
        "table" => {
            let mut t = table(&["NAME", "TRANSPORT", "ABI", "STATUS", "PATH"]);
            for p in list {
                t.add_row(vec![
                    p.name.clone(),
                    p.transport.clone(),
                    p.abi.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
                    p.status.clone(),
                    p.path.clone(),
                ]);
            }
            print(&t);
        }
        "json" => {
            for p in list {
                println!("{}", serde_json::to_string(p)?);
            }
        }
        other => bail!("unknown format {other:?} (accepted: table, json)"),
    }
    Ok(())
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `ps`: Docker's summary, with berth's columns. STATUS is the daemon's
/// (`Up 5 seconds`); an exited container's NETWORKS are those it was on.
pub fn ps(list: &[ContainerSummary], quiet: bool, no_trunc: bool) {
    let id = |c: &ContainerSummary| {
        if no_trunc {
            c.id.clone()
        } else {
            c.id.chars().take(12).collect()
        }
    };
    if quiet {
        for c in list {
            println!("{}", id(c));
        }
        return;
    }
    let mut t = table(&[
        "CONTAINER ID",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NETWORKS",
        "NAMES",
    ]);
    let now = now();
    for c in list {
        let nets: Vec<&str> = c.network_settings.networks.keys().collect();
        t.add_row(vec![
            id(c),
            crate::format::command(c, no_trunc),
            format!("{} ago", human_duration(now - c.created)),
            c.status.clone(),
            c.port_summary.join(", "),
            nets.join(","),
            c.names
                .first()
                .map(|n| n.trim_start_matches('/').to_owned())
                .unwrap_or_default(),
        ]);
    }
    print(&t);
}

/// `info`.
pub fn info(v: &SystemInfo) {
    println!("Server: berth {}", v.server_version);
    println!(" Data root: {}", v.data_root);
    println!(" Exec root: {}", v.exec_root);
    println!(" Host resolv.conf: {}", v.resolv_conf);
    println!(" Network drivers:");
    for d in &v.drivers {
        if d.supported {
            println!("  {} ({} scope)", d.name, d.scope);
        } else {
            println!("  {} (not supported here: {})", d.name, d.unsupported);
        }
    }
    if let Some(c) = &v.cluster {
        println!(" Cluster store: {} ({})", c.store, c.health);
        println!(
            " Cluster advertise: {} on {} (MTU {}), host {}",
            c.advertise, c.interface, c.mtu, c.host_id
        );
        println!(" Cluster hosts: {}", c.hosts.len());
        for h in &c.hosts {
            let lease = if h.lease_seconds_left < 0 {
                "lease unknown".to_owned()
            } else {
                format!("lease {} s left", h.lease_seconds_left)
            };
            println!(
                "  {} {} ({}): joined {} s ago, {lease}",
                h.id, h.name, h.address, h.age_seconds
            );
        }
    }
}

/// `version`'s client half, as `docker version` lays it out.
pub fn version_client() {
    println!("Client:");
    println!(" Version:           {}", env!("CARGO_PKG_VERSION"));
    println!(" API version:       {API_VERSION}");
    println!(
        " OS/Arch:           {}/{}",
        std::env::consts::OS,
        berth_api::go_arch(std::env::consts::ARCH)
    );
}

/// `version`'s server half: the daemon as Docker's "Engine", and any
/// other component it names.
pub fn version_server(v: &SystemVersion) {
    println!();
    println!("Server: {}", v.platform.name);
    println!(" Engine:");
    println!("  Version:          {}", v.version);
    println!(
        "  API version:      {} (minimum version {})",
        v.api_version, v.min_api_version
    );
    println!("  OS/Arch:          {}/{}", v.os, v.arch);
    for c in v.components.iter().filter(|c| c.name != "Engine") {
        println!(" {}:", c.name);
        println!("  Version:          {}", c.version);
    }
}

/// `network check`: one line per container; exit code 1 if any failed.
pub fn checks(list: &[NetworkCheck]) -> i32 {
    let mut failed = 0;
    for item in list {
        if item.ok {
            println!("{}: OK", item.container);
        } else {
            failed += 1;
            println!("{}: {}", item.container, item.error);
        }
    }
    if failed > 0 { 1 } else { 0 }
}

/// `docker port`'s lines from Docker's `NetworkSettings.Ports` shape:
/// `80/tcp -> 0.0.0.0:8080`, or with `private` (`80`, `80/udp`) only the
/// host side of that port. Exit code 1 when `private` is not published.
pub fn ports(ports: &PortMap, private: Option<&str>) -> Result<i32> {
    let host = |b: &PortBinding| {
        if b.host_ip.contains(':') {
            format!("[{}]:{}", b.host_ip, b.host_port)
        } else {
            format!("{}:{}", b.host_ip, b.host_port)
        }
    };
    let mut keys: Vec<(u16, &str, &Vec<PortBinding>)> = ports
        .iter()
        .filter_map(|(k, v)| {
            let port = k.split('/').next()?.parse().ok()?;
            Some((port, k, v))
        })
        .collect();
    keys.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    if let Some(want) = private {
        let want = if want.contains('/') {
            want.to_owned()
        } else {
            format!("{want}/tcp")
        };
        let Some((_, _, list)) = keys.iter().find(|(_, k, _)| *k == want) else {
            bail!("no public port '{want}' published for this container");
        };
        for b in list.iter() {
            println!("{}", host(b));
        }
        return Ok(0);
    }
    for (_, k, list) in &keys {
        for b in list.iter() {
            println!("{k} -> {}", host(b));
        }
    }
    Ok(0)
}

/// The end of `network create --help`: the drivers one can create
/// networks with, each with its `-o` options (wrapped under it), then the
/// drivers that have one network only.
pub fn drivers_help(drivers: &[DriverInfo], whence: &str) -> String {
    const WIDTH: usize = 100;
    let mut out = format!("Drivers (-d NAME) and their options (-o KEY=VALUE), {whence}:\n");
    let creatable: Vec<&DriverInfo> = drivers.iter().filter(|d| !d.one_network).collect();
    let label = |d: &DriverInfo| {
        if d.name == "bridge" {
            "bridge (default)".to_owned()
        } else {
            d.name.clone()
        }
    };
    let col = creatable.iter().map(|d| label(d).len()).max().unwrap_or(0) + 4;
    for d in &creatable {
        let mut words: Vec<String> = if d.options.is_empty() {
            vec!["no options".into()]
        } else {
            let last = d.options.len() - 1;
            d.options
                .iter()
                .enumerate()
                .map(|(i, o)| if i < last { format!("{o},") } else { o.clone() })
                .collect()
        };
        if !d.supported {
            words.push(format!("(not on this kernel: {})", d.unsupported));
        }
        let mut line = format!("  {:<w$}", label(d), w = col - 2);
        let mut fresh = true;
        for w in words {
            if !fresh && line.len() + 1 + w.len() > WIDTH {
                out.push_str(line.trim_end());
                out.push('\n');
                line = " ".repeat(col);
                fresh = true;
            }
            if !fresh {
                line.push(' ');
            }
            line.push_str(&w);
            fresh = false;
        }
        out.push_str(&line);
        out.push('\n');
    }
    let single: Vec<&str> = drivers
        .iter()
        .filter(|d| d.one_network)
        .map(|d| d.aliases.first().unwrap_or(&d.name).as_str())
        .collect();
    if !single.is_empty() {
        out.push_str(&format!(
            "{} have one network each, which berth makes: use run --network {}.\n",
            single.join(" and "),
            single.join("|")
        ));
    }
    out
}
