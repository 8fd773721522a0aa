//! SIGINT and SIGTERM: everything this process made goes, then it ends by
//! the same signal.
//!
//! The handler only writes the signal's number to a pipe (all a signal
//! handler may safely do); a thread of its own reads it and cleans up:
//! 1. it marks the process interrupted: from then on every thread that
//!    reaches a [`checkpoint`] (each spawn into a test namespace does)
//!    stops there for good, so nothing new is made behind the cleanup;
//! 2. it passes the signal on to the children registered with
//!    [`forward`] (`cargo nextest`, qemu, `cargo fuzz`) and waits for them
//!    to end (at most [`CHILD_WAIT`], then it kills them);
//! 3. it runs the hooks registered with [`on_interrupt`] (a bench's
//!    dockerd, stopped through its API), newest first;
//! 4. it removes every root registered with [`track`], newest first, and
//!    the roots left by the children it waited for ([`super::sweep`]);
//! 5. it restores the signal's default action and raises it, so that
//!    whoever started the process sees it end by that signal.

use std::cell::Cell;
use std::fs::File;
use std::io::Read;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Mutex, Once, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, kill, raise, sigaction};
use nix::unistd::Pid;

use super::{remove_root, sweep};

/// How long the children that got the signal have to end before they are
/// killed.
pub const CHILD_WAIT: Duration = Duration::from_secs(60);

/// The pipe's writing end, for the handler (-1 until [`install`]).
static PIPE: AtomicI32 = AtomicI32::new(-1);
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static NEXT: AtomicU64 = AtomicU64::new(1);

type HookFn = Box<dyn FnOnce() + Send>;

static ROOTS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static CHILDREN: Mutex<Vec<(u64, i32)>> = Mutex::new(Vec::new());
static HOOKS: Mutex<Vec<(u64, HookFn)>> = Mutex::new(Vec::new());

thread_local! {
    /// The cleanup thread never stops at a checkpoint: its hooks spawn too.
    static CLEANER: Cell<bool> = const { Cell::new(false) };
}

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = PIPE.load(Ordering::Relaxed);
    let b = sig as u8;
    // SAFETY: write(2) is async-signal-safe; `b` outlives the call. A full
    // pipe (many signals) loses a byte, which is harmless: one is enough.
    unsafe {
        libc::write(fd, (&raw const b).cast(), 1);
    }
}

/// Installs the SIGINT and SIGTERM handlers and the cleanup thread, once
/// per process; later calls do nothing. Until then, the signals end the
/// process at once, as by default.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let (read, write) = match nix::unistd::pipe() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("berth-testkit: no cleanup on SIGINT/SIGTERM (pipe: {e})");
                return;
            }
        };
        PIPE.store(write.into_raw_fd(), Ordering::Relaxed);
        let read = read.into_raw_fd();
        let spawned = thread::Builder::new()
            .name("berth-cleanup".into())
            .spawn(move || {
                // SAFETY: the pipe's reading end is ours alone from here on.
                let mut pipe = unsafe { File::from_raw_fd(read) };
                let mut b = [0u8; 1];
                if pipe.read_exact(&mut b).is_ok() {
                    CLEANER.with(|c| c.set(true));
                    clean_up_and_end(i32::from(b[0]));
                }
            });
        if let Err(e) = spawned {
            eprintln!("berth-testkit: no cleanup on SIGINT/SIGTERM (thread: {e})");
            return;
        }
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        for sig in [Signal::SIGINT, Signal::SIGTERM] {
            // SAFETY: the handler only calls write(2) on a pipe.
            if let Err(e) = unsafe { sigaction(sig, &action) } {
                eprintln!("berth-testkit: no cleanup on {sig} ({e})");
            }
        }
    });
}

/// Whether a SIGINT or SIGTERM arrived.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Stops the calling thread for good once the process is being cleaned up
/// after a signal (the cleanup thread itself goes on): whatever it was
/// about to start would escape the cleanup.
pub fn checkpoint() {
    if interrupted() && !CLEANER.with(Cell::get) {
        // The process ends when the cleanup is done.
        loop {
            thread::park();
        }
    }
}

/// Registers a test root to remove on SIGINT or SIGTERM.
pub fn track(root: &Path) {
    let mut roots = ROOTS.lock().unwrap_or_else(PoisonError::into_inner);
    if !roots.iter().any(|r| r == root) {
        roots.push(root.to_owned());
    }
}

/// Forgets a root (its owner removed it).
pub fn untrack(root: &Path) {
    ROOTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .retain(|r| r != root);
}

/// A child registered with [`forward`]; dropping it forgets the child.
#[derive(Debug)]
pub struct Forwarded(u64);

impl Drop for Forwarded {
    fn drop(&mut self) {
        CHILDREN
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(id, _)| *id != self.0);
    }
}

/// Passes SIGINT and SIGTERM on to the child `pid` (a program that cleans
/// up after itself, such as `cargo nextest`), and waits for it before
/// cleaning up, as long as the guard lives.
pub fn forward(pid: u32) -> Forwarded {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    CHILDREN
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((id, pid as i32));
    Forwarded(id)
}

/// A hook registered with [`on_interrupt`]; dropping it unregisters it.
#[derive(Debug)]
pub struct Hook(u64);

impl Drop for Hook {
    fn drop(&mut self) {
        HOOKS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(id, _)| *id != self.0);
    }
}

/// Runs `f` on the cleanup thread if a SIGINT or SIGTERM arrives while the
/// returned guard lives, before the tracked roots are removed. For what a
/// root's removal cannot undo by itself (a dockerd's containers, changes
/// to the machine).
pub fn on_interrupt(f: impl FnOnce() + Send + 'static) -> Hook {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    HOOKS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((id, Box::new(f)));
    Hook(id)
}

/// Whether `pid` has ended (gone, or a zombie waiting to be reaped).
fn ended(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    match stat.rfind(')') {
        None => true,
        Some(at) => matches!(stat[at + 1..].trim_start().chars().next(), Some('Z' | 'X') | None),
    }
}

fn say(line: &str) {
    eprintln!("cleanup: {line}");
}

fn clean_up_and_end(sig: i32) {
    INTERRUPTED.store(true, Ordering::SeqCst);
    let signal = Signal::try_from(sig).unwrap_or(Signal::SIGTERM);
    say(&format!("{signal} received: ending what this run started"));
    let children: Vec<i32> = CHILDREN
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|(_, p)| *p)
        .collect();
    for pid in &children {
        let _ = kill(Pid::from_raw(*pid), signal);
    }
    let deadline = Instant::now() + CHILD_WAIT;
    while !children.iter().all(|p| ended(*p)) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    for pid in children.iter().filter(|p| !ended(**p)) {
        say(&format!(
            "pid {pid} did not end within {} s of {signal}: killed",
            CHILD_WAIT.as_secs()
        ));
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    let hooks = std::mem::take(&mut *HOOKS.lock().unwrap_or_else(PoisonError::into_inner));
    for (_, hook) in hooks.into_iter().rev() {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(hook)).is_err() {
            say("a cleanup hook panicked; going on");
        }
    }
    let roots = std::mem::take(&mut *ROOTS.lock().unwrap_or_else(PoisonError::into_inner));
    for root in roots.iter().rev() {
        for item in remove_root(root).report(&format!("on {signal}")) {
            say(&item.to_string());
        }
    }
    for item in sweep() {
        say(&item.to_string());
    }
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: restoring the default action has no preconditions.
    let _ = unsafe { sigaction(signal, &default) };
    let _ = raise(signal);
    std::process::exit(128 + sig);
}
