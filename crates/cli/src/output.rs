//! Tables for people, JSON for scripts.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use comfy_table::presets::NOTHING;
use comfy_table::{Cell, Table};
use serde_json::Value;

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

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// `network ls`.
pub fn networks(list: &Value, quiet: bool, format: &str, no_trunc: bool) -> Result<()> {
    let items = list.as_array().cloned().unwrap_or_default();
    let id = |n: &Value| {
        let id = s(&n["Id"]);
        if no_trunc {
            id.to_owned()
        } else {
            id.chars().take(12).collect()
        }
    };
    if quiet {
        for n in &items {
            println!("{}", id(n));
        }
        return Ok(());
    }
    match format {
        "table" => {
            let mut t = table(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"]);
            for n in &items {
                t.add_row(vec![
                    id(n),
                    s(&n["Name"]).into(),
                    s(&n["Driver"]).into(),
                    s(&n["Scope"]).into(),
                ]);
            }
            print(&t);
        }
        "json" => {
            for n in &items {
                println!("{n}");
            }
        }
        other => bail!("unknown format {other:?} (accepted: table, json)"),
    }
    Ok(())
}

/// `plugin ls`.
pub fn plugins(list: &Value, format: &str) -> Result<()> {
    let items = list.as_array().cloned().unwrap_or_default();
    match format {
        "table" => {
            let mut t = table(&["NAME", "TRANSPORT", "ABI", "STATUS", "PATH"]);
            for p in &items {
                t.add_row(vec![
                    s(&p["Name"]).to_owned(),
                    s(&p["Transport"]).to_owned(),
                    p["Abi"]
                        .as_u64()
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "-".into()),
                    s(&p["Status"]).to_owned(),
                    s(&p["Path"]).to_owned(),
                ]);
            }
            print(&t);
        }
        "json" => {
            for p in &items {
                println!("{p}");
            }
        }
        other => bail!("unknown format {other:?} (accepted: table, json)"),
    }
    Ok(())
}

/// Parses berth's own RFC 3339 timestamps into Unix seconds.
fn unix(ts: &str) -> Option<i64> {
    let (date, time) = ts.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, dd) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.trim_end_matches('Z').split(':');
    let (hh, mm) = (t.next()?.parse::<i64>().ok()?, t.next()?.parse::<i64>().ok()?);
    let ss = t.next()?.split('.').next()?.parse::<i64>().ok()?;
    // days_from_civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// "5 seconds", "3 minutes", … as Docker says it.
fn human(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
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

fn ago(ts: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    match unix(ts) {
        Some(t) => human(now - t),
        None => String::new(),
    }
}

/// `ps`.
pub fn ps(list: &Value, quiet: bool) {
    let items = list.as_array().cloned().unwrap_or_default();
    if quiet {
        for c in &items {
            println!("{}", &s(&c["Id"])[..12.min(s(&c["Id"]).len())]);
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
    for c in &items {
        let mut cmd: String = std::iter::once(s(&c["Path"]))
            .chain(c["Args"].as_array().into_iter().flatten().map(s))
            .collect::<Vec<_>>()
            .join(" ");
        if cmd.chars().count() > 20 {
            cmd = format!("{}…", cmd.chars().take(19).collect::<String>());
        }
        let state = &c["State"];
        let status = match s(&state["Status"]) {
            "running" => format!("Up {}", ago(s(&state["StartedAt"]))),
            "exited" => format!(
                "Exited ({}) {} ago",
                state["ExitCode"],
                ago(s(&state["FinishedAt"]))
            ),
            other => {
                let mut o = other.to_owned();
                if let Some(f) = o.get_mut(..1) {
                    f.make_ascii_uppercase();
                }
                o
            }
        };
        let mut nets: Vec<String> = c["NetworkSettings"]["Networks"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        if nets.is_empty() {
            nets = c["LastNetworks"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| s(v).to_owned())
                .collect();
        }
        t.add_row(vec![
            s(&c["Id"]).chars().take(12).collect::<String>(),
            format!("\"{cmd}\""),
            format!("{} ago", ago(s(&c["Created"]))),
            status,
            c["NetworkSettings"]["PortSummary"]
                .as_array()
                .into_iter()
                .flatten()
                .map(s)
                .collect::<Vec<_>>()
                .join(", "),
            nets.join(","),
            s(&c["Name"]).trim_start_matches('/').to_owned(),
        ]);
    }
    print(&t);
}

/// `info`.
pub fn info(v: &Value) {
    println!("Server: berth {}", s(&v["Version"]));
    println!(" Data root: {}", s(&v["DataRoot"]));
    println!(" Exec root: {}", s(&v["ExecRoot"]));
    println!(" Host resolv.conf: {}", s(&v["ResolvConf"]));
    println!(" Network drivers:");
    for d in v["Drivers"].as_array().into_iter().flatten() {
        if d["Supported"].as_bool().unwrap_or(true) {
            println!("  {} ({} scope)", s(&d["Name"]), s(&d["Scope"]));
        } else {
            println!(
                "  {} (not supported here: {})",
                s(&d["Name"]),
                s(&d["Unsupported"])
            );
        }
    }
}

/// `docker port`'s lines from Docker's `NetworkSettings.Ports` shape:
/// `80/tcp -> 0.0.0.0:8080`, or with `private` (`80`, `80/udp`) only the
/// host side of that port. Exit code 1 when `private` is not published.
pub fn ports(ports: &Value, private: Option<&str>) -> anyhow::Result<i32> {
    let host = |b: &Value| {
        let ip = b["HostIp"].as_str().unwrap_or_default();
        let port = b["HostPort"].as_str().unwrap_or_default();
        if ip.contains(':') {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        }
    };
    let mut keys: Vec<(u16, String, &Vec<Value>)> = ports
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            let port = k.split('/').next()?.parse().ok()?;
            Some((port, k.clone(), v.as_array()?))
        })
        .collect();
    keys.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    if let Some(want) = private {
        let want = if want.contains('/') {
            want.to_owned()
        } else {
            format!("{want}/tcp")
        };
        let Some((_, _, list)) = keys.iter().find(|(_, k, _)| *k == want) else {
            anyhow::bail!("no public port '{want}' published for this container");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        assert_eq!(unix("1970-01-01T00:00:00.000000000Z"), Some(0));
        assert_eq!(unix("2026-11-18T11:06:40.000000005Z"), Some(1_795_000_000));
        assert_eq!(unix("nonsense"), None);
    }

    #[test]
    fn durations_read_like_dockers() {
        assert_eq!(human(5), "5 seconds");
        assert_eq!(human(90), "About a minute");
        assert_eq!(human(600), "10 minutes");
        assert_eq!(human(200_000), "2 days");
    }
}
