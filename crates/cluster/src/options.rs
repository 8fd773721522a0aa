//! `--cluster-store etcd://HOST:PORT[,HOST:PORT…]` and its
//! `--cluster-store-opt KEY=VALUE` options, checked once.

use std::path::PathBuf;
use std::time::Duration;

use crate::Error;

/// The options `--cluster-store-opt` accepts.
pub const OPTIONS: &[&str] = &["cacert", "cert", "key", "prefix", "lease-ttl"];

/// The prefix of every key unless `prefix=` says otherwise.
pub const DEFAULT_PREFIX: &str = "/berth/v1/";

/// How long a host's records outlive its last keep-alive unless
/// `lease-ttl=` says otherwise.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

/// TLS to etcd: the CA that signed its certificates, and this host's
/// client certificate and key (PEM files).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tls {
    /// `cacert=`.
    pub ca: PathBuf,
    /// `cert=`.
    pub cert: PathBuf,
    /// `key=`.
    pub key: PathBuf,
}

/// Where the cluster store is and how to use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// `HOST:PORT` of each etcd member.
    pub members: Vec<String>,
    /// TLS, when `cacert=`, `cert=` and `key=` are given.
    pub tls: Option<Tls>,
    /// The prefix of every key, ending in `/`.
    pub prefix: String,
    /// The TTL of this host's lease.
    pub lease_ttl: Duration,
}

impl Options {
    /// Parses `--cluster-store` and the `--cluster-store-opt` values (each
    /// `KEY=VALUE`, several separated by commas).
    pub fn parse(store: &str, opts: &[String]) -> Result<Self, Error> {
        let bad_url = |why: &str| Error::BadStore {
            url: store.to_owned(),
            why: why.to_owned(),
        };
        let rest = store
            .strip_prefix("etcd://")
            .ok_or_else(|| bad_url("the scheme must be etcd://"))?;
        let mut members = Vec::new();
        for m in rest.split(',') {
            let (host, port) = m
                .rsplit_once(':')
                .ok_or_else(|| bad_url(&format!("{m:?} has no :PORT")))?;
            if host.is_empty() || host.contains('/') {
                return Err(bad_url(&format!("{m:?} has no host")));
            }
            port.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad_url(&format!("{port:?} in {m:?} is not a port")))?;
            members.push(m.to_owned());
        }
        let mut out = Options {
            members,
            tls: None,
            prefix: DEFAULT_PREFIX.to_owned(),
            lease_ttl: DEFAULT_LEASE_TTL,
        };
        let (mut ca, mut cert, mut key) = (None, None, None);
        for kv in opts.iter().flat_map(|o| o.split(',')).filter(|s| !s.is_empty()) {
            let Some((k, v)) = kv.split_once('=') else {
                return Err(Error::BadOption {
                    option: kv.to_owned(),
                    why: "not KEY=VALUE".into(),
                });
            };
            let bad = |why: &str| Error::BadOption {
                option: kv.to_owned(),
                why: why.to_owned(),
            };
            match k {
                // Docker's classic names too.
                "cacert" | "kv.cacertfile" => ca = Some(PathBuf::from(v)),
                "cert" | "kv.certfile" => cert = Some(PathBuf::from(v)),
                "key" | "kv.keyfile" => key = Some(PathBuf::from(v)),
                "prefix" => {
                    if !v.starts_with('/') {
                        return Err(bad("a prefix starts with /"));
                    }
                    out.prefix = if v.ends_with('/') {
                        v.to_owned()
                    } else {
                        format!("{v}/")
                    };
                }
                "lease-ttl" => {
                    let secs = v
                        .trim_end_matches('s')
                        .parse::<u64>()
                        .ok()
                        .filter(|s| (2..=3600).contains(s))
                        .ok_or_else(|| bad("accepted: 2 to 3600 seconds"))?;
                    out.lease_ttl = Duration::from_secs(secs);
                }
                _ => {
                    return Err(Error::BadOption {
                        option: kv.to_owned(),
                        why: format!("unknown key {k:?} (accepted: {})", OPTIONS.join(", ")),
                    });
                }
            }
        }
        out.tls = match (ca, cert, key) {
            (None, None, None) => None,
            (Some(ca), Some(cert), Some(key)) => Some(Tls { ca, cert, key }),
            _ => {
                return Err(Error::BadOption {
                    option: "cacert/cert/key".into(),
                    why: "TLS needs all three: cacert=PATH,cert=PATH,key=PATH".into(),
                });
            }
        };
        Ok(out)
    }

    /// The members' URLs as the client dials them.
    pub fn urls(&self) -> Vec<String> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.members.iter().map(|m| format!("{scheme}://{m}")).collect()
    }

    /// `--cluster-store`'s value, as given.
    pub fn store(&self) -> String {
        format!("etcd://{}", self.members.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_and_options_parse() {
        let o = Options::parse("etcd://198.51.100.1:2379,198.51.100.2:2379", &[]).unwrap();
        assert_eq!(o.members, ["198.51.100.1:2379", "198.51.100.2:2379"]);
        assert_eq!(o.urls()[1], "http://198.51.100.2:2379");
        assert_eq!(
            (o.prefix.as_str(), o.lease_ttl),
            (DEFAULT_PREFIX, DEFAULT_LEASE_TTL)
        );
        let o = Options::parse(
            "etcd://e:2379",
            &[
                "cacert=/c,cert=/d".into(),
                "key=/k".into(),
                "prefix=/x/y".into(),
                "lease-ttl=5".into(),
            ],
        )
        .unwrap();
        assert_eq!(o.urls(), ["https://e:2379"]);
        assert_eq!(o.prefix, "/x/y/");
        assert_eq!(o.lease_ttl, Duration::from_secs(5));
    }

    #[test]
    fn bad_stores_and_options_say_what_is_accepted() {
        for (store, want) in [
            ("http://e:2379", "the scheme must be etcd://"),
            ("etcd://e", "has no :PORT"),
            ("etcd://e:x", "is not a port"),
            ("etcd://:2379", "has no host"),
            ("etcd://", "has no :PORT"),
        ] {
            let e = Options::parse(store, &[]).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains(store), "{store}: {e}");
        }
        for (opt, want) in [
            (
                "colour=red",
                "unknown key \"colour\" (accepted: cacert, cert, key, prefix, lease-ttl)",
            ),
            ("lease-ttl=1", "accepted: 2 to 3600 seconds"),
            ("prefix=x", "starts with /"),
            ("cacert=/a", "TLS needs all three"),
            ("nothing", "not KEY=VALUE"),
        ] {
            let e = Options::parse("etcd://e:1", &[opt.into()])
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{opt}: {e}");
        }
    }

    #[test]
    fn a_bad_option_is_one_line_whatever_it_holds() {
        let e = Options::parse("etcd://e:1", &["lease-ttl=x\ny".into()])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            r#"invalid --cluster-store-opt "lease-ttl=x\ny": accepted: 2 to 3600 seconds"#
        );
    }
}
