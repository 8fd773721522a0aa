//! The generated `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname`.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;

use berth_core::SandboxKind;

use crate::engine::Engine;
use crate::store::model::ContainerRecord;
use crate::{Error, Result};

/// Writes `content` over the file at `path`, keeping its inode: a running
/// container has it bind-mounted, so it must be changed in place, never
/// replaced. The file is never truncated to zero first: ext4 flushes a
/// file emptied that way when it is closed (`auto_da_alloc`), which costs
/// a disk write per container change.
pub fn write_in_place(path: &Path, content: &[u8]) -> Result<()> {
    let err = |e| Error::io(format!("writing {}", path.display()), e);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(err)?;
    f.write_all(content).map_err(err)?;
    f.set_len(content.len() as u64).map_err(err)
}

/// What goes into a container's `/etc/hosts`.
#[derive(Debug, Default)]
pub struct Hosts<'a> {
    /// `-h`.
    pub hostname: &'a str,
    /// `--domainname`.
    pub domainname: &'a str,
    /// The container's own addresses.
    pub addresses: &'a [IpAddr],
    /// The IPv6 localhost lines go in (the container's stack has IPv6).
    pub ipv6: bool,
    /// `--add-host` entries.
    pub extra: &'a [(String, IpAddr)],
    /// Legacy links on the default bridge: address and names.
    pub links: &'a [(IpAddr, String)],
}

/// `/etc/hosts` as Docker writes it: the localhost lines (IPv6 ones when
/// the container has IPv6), `--add-host` entries, legacy links, then the
/// container's own addresses with its hostname.
pub fn hosts(h: &Hosts<'_>) -> String {
    let mut s = String::from("127.0.0.1\tlocalhost\n");
    if h.ipv6 {
        s.push_str("::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n");
    }
    for (name, ip) in h.extra {
        s.push_str(&format!("{ip}\t{name}\n"));
    }
    for (ip, names) in h.links {
        s.push_str(&format!("{ip}\t{names}\n"));
    }
    let names = if h.domainname.is_empty() {
        h.hostname.to_owned()
    } else {
        format!("{}.{} {}", h.hostname, h.domainname, h.hostname)
    };
    for a in h.addresses {
        s.push_str(&format!("{a}\t{names}\n"));
    }
    s
}

/// The nameservers Docker falls back to when the host has none left after
/// filtering.
const FALLBACK: &[&str] = &[
    "8.8.8.8",
    "8.8.4.4",
    "2001:4860:4860::8888",
    "2001:4860:4860::8844",
];

/// The words after `key` on the lines of a resolv.conf that start with it.
fn words<'a>(conf: &'a str, key: &str) -> Vec<&'a str> {
    conf.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(key)).then_some(w)
        })
        .flatten()
        .collect()
}

/// Overrides of a container's resolv.conf (`--dns`, `--dns-search`,
/// `--dns-option`).
#[derive(Debug, Default)]
pub struct Resolv<'a> {
    /// `--dns`.
    pub servers: &'a [IpAddr],
    /// `--dns-search`.
    pub search: &'a [String],
    /// `--dns-option`.
    pub options: &'a [String],
}

/// The search domains: `--dns-search` when given ("." alone means none,
/// as for Docker), else the host's.
fn search(host: &str, r: &Resolv<'_>) -> Vec<String> {
    if r.search.is_empty() {
        words(host, "search").iter().map(|s| s.to_string()).collect()
    } else {
        r.search.iter().filter(|s| *s != ".").cloned().collect()
    }
}

