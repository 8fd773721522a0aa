//! The generated `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname`.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;

use berth_core::{Error, Result};

/// Writes `content` over the file at `path`, keeping its inode: a running
/// container has it bind-mounted, so it must be changed in place, never
/// replaced. The file is never truncated to zero first: ext4 flushes a
/// file emptied that way when it is closed (`auto_da_alloc`), which costs
/// a disk write per container change.
pub fn write_in_place(path: &Path, content: &[u8]) -> Result<()> {
    let err = |e| Error::kernel(format!("writing {}", path.display()), e);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(err)?;
    f.write_all(content).map_err(err)?;
    f.set_len(content.len() as u64).map_err(err)
}

/// `/etc/hosts` as Docker writes it: the localhost lines, then the
/// container's own addresses with its hostname.
pub fn hosts(hostname: &str, addresses: &[IpAddr]) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for a in addresses {
        s.push_str(&format!("{a}\t{hostname}\n"));
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

/// The host's resolv.conf with loopback nameservers removed (they cannot
/// be reached from a container's namespace), as Docker does on the default
/// bridge; when none remain, Google's public servers, as Docker does.
/// `ipv6` keeps IPv6 servers (only useful when the container has IPv6).
pub fn resolv_conf(host: &str, ipv6: bool) -> String {
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let Some(Ok(ip)) = words
                .next()
                .map(|w| w.split('%').next().unwrap_or(w).parse::<IpAddr>())
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
    out
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
    fn hosts_has_dockers_lines() {
        let h = hosts("296a215ab471", &["172.18.0.3".parse().unwrap()]);
        let lines: Vec<&str> = h.lines().collect();
        assert_eq!(lines[0], "127.0.0.1\tlocalhost");
        assert_eq!(lines[1], "::1\tlocalhost ip6-localhost ip6-loopback");
        assert_eq!(lines[6], "172.18.0.3\t296a215ab471");
        assert_eq!(lines.len(), 7);
    }

    #[test]
    fn loopback_servers_are_dropped() {
        let host = "# comment\nsearch example.org\nnameserver 127.0.0.53\nnameserver 10.1.2.3\nnameserver ::1\noptions edns0\n";
        assert_eq!(
            resolv_conf(host, false),
            "# comment\nsearch example.org\nnameserver 10.1.2.3\noptions edns0\n"
        );
    }

    #[test]
    fn no_servers_left_means_dockers_fallback() {
        let r = resolv_conf("nameserver 127.0.0.53\n", false);
        assert_eq!(r, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
}
