//! Checking the name-resolution options of `berth run`: `--dns`,
//! `--dns-search`, `--dns-option`, `--add-host`, `--link`,
//! `--network-alias`, `--domainname`. Each bad value is one clear error
//! naming the flag, the value and what is accepted.

use std::net::IpAddr;

use crate::{AddHostFault, Error, HostnameFault, Result};

/// Checks a hostname: labels of 1 to 63 letters, digits and hyphens, not
/// starting or ending with a hyphen, 253 bytes in all.
pub fn check_hostname(h: &str) -> Result<()> {
    let bad = |fault| Error::BadHostname {
        name: h.to_owned(),
        fault,
    };
    if h.is_empty() || h.len() > 253 {
        return Err(bad(HostnameFault::Length));
    }
    for label in h.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad(HostnameFault::LabelLength(label.to_owned())));
        }
        if let Some(c) = label.chars().find(|c| !c.is_ascii_alphanumeric() && *c != '-') {
            return Err(bad(HostnameFault::Contains(c)));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad(HostnameFault::Hyphen(label.to_owned())));
        }
    }
    Ok(())
}

/// `--dns IP`.
pub fn servers(values: &[String]) -> Result<Vec<IpAddr>> {
    values
        .iter()
        .map(|v| {
            v.trim().parse::<IpAddr>().map_err(|_| Error::BadFlag {
                flag: "--dns address",
                value: v.clone(),
                accepted: "an IP address such as 10.0.0.2 or fd00::53",
            })
        })
        .collect()
}

/// `--dns-search DOMAIN` (`.` for none).
pub fn search(values: &[String]) -> Result<Vec<String>> {
    for v in values {
        let bad = v.is_empty() || v.len() > 253 || v.chars().any(|c| c.is_whitespace() || c.is_control());
        if bad || (v != "." && check_hostname(v.trim_end_matches('.')).is_err()) {
            return Err(Error::BadFlag {
                flag: "--dns-search domain",
                value: v.clone(),
                accepted: "a domain name such as example.com, or . for none",
            });
        }
    }
    Ok(values.to_vec())
}

/// `--dns-option OPT`.
pub fn options(values: &[String]) -> Result<Vec<String>> {
    for v in values {
        if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::BadFlag {
                flag: "--dns-option",
                value: v.clone(),
                accepted: "one resolv.conf option such as ndots:2 or timeout:1",
            });
        }
    }
    Ok(values.to_vec())
}

/// Where an `--add-host` name points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostTarget {
    /// A fixed address.
    Ip(IpAddr),
    /// `host-gateway`: the host's address on the container's network.
    Gateway,
}

/// `--add-host NAME:IP` (or `NAME=IP`, or `NAME:host-gateway`). The split
/// is at the first `:` or `=`, so IPv6 addresses need no brackets.
pub fn extra_host(v: &str) -> Result<(String, HostTarget)> {
    let bad = |fault| Error::BadAddHost {
        value: v.to_owned(),
        fault,
    };
    let at = v.find([':', '=']).ok_or_else(|| bad(AddHostFault::NoSeparator))?;
    let (name, target) = (&v[..at], &v[at + 1..]);
    check_hostname(name).map_err(|_| bad(AddHostFault::NotAHostName(name.to_owned())))?;
    let target = target.trim_start_matches('[').trim_end_matches(']');
    if target == "host-gateway" {
        return Ok((name.to_owned(), HostTarget::Gateway));
    }
    let ip = target
        .parse::<IpAddr>()
        .map_err(|_| bad(AddHostFault::NotAnAddress(target.to_owned())))?;
    Ok((name.to_owned(), HostTarget::Ip(ip)))
}

/// `--link NAME[:ALIAS]`: the container and the alias (its name when none
/// is given).
pub fn link(v: &str) -> Result<(String, String)> {
    let (name, alias) = v.split_once(':').unwrap_or((v, v));
    let name = name.trim_start_matches('/');
    if name.is_empty() || alias.is_empty() {
        return Err(Error::BadFlag {
            flag: "--link",
            value: v.to_owned(),
            accepted: "NAME or NAME:ALIAS",
        });
    }
    check_hostname(alias).map_err(|_| Error::BadFlag {
        flag: "--link alias",
        value: alias.to_owned(),
        accepted: "a host name such as db",
    })?;
    Ok((name.to_owned(), alias.to_owned()))
}

