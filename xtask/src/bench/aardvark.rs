//! aardvark-dns (podman's resolver) as a DNS bench peer, started by netavark
//! 1.4 for a bridge network with `dns_enabled`, inside a host namespace of
//! its own. It answers at the network's gateway, port 53.
//!
//! aardvark-dns 1.4 forwards unknown names to the servers of the
//! `/etc/resolv.conf` it sees. netavark is given a wrapper as its
//! aardvark binary (`-a`) that starts the real one in a mount namespace of
//! its own where `/etc/resolv.conf` is the bench's file naming only the
//! bench's upstream (127.0.0.53 in the host namespace); the bench checks
//! that file through `/proc/PID/root` before it sends any unknown name.

use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use berth_testkit::TestHost;
use berth_testkit::dns::Upstream;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::netavark;
use super::resolver::{self, CLIENT, Subject, TARGET};

/// Where Debian's `aardvark-dns` package puts the binary.
pub const BIN: &str = "/usr/lib/podman/aardvark-dns";
/// How to get it and the netavark that starts it.
pub const INSTALL: &str = "apt-get install netavark aardvark-dns";

/// What aardvark-dns must see as its resolv.conf.
const RESOLV_CONF: &str = "nameserver 127.0.0.53\n";
/// How long aardvark-dns gets to answer its first query.
const READY_WAIT: Duration = Duration::from_secs(10);

/// A container: its namespace and the options it was set up with.
struct Container {
    name: String,
    ns: PathBuf,
    opts: String,
}

/// A netavark host with aardvark-dns answering for the `bench` network.
pub struct Aardvark {
    // Fields drop in order: the upstream's thread before the namespace.
    upstream: Upstream,
    host: TestHost,
    config: PathBuf,
    wrapper: PathBuf,
    containers: Vec<Container>,
    /// Containers set up so far, for fresh ids and addresses.
    made: usize,
    /// aardvark-dns's pid, from its pid file.
    pid: Option<i32>,
    closed: bool,
}

