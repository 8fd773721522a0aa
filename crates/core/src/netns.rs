//! Network namespaces held by file descriptor.
//!
//! A namespace belongs to an OS thread, and a tokio task may change threads
//! at every `.await`; so berth never calls `setns` on a runtime thread. It
//! enters a namespace on a short-lived scoped thread that does one blocking
//! thing (open a socket, write a sysctl, create and pin a namespace) and
//! exits. A netlink socket stays in the namespace where it was opened and
//! then works from any thread.

use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::{panic, thread};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

use crate::{Error, Result};

/// A network namespace, kept alive by an open fd on its nsfs file.
#[derive(Debug)]
pub struct Netns(OwnedFd);

impl Netns {
    /// Opens the namespace at `path` (`/proc/PID/ns/net`, `/run/netns/NAME`
    /// or a bind mount of berth's own).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        File::open(path)
            .map(|f| Self(f.into()))
            .map_err(|e| Error::Netns {
                what: "opening network namespace",
                path: Some(path.to_owned()),
                source: e,
            })
    }

    /// The namespace of the calling thread.
    pub fn current() -> Result<Self> {
        Self::open("/proc/thread-self/ns/net")
    }

    /// The inode that identifies this namespace (what `ip netns identify`
    /// and `/proc/PID/ns/net` links show).
    pub fn inode(&self) -> Result<u64> {
        let f = File::from(
            self.0
                .try_clone()
                .map_err(|e| Error::netns("duplicating namespace fd", e))?,
        );
        f.metadata()
            .map(|m| m.ino())
            .map_err(|e| Error::netns("reading namespace inode", e))
    }

    /// Runs `f` on a scoped thread inside this namespace; the caller never
    /// moves. Programs spawned from `f` start in this namespace too.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> io::Result<T> + Send) -> Result<T> {
        thread::scope(|s| {
            s.spawn(|| {
                setns(&self.0, CloneFlags::CLONE_NEWNET)
                    .map_err(|e| Error::netns("entering network namespace", e.into()))?;
                f().map_err(|e| Error::netns("working inside network namespace", e))
            })
            .join()
            .unwrap_or_else(|p| panic::resume_unwind(p))
        })
    }

    /// An rtnetlink handle whose socket lives in this namespace. Must be
    /// called inside a tokio runtime: the connection task is spawned on it.
    pub fn connect(&self) -> Result<rtnetlink::Handle> {
        let rt = tokio::runtime::Handle::current();
        let (conn, handle, _) = self.run(|| {
            let _rt = rt.enter(); // register the socket with the caller's reactor
            rtnetlink::new_connection()
        })?;
        rt.spawn(conn);
        Ok(handle)
    }

    /// Creates a new, empty network namespace held only by the returned fd
    /// (it goes away when that is closed and nothing else is in it), after
    /// running `f` inside it.
    pub fn run_in_new(f: impl FnOnce() -> io::Result<()> + Send) -> Result<Self> {
        thread::scope(|s| {
            s.spawn(|| -> Result<Self> {
                unshare(CloneFlags::CLONE_NEWNET)
                    .map_err(|e| Error::netns("creating network namespace", e.into()))?;
                f().map_err(|e| Error::netns("working inside a new network namespace", e))?;
                Self::current()
            })
            .join()
            .unwrap_or_else(|p| panic::resume_unwind(p))
        })
    }

    /// Like [`Netns::run_in_new`], and returns what `f` returned: a new
    /// namespace that only the returned fd holds until [`Netns::pin`].
    pub fn create_with<T: Send>(f: impl FnOnce() -> io::Result<T> + Send) -> Result<(Self, T)> {
        thread::scope(|s| {
            s.spawn(|| -> Result<(Self, T)> {
                unshare(CloneFlags::CLONE_NEWNET)
                    .map_err(|e| Error::netns("creating network namespace", e.into()))?;
                let t = f().map_err(|e| Error::netns("setting up the new network namespace", e))?;
                Ok((Self::current()?, t))
            })
            .join()
            .unwrap_or_else(|p| panic::resume_unwind(p))
        })
    }

    /// Pins this namespace with a bind mount of its fd at `path` (as
    /// `ip netns attach` does), so that it outlives the fd and every process
    /// in it; [`Netns::unpin`] undoes it. Nothing is left behind on failure.
    pub fn pin(&self, path: &Path) -> Result<()> {
        let ctx = |what, e| Error::Netns {
            what,
            path: Some(path.to_owned()),
            source: e,
        };
        File::create(path).map_err(|e| ctx("creating namespace file", e))?;
        let fd = format!("/proc/self/fd/{}", self.0.as_raw_fd());
        mount(
            Some(fd.as_str()),
            path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| {
            let _ = fs::remove_file(path);
            ctx("pinning network namespace at", e.into())
        })
    }

    /// Creates a new, empty network namespace and pins it with a bind mount
    /// at `path` (as `ip netns add` does under `/run/netns`), so that it
    /// outlives every process in it. Returns it open.
    pub fn create_pinned(path: &Path) -> Result<Self> {
        Self::create_pinned_with(path, || Ok(())).map(|(ns, ())| ns)
    }

    /// Like [`Netns::create_pinned`], and runs `f` inside the new namespace
    /// on the same short-lived thread (to open sockets there without
    /// entering it again). Nothing is left behind when `f` fails.
    pub fn create_pinned_with<T: Send>(
        path: &Path,
        f: impl FnOnce() -> io::Result<T> + Send,
    ) -> Result<(Self, T)> {
        let ctx = |what, e| Error::Netns {
            what,
            path: Some(path.to_owned()),
            source: e,
        };
        File::create(path).map_err(|e| ctx("creating namespace file", e))?;
        let made = thread::scope(|s| {
            s.spawn(|| -> Result<(Self, T)> {
                unshare(CloneFlags::CLONE_NEWNET)
                    .map_err(|e| Error::netns("creating network namespace", e.into()))?;
                mount(
                    Some("/proc/thread-self/ns/net"),
                    path,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| ctx("pinning network namespace at", e.into()))?;
                let ns = Self::current()?;
                let extra = f().map_err(|e| Error::netns("setting up the new network namespace", e));
                match extra {
                    Ok(t) => Ok((ns, t)),
                    Err(e) => {
                        let _ = umount2(path, MntFlags::MNT_DETACH);
                        Err(e)
                    }
                }
            })
            .join()
            .unwrap_or_else(|p| panic::resume_unwind(p))
        });
        if made.is_err() {
            let _ = fs::remove_file(path);
        }
        made
    }

    /// Unpins a namespace made by [`Netns::create_pinned`]: lazily unmounts
    /// and removes `path`. The namespace is freed once nothing else holds
    /// it. Idempotent: a path that is already gone is success.
    pub fn unpin(path: &Path) -> Result<()> {
        match umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => {
                return Err(Error::Netns {
                    what: "unmounting network namespace",
                    path: Some(path.to_owned()),
                    source: e.into(),
                });
            }
        }
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Netns {
                what: "removing namespace file",
                path: Some(path.to_owned()),
                source: e,
            }),
        }
    }

    /// True when the calling thread is in this namespace.
    pub fn is_current(&self) -> bool {
        let here = fs::metadata("/proc/thread-self/ns/net").map(|m| (m.dev(), m.ino()));
        let this = nix::sys::stat::fstat(&self.0).map(|s| (s.st_dev, s.st_ino));
        matches!((here, this), (Ok(a), Ok(b)) if a == b)
    }

    /// Writes `value` to `/proc/sys/KEY` inside this namespace, like
    /// `ip netns exec NS sysctl -w KEY=VALUE` (`key` uses `/`, e.g.
    /// `net/ipv4/ip_forward`). Skips the write when the value is already set.
    /// Writes directly when the caller already is in this namespace (the
    /// daemon in its host), else from a short-lived thread inside it.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = PathBuf::from("/proc/sys").join(key);
        if self.is_current() {
            return write_sysctl(&path, value).map_err(|e| sysctl_error(key, value, e));
        }
        self.run(|| write_sysctl(&path, value)).map_err(|e| match e {
            Error::Netns { source, .. } => sysctl_error(key, value, source),
            other => other,
        })
    }
}

fn sysctl_error(key: &str, value: &str, source: io::Error) -> Error {
    Error::Sysctl {
        key: key.to_owned(),
        value: value.to_owned(),
        source,
    }
}

/// Writes a sysctl in the calling thread's namespace, skipping the write
/// when the value is already there.
pub fn write_sysctl(path: &Path, value: &str) -> io::Result<()> {
    if fs::read_to_string(path).is_ok_and(|cur| cur.trim() == value) {
        return Ok(());
    }
    fs::write(path, value)
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for Netns {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}
