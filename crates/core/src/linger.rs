//! Link deletions that answer early: [`delete`] returns once the kernel
//! has unlisted a link, and the rest of the deletion (the kernel waits
//! for RCU grace periods and for the last references, 10–40 ms for a
//! veth here) goes on on a thread of its own. [`Lingering`] knows which
//! deletions are still under way, so that what a link held (an address)
//! is given out again only once the link is gone from the kernel.
//!
//! Measured here (kernel 6.18, a veth with its peer in another
//! namespace): `RTM_DELLINK` answered after 13–25 ms; its `RTM_DELLINK`
//! notification, sent once both ends are unlisted and their addresses
//! dropped, came after 0.4–0.6 ms. The kernel unlists both ends of a veth
//! in one batch (`unregister_netdevice_many`), so once the notification
//! for one end is out neither end can be found, by name or index, in
//! either namespace; and the thread that sent the request holds no lock
//! while it waits (`netdev_run_todo` runs after `rtnl_unlock`).
//!
//! A process killed while the request is inside the kernel exits only
//! once the kernel is done with it: nothing half-deleted outlives it.

use std::collections::BTreeSet;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use netlink_sys::protocols::NETLINK_ROUTE;
use netlink_sys::{Socket, SocketAddr};
use tokio::io::unix::AsyncFd;
use tokio::sync::{Notify, oneshot};

use crate::netns::Netns;
use crate::{Error, Result};

const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
/// `RTMGRP_LINK`: the multicast group of link notifications.
const RTMGRP_LINK: u32 = 1;
/// Header (16 bytes) and `struct ifinfomsg` (16 bytes).
const REQUEST_LEN: usize = 32;
/// How long to wait for the notification before asking the kernel
/// whether the link is still there (a full receive queue drops
/// notifications; the kernel then says `ENOBUFS`).
const RECHECK: Duration = Duration::from_millis(20);

/// The link deletions still under way in the kernel, each past the
/// point where its link can be seen.
#[derive(Debug, Default)]
pub struct Lingering {
    next: AtomicU64,
    open: Mutex<BTreeSet<u64>>,
    changed: Notify,
}

/// One piece of work a [`Lingering`] counts, until it is dropped.
#[derive(Debug)]
pub struct Hold {
    owner: Arc<Lingering>,
    id: u64,
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.owner.end(self.id);
    }
}

impl Lingering {
    /// Counts one more piece of work under way, until the returned
    /// [`Hold`] is dropped.
    pub fn hold(self: &Arc<Self>) -> Hold {
        Hold {
            owner: self.clone(),
            id: self.begin(),
        }
    }

    fn begin(&self) -> u64 {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        open.insert(id);
        id
    }

    fn end(&self, id: u64) {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        self.changed.notify_waiters();
    }

    /// How many deletions are under way.
    pub fn pending(&self) -> usize {
        self.open.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// A mark of now: [`Lingering::done_before`] says when every piece
    /// of work begun before it is done.
    pub fn mark(&self) -> u64 {
        let _open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        self.next.load(Ordering::SeqCst)
    }

    /// Whether every piece of work begun before `mark` is done.
    pub fn done_before(&self, mark: u64) -> bool {
        let oldest = self
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .first()
            .copied();
        oldest.is_none_or(|id| id >= mark)
    }

    /// Returns once every piece of work begun before this call is done
    /// (later ones are not waited for).
    pub async fn settled(&self) {
        let upto = self.mark();
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.done_before(upto) {
                return;
            }
            changed.await;
        }
    }
}

fn request(ty: u16, flags: u16, seq: u32, index: u32) -> [u8; REQUEST_LEN] {
    let mut b = [0u8; REQUEST_LEN];
    b[0..4].copy_from_slice(&(REQUEST_LEN as u32).to_ne_bytes());
    b[4..6].copy_from_slice(&ty.to_ne_bytes());
    b[6..8].copy_from_slice(&flags.to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
    // ifinfomsg: family, pad, type, then the index at 16 + 4.
    b[20..24].copy_from_slice(&index.to_ne_bytes());
    b
}

/// The messages of one datagram: type and body (after the header).
fn messages(buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.len() < 16 {
            return None;
        }
        let len = u32::from_ne_bytes(rest[0..4].try_into().ok()?) as usize;
        let ty = u16::from_ne_bytes(rest[4..6].try_into().ok()?);
        if len < 16 || len > rest.len() {
            return None;
        }
        let body = &rest[16..len];
        rest = &rest[(len + 3) & !3..];
        Some((ty, body))
    })
}

/// The errno of an `NLMSG_ERROR` body (0 for an ack).
fn errno(body: &[u8]) -> Option<i32> {
    Some(-i32::from_ne_bytes(body.get(0..4)?.try_into().ok()?))
}

/// Sends `RTM_DELLINK` for `index` and waits for the kernel's answer
/// (blocking: the kernel does the whole deletion inside `sendmsg`).
fn delete_now(sock: &Socket, index: u32) -> io::Result<()> {
    sock.send(&request(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, 1, index), 0)?;
    let mut buf = vec![0u8; 8192];
    loop {
        let n = sock.recv(&mut &mut buf[..], 0)?;
        for (ty, body) in messages(&buf[..n]) {
            if ty == NLMSG_ERROR {
                return match errno(body) {
                    Some(0) | Some(libc::ENODEV) => Ok(()),
                    Some(e) => Err(io::Error::from_raw_os_error(e)),
                    None => Err(io::Error::other("short netlink error message")),
                };
            }
        }
    }
}