impl Aardvark {
    /// A host namespace with the bench's upstream, and containers
    /// [`CLIENT`] and [`TARGET`] set up, aardvark-dns answering.
    pub fn new(berth: &Path) -> Result<Self> {
        let host = TestHost::without_daemon(berth);
        let config = host.root.join("netavark");
        fs::create_dir_all(&config).context("creating netavark's config directory")?;
        let resolv = host.root.join("aardvark-resolv.conf");
        fs::write(&resolv, RESOLV_CONF).context("writing aardvark's resolv.conf")?;
        let wrapper = host.root.join("aardvark-dns");
        fs::write(&wrapper, wrapper_script(&resolv))
            .and_then(|()| fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)))
            .context("writing the aardvark-dns wrapper")?;
        let upstream = resolver::upstream(&host.ns, SocketAddr::from(([127, 0, 0, 53], 53)));
        let mut a = Self {
            upstream,
            host,
            config,
            wrapper,
            containers: Vec::new(),
            made: 0,
            pid: None,
            closed: false,
        };
        // The first setup starts aardvark-dns. It says it is ready before it
        // handles SIGHUP (which the next setup sends), so wait until it
        // answers.
        a.prepare(CLIENT)?;
        a.setup(CLIENT)?;
        if !resolver::resolves(&a.containers[0].ns, a.server(), CLIENT, READY_WAIT)? {
            bail!(
                "aardvark-dns did not answer for {CLIENT} within {} s",
                READY_WAIT.as_secs()
            );
        }
        a.pid = Some(a.aardvark_pid().context("reading aardvark-dns's pid file")?);
        a.prepare(TARGET)?;
        a.setup(TARGET)?;
        Ok(a)
    }

    fn pid_file(&self) -> PathBuf {
        self.config.join("aardvark-dns").join("aardvark.pid")
    }

    fn aardvark_pid(&self) -> Result<i32> {
        let p = self.pid_file();
        let s = fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        s.trim()
            .parse()
            .with_context(|| format!("{}: {s:?} is not a pid", p.display()))
    }

    /// Whether `pid` is the aardvark-dns of this host (its command line
    /// names this host's config directory).
    fn is_ours(&self, pid: i32) -> bool {
        fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
            let c = String::from_utf8_lossy(&c);
            c.contains("aardvark-dns") && c.contains(&*self.config.to_string_lossy())
        })
    }

    /// `netavark setup` of container `name`'s namespace; the command's
    /// duration.
    fn setup(&mut self, name: &str) -> Result<Duration> {
        self.made += 1;
        let ns = self.host.root.join("netns").join(name);
        let opts = netavark::dns_options(self.made as u64, name, netavark::other_ip(self.made));
        let mut cmd = netavark::command(&self.config, Some(&self.wrapper), "setup", &ns);
        let (took, _) = super::timed_in(&self.host.ns, &mut cmd, &opts, &format!("netavark setup {name}"))?;
        self.containers.push(Container {
            name: name.to_owned(),
            ns,
            opts,
        });
        Ok(took)
    }

    /// `netavark teardown` of container `name`, and its namespace goes.
    fn teardown(&mut self, name: &str) -> Result<()> {
        let Some(i) = self.containers.iter().position(|c| c.name == name) else {
            bail!("no container {name}");
        };
        let c = self.containers.remove(i);
        let mut cmd = netavark::command(&self.config, Some(&self.wrapper), "teardown", &c.ns);
        let torn = super::timed_in(
            &self.host.ns,
            &mut cmd,
            &c.opts,
            &format!("netavark teardown {name}"),
        );
        let _ = nix::mount::umount2(&c.ns, nix::mount::MntFlags::MNT_DETACH);
        let _ = fs::remove_file(&c.ns);
        torn.map(drop)
    }

    /// Tears every container down (aardvark-dns exits with the last one)
    /// and ends aardvark-dns by its pid if it is still there; the host goes
    /// when dropped. Says what it had to do beyond the plan. Idempotent.
    fn shut(&mut self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.closed {
            return notes;
        }
        self.closed = true;
        let names: Vec<String> = self.containers.iter().map(|c| c.name.clone()).collect();
        for n in names {
            if let Err(e) = self.teardown(&n) {
                notes.push(format!("netavark teardown {n} FAILED: {e:#}"));
            }
        }
        let pids: Vec<i32> = self.pid.into_iter().chain(self.aardvark_pid().ok()).collect();
        for pid in pids {
            let deadline = Instant::now() + Duration::from_secs(2);
            while self.is_ours(pid) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            if self.is_ours(pid) {
                notes.push(format!(
                    "aardvark-dns (pid {pid}) was still running after the last teardown: killed"
                ));
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        notes
    }
}

/// A shell script netavark runs as aardvark-dns: the real one, in a mount
/// namespace of its own where `/etc/resolv.conf` is `resolv`.
fn wrapper_script(resolv: &Path) -> String {
    format!(
        "#!/bin/sh\n\
         # aardvark-dns for berth's DNS bench: forwards only to the bench's upstream.\n\
         exec unshare --mount --propagation private -- sh -c 'mount --bind \"$0\" /etc/resolv.conf && exec \"$@\"' \
         '{}' '{BIN}' \"$@\"\n",
        resolv.display()
    )
}

impl Subject for Aardvark {
    fn client_ns(&self) -> &Path {
        &self.containers[0].ns
    }

    fn server(&self) -> SocketAddr {
        SocketAddr::from((netavark::GATEWAY, 53))
    }

    fn target_ip(&self) -> IpAddr {
        IpAddr::V4(netavark::other_ip(2))
    }

    fn forwarding(&self) -> Result<(), String> {
        let pid = self
            .aardvark_pid()
            .map_err(|e| format!("cannot check where aardvark-dns forwards: {e:#}"))?;
        if Some(pid) != self.pid || !self.is_ours(pid) {
            return Err(format!(
                "aardvark-dns is not the one the bench started (pid {pid}, was {:?})",
                self.pid
            ));
        }
        let seen = fs::read_to_string(format!("/proc/{pid}/root/etc/resolv.conf"))
            .map_err(|e| format!("cannot read aardvark-dns's /etc/resolv.conf: {e}"))?;
        if seen != RESOLV_CONF {
            return Err(format!(
                "aardvark-dns sees an /etc/resolv.conf that is not the bench's: {seen:?}"
            ));
        }
        Ok(())
    }

    fn upstream_seen(&self) -> usize {
        self.upstream.seen()
    }

    fn prepare(&mut self, name: &str) -> Result<()> {
        let ns = self.host.root.join("netns").join(name);
        berth_testkit::make_netns(&ns).with_context(|| format!("creating {}", ns.display()))
    }

    fn run(&mut self, name: &str) -> Result<Duration> {
        self.setup(name)
    }

    fn remove(&mut self, name: &str) -> Result<()> {
        self.teardown(name)
    }

    fn close(mut self: Box<Self>) -> Vec<String> {
        self.shut()
    }
}

impl Drop for Aardvark {
    fn drop(&mut self) {
        for n in self.shut() {
            eprintln!("aardvark-dns cleanup: {n}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrapper_binds_the_bench_resolv_conf_and_passes_arguments_on() {
        let s = wrapper_script(Path::new("/tmp/x/resolv.conf"));
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains("unshare --mount --propagation private"));
        assert!(s.contains("'/tmp/x/resolv.conf' '/usr/lib/podman/aardvark-dns' \"$@\""));
    }
}
