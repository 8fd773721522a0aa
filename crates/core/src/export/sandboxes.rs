//! The sandboxes a plugin has open: a sandbox's netlink socket is opened
//! once, by one long-lived thread of the plugin, and kept while an
//! endpoint of the plugin is in it, and after its last one left until its
//! pin is gone (at most [`MAX_IDLE`] of those).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};
use std::{io, thread};

use nix::sched::{CloneFlags, setns};

use crate::{Error, Netns, Result, Sandbox};

/// A sandbox this plugin has open, and the endpoints of this plugin in it.
struct Open {
    /// `(st_dev, st_ino)` of the namespace when it was opened: a path that
    /// now names another namespace is opened again.
    id: (u64, u64),
    sandbox: Arc<Sandbox>,
    endpoints: HashSet<String>,
    /// When its last endpoint left; `None` while it has endpoints.
    idle_since: Option<Instant>,
}

/// How often the sweeper looks for sandboxes whose pin went away.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// At most this many sandboxes without an endpoint of this plugin stay
/// open; past it the one idle longest is closed.
const MAX_IDLE: usize = 32;

/// Work for the [`Opener`]'s thread, given the thread's own namespace to
/// go back to; answers whether it got back.
type Job = Box<dyn FnOnce(&OwnedFd) -> bool + Send>;

/// One long-lived thread that opens sockets inside sandboxes. Opening a
/// netlink socket inside a namespace takes a thread that enters it; a new
/// thread per sandbox (what [`Netns::connect`] does) costs about 60 µs,
/// most of what a plugin's attach costs over a built-in driver's. This
/// thread enters the sandbox, runs the job and goes back to the host's
/// namespace; a thread that cannot go back ends, and the next job starts
/// another. It never runs tokio tasks, so no task ever sees it elsewhere.
#[derive(Default)]
struct Opener(Mutex<Option<mpsc::Sender<Job>>>);

impl Opener {
    fn spawn() -> io::Result<mpsc::Sender<Job>> {
        let (tx, rx) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("berth-plugin-netns".into())
            .spawn(move || {
                // Born in the namespace of the thread that made it: the host's.
                let Ok(home) = File::open("/proc/thread-self/ns/net").map(OwnedFd::from) else {
                    return;
                };
                for job in rx {
                    if !job(&home) {
                        return;
                    }
                }
            })?;
        Ok(tx)
    }

    /// Runs `f` inside `ns` on the opener's thread; the caller's task
    /// waits for it without blocking its thread.
    async fn run<T: Send + 'static>(
        &self,
        ns: &Netns,
        f: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> Result<T> {
        let target = ns
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::netns("duplicating a namespace fd", e))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |home| {
            let r = setns(&target, CloneFlags::CLONE_NEWNET)
                .map_err(io::Error::from)
                .and_then(|()| f());
            let back = setns(home, CloneFlags::CLONE_NEWNET).is_ok();
            let _ = tx.send(r);
            back
        });
        {
            let mut sender = self.0.lock().unwrap_or_else(|p| p.into_inner());
            let job = match sender.as_ref() {
                Some(s) => s.send(job).err().map(|mpsc::SendError(job)| job), // the thread ended
                None => Some(job),
            };
            if let Some(job) = job {
                let s =
                    Self::spawn().map_err(|e| Error::netns("starting the plugin's namespace thread", e))?;
                s.send(job)
                    .map_err(|_| Error::NamespaceThreadEnded { at_once: true })?;
                *sender = Some(s);
            }
        }
        rx.await
            .map_err(|_| Error::NamespaceThreadEnded { at_once: false })?
            .map_err(|e| Error::netns("working inside the sandbox's network namespace", e))
    }
}

fn ns_id(path: &str) -> Result<(u64, u64)> {
    std::fs::metadata(path)
        .map(|m| (m.dev(), m.ino()))
        .map_err(|e| Error::Netns {
            what: "opening sandbox",
            path: Some(path.into()),
            source: e,
        })
}

