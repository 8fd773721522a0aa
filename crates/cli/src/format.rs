//! `--format` of `ps`, `network ls`, `inspect` and `network inspect`: the
//! placeholders Docker's templates see, and their column names for `table`.
//!
//! | command | placeholders |
//! |---|---|
//! | `network ls` | `.ID .Name .Driver .Scope .IPv6 .Internal .Labels .Label "K" .CreatedAt` |
//! | `ps` | `.ID .Image .Command .CreatedAt .RunningFor .Ports .State .Status .Names .Labels .Label "K" .Mounts .Networks .LocalVolumes .Size` |
//! | `inspect`, `network inspect` | the JSON object itself |

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use berth_api::{ContainerSummary, Network, human_duration};
use serde_json::Value;

use crate::template::{Format, Template, object};

/// `k=v,k2=v2`, in key order, as Docker's `.Labels` (there in map order).
fn labels(l: &std::collections::BTreeMap<String, String>) -> String {
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Go's `Time.String()` of an RFC 3339 time: `2026-12-07 07:01:34.5 +0000 UTC`.
fn go_time(rfc3339: &str) -> String {
    let Some((date, time)) = rfc3339.split_once('T') else {
        return rfc3339.to_owned();
    };
    if let Some(t) = time.strip_suffix('Z') {
        return format!("{date} {t} +0000 UTC");
    }
    match time.rfind(['+', '-']) {
        Some(i) => {
            let off = time[i..].replace(':', "");
            format!("{date} {} {off} {off}", &time[..i])
        }
        None => format!("{date} {time}"),
    }
}

/// Unix seconds as Go prints a UTC time: `2026-12-07 07:01:34 +0000 UTC`.
fn go_unix(secs: i64) -> String {
    let t = berth_api::Utc::from_unix(secs);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} +0000 UTC",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

fn short(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        id.to_owned()
    } else {
        id.chars().take(12).collect()
    }
}

/// A network's placeholders for `network ls --format`.
fn network_row(n: &Network, no_trunc: bool) -> Value {
    object([
        ("ID", short(&n.id, no_trunc).into()),
        ("Name", n.name.clone().into()),
        ("Driver", n.driver.clone().into()),
        ("Scope", n.scope.clone().into()),
        ("IPv6", n.enable_ipv6.to_string().into()),
        ("Internal", n.internal.to_string().into()),
        ("Labels", labels(&n.labels).into()),
        ("Label", serde_json::to_value(&n.labels).unwrap_or_default()),
        ("CreatedAt", go_time(&n.created).into()),
    ])
}

fn network_header() -> Value {
    object([
        ("ID", "NETWORK ID".into()),
        ("Name", "NAME".into()),
        ("Driver", "DRIVER".into()),
        ("Scope", "SCOPE".into()),
        ("IPv6", "IPV6".into()),
        ("Internal", "INTERNAL".into()),
        ("Labels", "LABELS".into()),
        ("Label", "LABEL".into()),
        ("CreatedAt", "CREATED AT".into()),
    ])
}

/// `network ls --format TEMPLATE` (`table` and `json` are [`crate::output::networks`]'s).
pub fn networks(list: &[Network], format: &Format, no_trunc: bool) -> Result<()> {
    let rows: Vec<Value> = list.iter().map(|n| network_row(n, no_trunc)).collect();
    print!("{}", format.lines(&rows, &network_header())?);
    Ok(())
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `"COMMAND"`, cut to 20 characters with `…` unless `no_trunc`, as `docker ps`.
pub fn command(c: &ContainerSummary, no_trunc: bool) -> String {
    let mut cmd = c.command.clone();
    if !no_trunc && cmd.chars().count() > 20 {
        cmd = format!("{}…", cmd.chars().take(19).collect::<String>());
    }
    format!("\"{cmd}\"")
}

/// A container's placeholders for `ps --format`, in Docker's JSON key order.
fn container_row(c: &ContainerSummary, no_trunc: bool, now: i64) -> Value {
    let nets: Vec<&str> = c.network_settings.networks.keys().collect();
    let names: Vec<&str> = c.names.iter().map(|n| n.trim_start_matches('/')).collect();
    object([
        ("Command", command(c, no_trunc).into()),
        ("CreatedAt", go_unix(c.created).into()),
        ("ID", short(&c.id, no_trunc).into()),
        ("Image", c.image.clone().into()),
        ("Labels", labels(&c.labels).into()),
        ("LocalVolumes", "0".into()),
        ("Mounts", "".into()),
        ("Names", names.join(",").into()),
        ("Networks", nets.join(",").into()),
        ("Ports", c.port_summary.join(", ").into()),
        (
            "RunningFor",
            format!("{} ago", human_duration(now - c.created)).into(),
        ),
        ("Size", "0B".into()),
        ("State", c.state.clone().into()),
        ("Status", c.status.clone().into()),
        ("Label", serde_json::to_value(&c.labels).unwrap_or_default()),
    ])
}

fn container_header() -> Value {
    object([
        ("Command", "COMMAND".into()),
        ("CreatedAt", "CREATED AT".into()),
        ("ID", "CONTAINER ID".into()),
        ("Image", "IMAGE".into()),
        ("Labels", "LABELS".into()),
        ("LocalVolumes", "LOCAL VOLUMES".into()),
        ("Mounts", "MOUNTS".into()),
        ("Names", "NAMES".into()),
        ("Networks", "NETWORKS".into()),
        ("Ports", "PORTS".into()),
        ("RunningFor", "CREATED".into()),
        ("Size", "SIZE".into()),
        ("State", "STATE".into()),
        ("Status", "STATUS".into()),
        ("Label", "LABEL".into()),
    ])
}

/// `ps --format json|TEMPLATE` (`table` is [`crate::output::ps`]'s).
pub fn containers(list: &[ContainerSummary], format: &Format, no_trunc: bool) -> Result<()> {
    let now = now();
    let rows: Vec<Value> = list.iter().map(|c| container_row(c, no_trunc, now)).collect();
    if let Format::Json = format {
        for mut r in rows {
            if let Some(o) = r.as_object_mut() {
                o.remove("Label");
            }
            println!("{}", serde_json::to_string(&r)?);
        }
        return Ok(());
    }
    print!("{}", format.lines(&rows, &container_header())?);
    Ok(())
}

/// `inspect -f` and `network inspect -f`: the template on each object's
/// JSON, a line each. A map's missing key prints `<no value>`, as Docker's
/// fallback to the raw JSON does.
pub fn inspect(objects: &[Value], template: &Template) -> Result<()> {
    let mut out = String::new();
    for o in objects {
        out.push_str(&template.render(o, false)?);
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_go_prints_them() {
        assert_eq!(
            go_time("2026-12-07T07:01:34.5Z"),
            "2026-12-07 07:01:34.5 +0000 UTC"
        );
        assert_eq!(
            go_time("2026-12-07T07:01:34+01:00"),
            "2026-12-07 07:01:34 +0100 +0100"
        );
        assert_eq!(go_unix(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(go_unix(1_796_626_894), "2026-12-07 07:01:34 +0000 UTC");
    }
}