/// A resolv.conf in Docker's order (its `resolvconf.Build`): `search`,
/// then one `nameserver` line per server, then `options`.
fn build(search: &[String], servers: &[String], options: &[String]) -> String {
    let mut out = String::new();
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// resolv.conf for a container that asks the embedded resolver: Docker's
/// `nameserver 127.0.0.11` and `options ndots:0` (unless an `ndots`
/// option was given), with the search domains and options of the
/// container or else of the host.
pub fn resolv_conf_embedded(host: &str, r: &Resolv<'_>) -> String {
    let mut options: Vec<String> = if r.options.is_empty() {
        words(host, "options")
            .iter()
            .map(|s| s.to_string())
            .filter(|o| !o.starts_with("ndots:"))
            .collect()
    } else {
        r.options.to_vec()
    };
    if !options.iter().any(|o| o.starts_with("ndots:")) {
        options.insert(0, "ndots:0".into());
    }
    build(&search(host, r), &["127.0.0.11".to_owned()], &options)
}

/// resolv.conf for a container without the embedded resolver (default
/// bridge, none): the host's with loopback nameservers removed (they cannot
/// be reached from a container's namespace), as Docker does; Google's
/// public servers when none remain; `--dns`, `--dns-search` and
/// `--dns-option` replace the host's lines of their kind. `ipv6` keeps IPv6
/// servers (only useful when the container has IPv6).
pub fn resolv_conf(host: &str, r: &Resolv<'_>, ipv6: bool) -> String {
    if r.servers.is_empty() && r.search.is_empty() && r.options.is_empty() {
        let mut out = String::new();
        let mut servers = 0;
        for line in host.lines() {
            let mut w = line.split_whitespace();
            if w.next() == Some("nameserver") {
                let Some(Ok(ip)) = w
                    .next()
                    .map(|x| x.split('%').next().unwrap_or(x).parse::<IpAddr>())
                else {
                    continue;
                };
                if ip.is_loopback() || (ip.is_ipv6() && !ipv6) {
                    continue;
                }
                servers += 1;
            }
            out.push_str(line);
            out.push('\n');
        }
        if servers == 0 {
            for s in FALLBACK.iter().filter(|s| ipv6 || !s.contains(':')) {
                out.push_str(&format!("nameserver {s}\n"));
            }
        }
        return out;
    }
    let servers: Vec<String> = if r.servers.is_empty() {
        let kept: Vec<String> = words(host, "nameserver")
            .into_iter()
            .filter_map(|w| w.split('%').next().and_then(|a| a.parse::<IpAddr>().ok()))
            .filter(|ip| !ip.is_loopback() && (ipv6 || ip.is_ipv4()))
            .map(|ip| ip.to_string())
            .collect();
        if kept.is_empty() {
            FALLBACK
                .iter()
                .filter(|s| ipv6 || !s.contains(':'))
                .map(|s| s.to_string())
                .collect()
        } else {
            kept
        }
    } else {
        r.servers.iter().map(|ip| ip.to_string()).collect()
    };
    let options = if r.options.is_empty() {
        words(host, "options").iter().map(|s| s.to_string()).collect()
    } else {
        r.options.to_vec()
    };
    build(&search(host, r), &servers, &options)
}

/// A stable 64-bit hash (FNV-1a) of a generated file, to tell later
/// whether someone edited it.
pub fn hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Every address of a container, in endpoint order.
fn addresses(c: &ContainerRecord) -> Vec<IpAddr> {
    c.endpoints
        .iter()
        .flat_map(|e| e.addresses.iter().map(|a| a.addr()))
        .collect()
}

/// Makes a container's log (empty, 0600) and its directory, unless they
/// exist. They live in the data root, on a disk, where they are the
/// slowest of a container's files to make: `create_container` has them
/// made while the network is wired, from the [`make_spare_log`] when
/// there is one.
pub(crate) fn make_log(log: &Path) -> Result<()> {
    if let Some(dir) = log.parent() {
        fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    crate::access::create_log(log)
}

/// [`make_log`], taking the spare log directory when one is ready: a
/// rename, where making a directory and a file on a disk can take a
/// millisecond each after many removals (ext4 looks for an inode that was
/// not freed lately). A create that finds none makes its own.
pub(crate) fn take_spare_log(log: &Path, spare: &Path) -> Result<()> {
    if let Some(dir) = log.parent() {
        let _ = fs::rename(spare, dir);
    }
    make_log(log)
}

/// Makes the next container's log directory ahead, at `spare` (an empty
/// 0600 `container.log` in it), unless it is there. Two at once make one:
/// the second finds the directory made. A spare the daemon left behind
/// is removed by the next start's sweep, which knows no container of that
/// name.
pub(crate) fn make_spare_log(spare: &Path) {
    match fs::create_dir(spare) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return,
        Err(e) => {
            tracing::debug!("making a spare log directory {}: {e}", spare.display());
            return;
        }
    }
    // Taken already (renamed away): its taker makes the log itself.
    let _ = crate::access::create_log(&spare.join("container.log"));
}

impl Engine {
    /// Makes the next container's log directory ahead, off the async
    /// runtime ([`make_spare_log`]).
    pub(crate) fn make_spare_log(&self) {
        let spare = self.cfg.spare_log_dir();
        tokio::task::spawn_blocking(move || make_spare_log(&spare));
    }

    /// Writes `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname` for a
    /// new container, and remembers what it wrote. Its log is its caller's
    /// to make ([`make_log`], [`take_spare_log`]).
    pub(crate) fn write_files(&self, c: &mut ContainerRecord, kind: SandboxKind) -> Result<()> {
        let paths = self.cfg.paths(&c.id);
        if let Some(dir) = paths.hosts.parent() {
            fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        self.write_resolv(c, kind)?;
        write_in_place(&paths.hostname, format!("{}\n", c.hostname).as_bytes())?;
        self.write_hosts(c, kind)
    }

    /// Writes a container's `/etc/resolv.conf`, unless someone edited it
    /// inside the container since berth last wrote it.
    pub(crate) fn write_resolv(&self, c: &mut ContainerRecord, kind: SandboxKind) -> Result<()> {
        let path = self.cfg.paths(&c.id).resolv_conf;
        if let Some(h) = c.dns.resolv_hash
            && fs::read(&path).is_ok_and(|now| hash(&now) != h)
        {
            tracing::info!(container = %c.name, "/etc/resolv.conf was edited inside the container; leaving it as it is");
            return Ok(());
        }
        let host_conf = self.host_resolv_conf();
        let r = Resolv {
            servers: &c.dns.servers,
            search: &c.dns.search,
            options: &c.dns.options,
        };
        let resolv = match kind {
            _ if c.dns.embedded => resolv_conf_embedded(&host_conf, &r),
            SandboxKind::Host if r.servers.is_empty() && r.search.is_empty() && r.options.is_empty() => {
                host_conf
            }
            SandboxKind::Host => resolv_conf(&host_conf, &r, true),
            _ => resolv_conf(&host_conf, &r, addresses(c).iter().any(IpAddr::is_ipv6)),
        };
        write_in_place(&path, resolv.as_bytes())?;
        c.dns.resolv_hash = Some(hash(resolv.as_bytes()));
        Ok(())
    }

    /// Rewrites a container's `/etc/hosts` (after its addresses changed),
    /// unless someone edited it inside the container since berth last
    /// wrote it: then it is left alone, as Docker does.
    pub(crate) fn write_hosts(&self, c: &mut ContainerRecord, kind: SandboxKind) -> Result<()> {
        let path = self.cfg.paths(&c.id).hosts;
        if let Some(h) = c.dns.hosts_hash
            && fs::read(&path).is_ok_and(|now| hash(&now) != h)
        {
            tracing::info!(container = %c.name, "/etc/hosts was edited inside the container; leaving it as it is");
            return Ok(());
        }
        let hosts = match kind {
            SandboxKind::Host => {
                let mut h = fs::read_to_string("/etc/hosts").unwrap_or_default();
                for (name, ip) in &c.dns.extra_hosts {
                    h.push_str(&format!("{ip}\t{name}\n"));
                }
                h
            }
            _ => {
                let links = self.link_lines(c);
                hosts(&Hosts {
                    hostname: &c.hostname,
                    domainname: &c.domainname,
                    addresses: &addresses(c),
                    // Every berth sandbox has IPv6 on its loopback.
                    ipv6: true,
                    extra: &c.dns.extra_hosts,
                    links: &links,
                })
            }
        };
        write_in_place(&path, hosts.as_bytes())?;
        c.dns.hosts_hash = Some(hash(hosts.as_bytes()));
        Ok(())
    }

    /// `/etc/hosts` lines of legacy links on the default bridge: the linked
    /// container's address there, with `ALIAS HOSTNAME [NAME]`.
    pub(super) fn link_lines(&self, c: &ContainerRecord) -> Vec<(IpAddr, String)> {
        if c.dns.embedded {
            return Vec::new(); // on user-defined networks links live in the resolver
        }
        let st = self.state();
        let Some(bridge) = st.networks.values().find(|n| n.builtin && n.net.name == "bridge") else {
            return Vec::new();
        };
        c.dns
            .links
            .iter()
            .filter_map(|l| {
                let t = st.containers.get(&l.target)?;
                let ip = t.endpoint(&bridge.net.id)?.ipv4()?.addr();
                let mut names = format!("{} {}", l.alias, t.hostname);
                if l.alias != t.name {
                    names.push(' ');
                    names.push_str(&t.name);
                }
                Some((ip, names))
            })
            .collect()
    }

    pub(super) fn remove_files(&self, id: &str) {
        let paths = self.cfg.paths(id);
        for p in [paths.hosts.parent(), paths.log.parent()].into_iter().flatten() {
            let _ = fs::remove_dir_all(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_in_place_keeping_the_inode() {
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir().join(format!("berth-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("hosts");
        write_in_place(&p, b"a longer first version\n").unwrap();
        let ino = std::fs::metadata(&p).unwrap().ino();
        write_in_place(&p, b"short\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "short\n");
        assert_eq!(std::fs::metadata(&p).unwrap().ino(), ino);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_create_takes_the_spare_log_directory_or_makes_its_own() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let root = std::env::temp_dir().join(format!("berth-spare-{}", std::process::id()));
        let spare = root.join(".spare");
        std::fs::create_dir_all(&root).unwrap();
        make_spare_log(&spare);
        let made = std::fs::metadata(&spare).unwrap().ino();
        // A second maker finds it made and leaves it.
        make_spare_log(&spare);
        assert_eq!(std::fs::metadata(&spare).unwrap().ino(), made);
        // The first create takes it whole, its 0600 log in it.
        let a = root.join("a").join("container.log");
        take_spare_log(&a, &spare).unwrap();
        assert!(!spare.exists());
        assert_eq!(std::fs::metadata(root.join("a")).unwrap().ino(), made);
        assert_eq!(std::fs::metadata(&a).unwrap().permissions().mode() & 0o777, 0o600);
        // The next one, with no spare, makes its own.
        let b = root.join("b").join("container.log");
        take_spare_log(&b, &spare).unwrap();
        assert_eq!(std::fs::metadata(&b).unwrap().permissions().mode() & 0o777, 0o600);
        // A spare is never renamed over a container's directory that has
        // its log already.
        make_spare_log(&spare);
        take_spare_log(&b, &spare).unwrap();
        assert!(spare.exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn hosts_has_dockers_lines() {
        let addrs = ["172.18.0.3".parse().unwrap()];
        let h = hosts(&Hosts {
            hostname: "296a215ab471",
            addresses: &addrs,
            ipv6: true,
            ..Default::default()
        });
        let lines: Vec<&str> = h.lines().collect();
        assert_eq!(lines[0], "127.0.0.1\tlocalhost");
        assert_eq!(lines[1], "::1\tlocalhost ip6-localhost ip6-loopback");
        assert_eq!(lines[6], "172.18.0.3\t296a215ab471");
        assert_eq!(lines.len(), 7);
        let extra = [("db".to_string(), "10.0.0.9".parse().unwrap())];
        let links = [("172.17.0.2".parse().unwrap(), "centos01 941828a74821".to_string())];
        let h = hosts(&Hosts {
            hostname: "web",
            domainname: "example.com",
            addresses: &addrs,
            ipv6: false,
            extra: &extra,
            links: &links,
        });
        assert_eq!(
            h,
            "127.0.0.1\tlocalhost\n10.0.0.9\tdb\n172.17.0.2\tcentos01 941828a74821\n172.18.0.3\tweb.example.com web\n"
        );
    }

    #[test]
    fn loopback_servers_are_dropped() {
        let host = "# comment\nsearch example.org\nnameserver 127.0.0.53\nnameserver 10.1.2.3\nnameserver ::1\noptions edns0\n";
        assert_eq!(
            resolv_conf(host, &Resolv::default(), false),
            "# comment\nsearch example.org\nnameserver 10.1.2.3\noptions edns0\n"
        );
    }

    #[test]
    fn no_servers_left_means_dockers_fallback() {
        let r = resolv_conf("nameserver 127.0.0.53\n", &Resolv::default(), false);
        assert_eq!(r, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }

    #[test]
    fn overrides_replace_the_hosts_lines() {
        let host = "search corp\nnameserver 10.1.2.3\noptions edns0\n";
        let servers = ["10.9.9.9".parse().unwrap()];
        let search = ["a.example".to_string(), "b.example".to_string()];
        let options = ["timeout:2".to_string()];
        let r = resolv_conf(
            host,
            &Resolv {
                servers: &servers,
                search: &search,
                options: &options,
            },
            false,
        );
        assert_eq!(
            r,
            "search a.example b.example\nnameserver 10.9.9.9\noptions timeout:2\n"
        );
        let r = resolv_conf(
            host,
            &Resolv {
                servers: &servers,
                ..Default::default()
            },
            false,
        );
        assert_eq!(r, "search corp\nnameserver 10.9.9.9\noptions edns0\n");
    }

    #[test]
    fn embedded_resolver_conf_is_dockers() {
        assert_eq!(
            resolv_conf_embedded("nameserver 10.1.2.3\n", &Resolv::default()),
            "nameserver 127.0.0.11\noptions ndots:0\n"
        );
        let host = "search corp\nnameserver 10.1.2.3\noptions edns0 ndots:3\n";
        assert_eq!(
            resolv_conf_embedded(host, &Resolv::default()),
            "search corp\nnameserver 127.0.0.11\noptions ndots:0 edns0\n"
        );
        let search = ["x.example".to_string()];
        let options = ["ndots:2".to_string(), "attempts:1".to_string()];
        assert_eq!(
            resolv_conf_embedded(
                host,
                &Resolv {
                    servers: &[],
                    search: &search,
                    options: &options
                }
            ),
            "search x.example\nnameserver 127.0.0.11\noptions ndots:2 attempts:1\n"
        );
    }
}