/// Whether the link `index` is still listed, asked on `sock` (blocking,
/// answered at once).
fn listed(sock: &Socket, index: u32) -> io::Result<bool> {
    sock.send(&request(RTM_GETLINK, NLM_F_REQUEST, 2, index), 0)?;
    let mut buf = vec![0u8; 16384];
    let n = sock.recv(&mut &mut buf[..], 0)?;
    match messages(&buf[..n]).next() {
        Some((NLMSG_ERROR, body)) => match errno(body) {
            Some(libc::ENODEV) => Ok(false),
            Some(0) => Ok(true),
            Some(e) => Err(io::Error::from_raw_os_error(e)),
            None => Err(io::Error::other("short netlink error message")),
        },
        _ => Ok(true),
    }
}

/// Drains `mon`; true when it carried `RTM_DELLINK` for `index`.
fn drain(mon: &Socket, index: u32, buf: &mut [u8]) -> io::Result<bool> {
    let mut seen = false;
    loop {
        match mon.recv(&mut &mut buf[..], libc::MSG_DONTWAIT) {
            Ok(n) => {
                seen |= messages(&buf[..n]).any(|(ty, body)| {
                    ty == RTM_DELLINK
                        && body
                            .get(4..8)
                            .map(|b| u32::from_ne_bytes(b.try_into().unwrap_or([0; 4])))
                            == Some(index)
                });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(seen),
            Err(e) => return Err(e),
        }
    }
}

struct Fd(RawFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// Deletes the link `index` of the namespace `ns`, like `ip link del`,
/// and returns as soon as the kernel has unlisted it (and, for a veth,
/// its peer); the kernel finishes the deletion on a thread that
/// `lingering` counts until it is done. Idempotent: a link already gone
/// is success. An error of the kernel's that comes before the link is
/// unlisted is this call's error; one that comes after is logged.
pub async fn delete(ns: &Netns, lingering: &Arc<Lingering>, index: u32) -> Result<()> {
    let open = || -> io::Result<(Socket, Socket)> {
        let mut mon = Socket::new(NETLINK_ROUTE)?;
        mon.bind(&SocketAddr::new(0, RTMGRP_LINK))?;
        mon.set_non_blocking(true)?;
        let mut del = Socket::new(NETLINK_ROUTE)?;
        del.bind_auto()?;
        Ok((mon, del))
    };
    let (mon, del) = if ns.is_current() {
        open().map_err(|e| Error::netns("opening netlink sockets", e))?
    } else {
        ns.run(open)?
    };
    let what = || format!("deleting link {index}");
    let (tx, mut done) = oneshot::channel();
    let hold = lingering.hold();
    let spawned = std::thread::Builder::new()
        .name("berth-unlink".into())
        .spawn(move || {
            let r = delete_now(&del, index);
            drop(hold);
            if let Err(e) = tx.send(r)
                && let Err(e) = e
            {
                tracing::warn!("deleting link {index}, after it was unlisted: {e}");
            }
        });
    if let Err(e) = spawned {
        return Err(Error::Io {
            what: what(),
            source: e,
        });
    }
    // SAFETY: `mon` owns the fd and outlives `fd` (declared after it, so
    // dropped first), and nothing closes the fd while `fd` holds it.
    let fd = match unsafe { AsyncFd::register(Fd(mon.as_raw_fd())) } {
        Ok(fd) => fd,
        // No reactor for it: wait for the whole deletion.
        Err(_) => {
            return match done.await {
                Ok(r) => r.map_err(|source| Error::Netlink { what: what(), source }),
                Err(_) => Ok(()),
            };
        }
    };
    let mut buf = vec![0u8; 65536];
    let check = || -> io::Result<bool> {
        let mut q = Socket::new(NETLINK_ROUTE)?;
        q.bind_auto()?;
        listed(&q, index)
    };
    loop {
        tokio::select! {
            r = &mut done => {
                // The whole deletion is done (or failed before the link
                // was unlisted).
                return match r {
                    Ok(r) => r.map_err(|source| Error::Netlink { what: what(), source }),
                    Err(_) => Ok(()),
                };
            }
            ready = fd.readable() => {
                let Ok(mut guard) = ready else { continue };
                match drain(&mon, index, &mut buf) {
                    Ok(true) => return Ok(()),
                    Ok(false) => guard.clear_ready(),
                    // Notifications were lost (ENOBUFS): ask the kernel.
                    Err(_) => {
                        guard.clear_ready();
                        if ns.is_current() && matches!(check(), Ok(false)) {
                            return Ok(());
                        }
                    }
                }
            }
            () = tokio::time::sleep(RECHECK) => {
                if ns.is_current() && matches!(check(), Ok(false)) {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_are_parsed() {
        let r = request(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, 7, 42);
        let msgs: Vec<_> = messages(&r).collect();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].0, RTM_DELLINK);
        assert_eq!(u32::from_ne_bytes(msgs[0].1[4..8].try_into().unwrap()), 42);
        let mut err = request(NLMSG_ERROR, 0, 7, 0);
        err[16..20].copy_from_slice(&(-libc::ENODEV).to_ne_bytes());
        let (ty, body) = messages(&err).next().unwrap();
        assert_eq!((ty, errno(body)), (NLMSG_ERROR, Some(libc::ENODEV)));
    }

    #[tokio::test]
    async fn settled_waits_only_for_earlier_deletions() {
        let l = Arc::new(Lingering::default());
        l.settled().await;
        let a = l.hold();
        let waiting = tokio::spawn({
            let l = l.clone();
            async move { l.settled().await }
        });
        tokio::task::yield_now().await;
        let b = l.hold();
        assert!(!waiting.is_finished());
        drop(a);
        waiting.await.unwrap();
        assert_eq!(l.pending(), 1);
        drop(b);
        assert_eq!(l.pending(), 0);
    }
}