/// A `--network-alias` (or `connect --alias`).
pub fn alias(v: &str) -> Result<String> {
    check_hostname(v).map_err(|_| Error::BadFlag {
        flag: "network alias",
        value: v.to_owned(),
        accepted: "a host name: labels of letters, digits and '-'",
    })?;
    Ok(v.to_owned())
}

/// `--domainname`.
pub fn domainname(v: &str) -> Result<String> {
    if !v.is_empty() {
        check_hostname(v).map_err(|_| Error::BadFlag {
            flag: "--domainname",
            value: v.to_owned(),
            accepted: "a domain name such as example.com",
        })?;
    }
    Ok(v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_follow_rfc_1123() {
        for ok in ["c1", "web-1.example", "a", &"a".repeat(63)] {
            check_hostname(ok).unwrap();
        }
        for (bad, want) in [
            (&"a".repeat(64) as &str, "1 to 63 bytes"),
            ("under_score", "contains '_'"),
            ("-x", "starts or ends with '-'"),
            ("a..b", "label \"\""),
            ("", "1 to 253"),
        ] {
            let e = check_hostname(bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn servers_are_addresses() {
        assert_eq!(servers(&s(&["10.0.0.2", "fd00::53"])).unwrap().len(), 2);
        let e = servers(&s(&["10.0.0"])).unwrap_err().to_string();
        assert!(
            e.contains("invalid --dns address \"10.0.0\"") && e.contains("accepted"),
            "{e}"
        );
    }

    #[test]
    fn extra_hosts_follow_docker() {
        assert_eq!(
            extra_host("db:10.0.0.9").unwrap(),
            ("db".into(), HostTarget::Ip("10.0.0.9".parse().unwrap()))
        );
        assert_eq!(
            extra_host("db=10.0.0.9").unwrap().1,
            HostTarget::Ip("10.0.0.9".parse().unwrap())
        );
        assert_eq!(
            extra_host("v6:2001:db8::33").unwrap().1,
            HostTarget::Ip("2001:db8::33".parse().unwrap())
        );
        assert_eq!(
            extra_host("v6:[2001:db8::33]").unwrap().1,
            HostTarget::Ip("2001:db8::33".parse().unwrap())
        );
        assert_eq!(extra_host("gw:host-gateway").unwrap().1, HostTarget::Gateway);
        for (bad, want) in [
            ("db", "no ':'"),
            ("db:nonsense", "not an IP address"),
            (":10.0.0.1", "not a host name"),
            ("bad_name:10.0.0.1", "not a host name"),
        ] {
            let e = extra_host(bad).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("accepted: NAME:IP"), "{bad}: {e}");
        }
    }

    #[test]
    fn links_and_aliases() {
        assert_eq!(link("centos01").unwrap(), ("centos01".into(), "centos01".into()));
        assert_eq!(link("centos01:db").unwrap(), ("centos01".into(), "db".into()));
        assert!(link("centos01:").is_err());
        assert!(
            link("x:bad alias")
                .unwrap_err()
                .to_string()
                .contains("invalid --link alias")
        );
        assert!(alias("web").is_ok());
        assert!(
            alias("we b")
                .unwrap_err()
                .to_string()
                .contains("invalid network alias")
        );
    }

    #[test]
    fn search_and_options_are_single_words() {
        assert!(search(&s(&["example.com", "."])).is_ok());
        assert!(
            search(&s(&["a b"]))
                .unwrap_err()
                .to_string()
                .contains("--dns-search")
        );
        assert!(options(&s(&["ndots:2"])).is_ok());
        assert!(
            options(&s(&["ndots 2"]))
                .unwrap_err()
                .to_string()
                .contains("--dns-option")
        );
        assert!(domainname("example.com").is_ok());
        assert!(domainname("exa mple").is_err());
    }
}