/// The sandboxes one plugin has open, by path.
#[derive(Default)]
pub(super) struct Sandboxes {
    open: Mutex<HashMap<String, Open>>,
    /// Whether the sweeper task runs (it ends when nothing is open).
    sweeping: AtomicBool,
    opener: Opener,
}

impl Sandboxes {
    /// The sandbox at `key`, opened (or taken from the cache) and held for
    /// `endpoint`; its netlink connection runs on the plugin's runtime `rt`.
    pub(super) async fn get(
        &'static self,
        key: &str,
        endpoint: &str,
        rt: &tokio::runtime::Handle,
    ) -> Result<Arc<Sandbox>> {
        let id = ns_id(key)?;
        {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(o) = open.get_mut(key)
                && o.id == id
            {
                o.endpoints.insert(endpoint.to_owned());
                o.idle_since = None;
                return Ok(o.sandbox.clone());
            }
        }
        let ns = Netns::open(key)?;
        // What `Netns::connect` does, on the opener's thread instead of a
        // new one.
        let rt = rt.clone();
        let inside = rt.clone();
        let (conn, handle, _) = self
            .opener
            .run(&ns, move || {
                let _rt = inside.enter(); // register the socket with the plugin's reactor
                rtnetlink::new_connection()
            })
            .await?;
        rt.spawn(conn);
        let sandbox = Arc::new(Sandbox {
            ns,
            handle,
            path: key.into(),
        });
        // A path that now names another namespace is replaced here.
        self.open.lock().unwrap_or_else(|p| p.into_inner()).insert(
            key.to_owned(),
            Open {
                id,
                sandbox: sandbox.clone(),
                endpoints: HashSet::from([endpoint.to_owned()]),
                idle_since: None,
            },
        );
        if !self.sweeping.swap(true, Ordering::SeqCst) {
            rt.spawn(self.sweeper());
        }
        Ok(sandbox)
    }

    /// Lets go of `endpoint`'s hold on its sandbox. A sandbox left without
    /// an endpoint of this plugin stays open (its socket is what an attach
    /// of the same container would otherwise open again, about a tenth of
    /// a bridge attach) until the sweeper sees that its pin is gone, that
    /// is, until the engine removed the container: the plugin keeps a
    /// removed container's namespace alive for at most [`SWEEP_EVERY`].
    /// At most [`MAX_IDLE`] stay open that way.
    pub(super) fn release(&self, endpoint: &str) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        for o in open.values_mut() {
            if o.endpoints.remove(endpoint) && o.endpoints.is_empty() {
                o.idle_since = Some(now);
            }
        }
        let mut idle: Vec<(Instant, String)> = open
            .iter()
            .filter_map(|(k, o)| o.idle_since.map(|t| (t, k.clone())))
            .collect();
        if idle.len() > MAX_IDLE {
            idle.sort();
            for (_, k) in &idle[..idle.len() - MAX_IDLE] {
                open.remove(k);
            }
        }
    }

    /// Closes the sandboxes whose path no longer names the namespace that
    /// was opened (the engine removed the container, or a crash left an
    /// endpoint without its `Leave`), every [`SWEEP_EVERY`], while any is
    /// open. The paths are checked without holding the lock.
    async fn sweeper(&'static self) {
        loop {
            tokio::time::sleep(SWEEP_EVERY).await;
            let seen: Vec<(String, (u64, u64))> = {
                let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
                open.iter().map(|(k, o)| (k.clone(), o.id)).collect()
            };
            let gone: Vec<(String, (u64, u64))> = seen
                .into_iter()
                .filter(|(k, id)| ns_id(k).ok() != Some(*id))
                .collect();
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            for (k, id) in gone {
                if open.get(&k).is_some_and(|o| o.id == id) {
                    open.remove(&k);
                }
            }
            if open.is_empty() {
                // Under the lock: `sandbox` inserts under it, then starts a
                // sweeper unless this flag says one runs.
                self.sweeping.store(false, Ordering::SeqCst);
                return;
            }
        }
    }
}
