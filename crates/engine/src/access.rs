//! Who may touch what the daemon keeps.
//!
//! - The data root is 0700 and the store, the lock files and container
//!   logs are 0600: records and logs are root's alone. Files an older
//!   daemon left with looser modes are fixed at start.
//! - The exec root is 0711: nothing in it can be listed by others, but the
//!   socket in it can be reached by those its own mode lets in (0660, the
//!   daemon's group: see `api::listen`).
//! - Each root is locked (`berth.lock`, `flock`) by the daemon that uses
//!   it: a second daemon on the same data root, or on the same exec root
//!   (whose sandboxes its restart sweep would remove as strays), refuses
//!   to start and names the pid holding it.

use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::engine::Config;
use crate::{Error, Result};

/// Which root a lock is on.
#[derive(Clone, Copy)]
pub(crate) enum Root {
    Data,
    Exec,
}

/// Mode of the data root.
const DATA_ROOT_MODE: u32 = 0o700;
/// Mode of the exec root: others may reach the socket by its path.
const EXEC_ROOT_MODE: u32 = 0o711;
/// Mode of the store, locks and logs.
pub(crate) const FILE_MODE: u32 = 0o600;

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(format!("setting the mode of {} to {mode:o}", path.display()), e))
}

/// Creates `dir` (and its parents) if missing, and gives it `mode`.
fn make_dir(dir: &Path, mode: u32) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    set_mode(dir, mode)
}

/// Makes the data root, takes its lock, then the same for the exec root
/// (once, when both are one directory); nothing else touches either before
/// its lock is held. Returns the locks.
pub(crate) fn lock_roots(cfg: &Config) -> Result<Vec<File>> {
    make_dir(&cfg.data_root, DATA_ROOT_MODE)?;
    let mut locks = vec![lock(&cfg.data_root, Root::Data)?];
    make_dir(&cfg.exec_root, EXEC_ROOT_MODE)?;
    let same = match (fs::canonicalize(&cfg.data_root), fs::canonicalize(&cfg.exec_root)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same {
        locks.push(lock(&cfg.exec_root, Root::Exec)?);
    }
    Ok(locks)
}

/// Takes a root's lock, or says who holds it.
fn lock(root: &Path, which: Root) -> Result<File> {
    let path = root.join("berth.lock");
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    // SAFETY: flock on an fd we own; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let holder = fs::read_to_string(&path).unwrap_or_default();
        let pid = Some(holder.trim().to_owned()).filter(|p| !p.is_empty());
        return Err(match which {
            Root::Data => Error::DaemonRunning {
                data_root: root.to_owned(),
                pid,
            },
            Root::Exec => Error::ExecRootInUse {
                exec_root: root.to_owned(),
                pid,
            },
        });
    }
    let write = |e| Error::io(format!("writing {}", path.display()), e);
    file.set_len(0).map_err(write)?;
    fs::write(&path, format!("{}\n", std::process::id())).map_err(write)?;
    set_mode(&path, FILE_MODE)?;
    Ok(file)
}

/// Gives the files a daemon (or an older one) left in its roots their
/// modes: container logs and the auto-started daemon's log 0600. The
/// store's own file is the store's business.
pub(crate) fn fix_modes(cfg: &Config) {
    let mut logs = vec![cfg.exec_root.join("berth.log")];
    if let Ok(rd) = fs::read_dir(cfg.data_root.join("containers")) {
        logs.extend(rd.flatten().map(|e| e.path().join("container.log")));
    }
    for log in logs {
        match fs::symlink_metadata(&log) {
            Ok(m) if m.is_file() && m.permissions().mode() & 0o777 != FILE_MODE => {
                if let Err(e) = set_mode(&log, FILE_MODE) {
                    tracing::warn!("{}", e.chain());
                }
            }
            _ => {}
        }
    }
}

/// Creates a container's log, empty and 0600, unless it exists.
pub(crate) fn create_log(path: &Path) -> Result<()> {
    match fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io(format!("creating {}", path.display()), e)),
    }
}
