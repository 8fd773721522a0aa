//! Starting processes inside a container: `berth run` (in the foreground,
//! or through a detached shim with `-d`) and `berth exec`.
//!
//! The process joins the sandbox's network namespace and gets a UTS and a
//! mount namespace of its own, where the generated `/etc/hosts`,
//! `/etc/resolv.conf` and `/etc/hostname` are bind-mounted and the
//! directory of pinned namespaces is dropped (so it does not keep other
//! containers' namespaces alive). `/sys` is a fresh read-only sysfs mounted
//! after joining the network namespace, so `/sys/class/net` lists the
//! container's own interfaces, as in Docker (sysfs shows the network
//! namespace of whoever mounts it; see sysfs(5)); the cgroup tree under
//! `/sys/fs/cgroup` is carried over. `berth exec` joins this mount
//! namespace and so sees the same `/sys`.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::{Context, Result, anyhow, bail};
use berth_api::{ContainerCreateResponse, ContainerExited, ContainerProcess, ContainerStarted, ProcessUser};
use nix::unistd::{Gid, Group, Uid, User};

use crate::args::{ProcessArgs, environment};
use crate::client::Client;

/// What the process needs to enter its container: the daemon's answer to
/// the create.
pub type Spec = ContainerCreateResponse;

/// What `-e`, `--env-file`, `-w` and `-u` set for a container's process.
pub type Process = ContainerProcess;

/// Reads the flags: the environment files, the user in the host's
/// databases, the working directory on the host's file system.
pub fn process(a: &ProcessArgs) -> Result<Process> {
    let mut env = environment(&a.env_file, &a.env, |k| std::env::var(k).ok())?;
    let working_dir = match &a.workdir {
        None => None,
        Some(d) => {
            let dir = std::env::current_dir().unwrap_or_default().join(d);
            match std::fs::metadata(&dir) {
                Ok(m) if m.is_dir() => Some(dir),
                Ok(_) => bail!("invalid --workdir {:?}: not a directory", d.display().to_string()),
                Err(e) => bail!("invalid --workdir {:?}: {e}", d.display().to_string()),
            }
        }
    };
    let user = match &a.user {
        None => None,
        Some(spec) => {
            let (ids, home) = resolve_user(spec)?;
            if let Some(home) = home
                && !env.iter().any(|(k, _)| k == "HOME")
            {
                env.insert(0, ("HOME".into(), home.display().to_string()));
            }
            Some(ids)
        }
    };
    Ok(Process {
        env,
        working_dir,
        user,
    })
}

/// Sets the environment, and makes the process change directory and
/// identity once it is in the container (call after `enter_*`).
pub fn apply(p: &Process, cmd: &mut Command) -> Result<()> {
    cmd.envs(p.env.iter().map(|(k, v)| (k, v)));
    if p.working_dir.is_none() && p.user.is_none() {
        return Ok(());
    }
    let dir = match &p.working_dir {
        Some(d) => Some(
            CString::new(d.as_os_str().as_bytes()).map_err(|_| anyhow!("--workdir contains a NUL byte"))?,
        ),
        None => None,
    };
    let ids = p.user.clone();
    // SAFETY: raw syscalls on memory prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(d) = &dir {
                check(libc::chdir(d.as_ptr()))?;
            }
            if let Some(ids) = &ids {
                check(libc::setgroups(ids.groups.len(), ids.groups.as_ptr()))?;
                check(libc::setgid(ids.gid))?;
                check(libc::setuid(ids.uid))?;
            }
            Ok(())
        });
    }
    Ok(())
}
/// `-u USER[:GROUP]`: names or numeric ids, looked up on the host as
/// Docker looks them up in the image; a uid that is not in the database
/// gets group 0, as in Docker. Returns the user's home too, when known.
fn resolve_user(spec: &str) -> Result<(ProcessUser, Option<PathBuf>)> {
    let bad = |why: String| anyhow!("invalid --user {spec:?}: {why}");
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if u.is_empty() || g.is_some_and(str::is_empty) {
        return Err(bad("accepted: USER[:GROUP], names or numeric ids".into()));
    }
    let user = match u.parse::<u32>() {
        Ok(n) => User::from_uid(Uid::from_raw(n)).map_err(|e| bad(e.desc().into()))?,
        Err(_) => Some(
            User::from_name(u)
                .map_err(|e| bad(e.desc().into()))?
                .ok_or_else(|| bad(format!("no user {u:?} on this host")))?,
        ),
    };
    let gid = match g {
        None => user.as_ref().map_or(0, |u| u.gid.as_raw()),
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => Group::from_name(g)
                .map_err(|e| bad(e.desc().into()))?
                .ok_or_else(|| bad(format!("no group {g:?} on this host")))?
                .gid
                .as_raw(),
        },
    };
    let Some(user) = user else {
        let uid = u.parse::<u32>().unwrap_or_default();
        return Ok((
            ProcessUser {
                uid,
                gid,
                groups: Vec::new(),
            },
            None,
        ));
    };
    let name = CString::new(user.name.as_bytes()).map_err(|_| bad("a NUL byte".into()))?;
    let groups = nix::unistd::getgrouplist(&name, Gid::from_raw(gid))
        .map_err(|e| bad(format!("reading the groups of {}: {}", user.name, e.desc())))?
        .into_iter()
        .map(Gid::as_raw)
        .collect();
    Ok((
        ProcessUser {
            uid: user.uid.as_raw(),
            gid,
            groups,
        },
        Some(user.dir),
    ))
}

/// The file is a namespace (on nsfs), not the plain file under a pin that
/// this mount namespace does not see.
fn is_namespace(f: &File) -> bool {
    const NSFS_MAGIC: libc::c_long = 0x6e73_6673;
    // SAFETY: statfs is plain old data, for which all zeros is a value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: fstatfs writes into `st`, which lives through the call.
    let rc = unsafe { libc::fstatfs(f.as_raw_fd(), &mut st) };
    rc == 0 && st.f_type as libc::c_long == NSFS_MAGIC
}

fn cstr(p: &str) -> Result<CString> {
    CString::new(p).map_err(|_| anyhow!("path {p:?} contains a NUL byte"))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Makes `cmd` start in the container described by `spec`.
pub fn enter_container(cmd: &mut Command, spec: &Spec) -> Result<()> {
    let netns = File::open(&spec.sandbox_key)
        .with_context(|| format!("opening the container's network namespace {}", spec.sandbox_key))?;
    if !is_namespace(&netns) {
        bail!(
            "{} is not a network namespace where berth runs: the daemon pinned it in another mount \
             namespace (run the client and the daemon in the same one; `ip netns exec` makes a new one \
             for each command, `nsenter --net` does not)",
            spec.sandbox_key
        );
    }
    let binds: Vec<(CString, CString)> = [
        (&spec.hosts_path, "/etc/hosts"),
        (&spec.resolv_conf_path, "/etc/resolv.conf"),
        (&spec.hostname_path, "/etc/hostname"),
    ]
    .into_iter()
    .filter(|(_, target)| Path::new(target).exists())
    .map(|(src, target)| Ok((cstr(src)?, cstr(target)?)))
    .collect::<Result<_>>()?;
    let netns_dir = cstr(&spec.netns_dir)?;
    let hostname = spec.hostname.clone().into_bytes();
    let root = cstr("/")?;
    let sys = cstr("/sys")?;
    let sysfs = cstr("sysfs")?;
    let cgroup = cstr("/sys/fs/cgroup")?;
    let self_fd = cstr("/proc/self/fd")?;
    // SAFETY: the closure runs in the child between fork and exec and only
    // makes raw syscalls on memory prepared before the fork; it allocates
    // nothing and takes no locks.
    unsafe {
        cmd.pre_exec(move || {
            check(libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET))?;
            check(libc::unshare(libc::CLONE_NEWUTS | libc::CLONE_NEWNS))?;
            check(libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            for (src, target) in &binds {
                check(libc::mount(
                    src.as_ptr(),
                    target.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                ))?;
            }
            // Not holding other containers' namespaces; absent in host mode
            // tests that run without the directory being a mount: fine.
            libc::umount2(netns_dir.as_ptr(), libc::MNT_DETACH);
            mount_sysfs(&sys, &sysfs, &cgroup, &self_fd)?;
            check(libc::sethostname(hostname.as_ptr().cast(), hostname.len()))?;
            Ok(())
        });
    }
    Ok(())
}

/// Mounts a fresh read-only sysfs over `/sys` (one of the network namespace
/// the caller is in) and carries the old `/sys/fs/cgroup` tree over, as
/// Docker's containers have both. Runs between fork and exec: raw syscalls
/// on memory prepared before the fork; `fd_dir` is `/proc/self/fd`.
fn mount_sysfs(sys: &CString, sysfs: &CString, cgroup: &CString, fd_dir: &CString) -> io::Result<()> {
    // The old cgroup tree, held by an O_PATH fd while /sys is covered; a
    // host without one (or without /sys at all) just gets the new sysfs.
    // SAFETY: open on a NUL-terminated path prepared before the fork.
    let old = unsafe {
        libc::open(
            cgroup.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    // SAFETY: mount with NUL-terminated strings prepared before the fork.
    check(unsafe {
        libc::mount(
            sysfs.as_ptr(),
            sys.as_ptr(),
            sysfs.as_ptr(),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        )
    })?;
    if old < 0 {
        return Ok(());
    }
    // "/proc/self/fd/N" without allocating: the digits go into a stack
    // buffer after the prepared prefix.
    let mut path = [0u8; 64];
    let prefix = fd_dir.as_bytes();
    path[..prefix.len()].copy_from_slice(prefix);
    let mut at = prefix.len();
    path[at] = b'/';
    at += 1;
    let mut digits = [0u8; 12];
    let (mut n, mut len) = (old, 0);
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for d in digits[..len].iter().rev() {
        path[at] = *d;
        at += 1;
    }
    // SAFETY: `path` is NUL-terminated (zeroed past `at`); the fd is ours.
    let rc = unsafe {
        let rc = libc::mount(
            path.as_ptr().cast(),
            cgroup.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        );
        libc::close(old);
        rc
    };
    check(rc)
}

/// Makes `cmd` join the namespaces (network, UTS, mount) of the running
/// process `pid`, keeping the current directory, as `docker exec` does.
pub fn enter_process(cmd: &mut Command, pid: u32) -> Result<()> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error()).with_context(|| format!("opening process {pid}"));
    }
    // SAFETY: fd was just returned by pidfd_open and is owned by nobody else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let cwd = std::env::current_dir()
        .ok()
        .and_then(|d| CString::new(d.as_os_str().as_bytes()).ok());
    // SAFETY: as in `enter_container`: raw syscalls on prepared memory only.
    unsafe {
        cmd.pre_exec(move || {
            check(libc::setns(
                pidfd.as_raw_fd(),
                libc::CLONE_NEWNET | libc::CLONE_NEWUTS | libc::CLONE_NEWNS,
            ))?;
            if let Some(cwd) = &cwd {
                libc::chdir(cwd.as_ptr());
            }
            Ok(())
        });
    }
    Ok(())
}

/// The shell's convention: the exit code, or 128 plus the signal.
pub fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = CHILD.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Waits for `child`, passing on SIGTERM and SIGHUP; SIGINT and SIGQUIT
/// reach it from the terminal directly, so berth itself ignores them.
pub fn wait_forwarding(child: &mut Child) -> io::Result<ExitStatus> {
    CHILD.store(child.id() as i32, Ordering::Relaxed);
    // SAFETY: installing handlers; `forward` only calls kill.
    unsafe {
        libc::signal(libc::SIGTERM, forward as *const () as libc::sighandler_t);
        libc::signal(libc::SIGHUP, forward as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
    }
    child.wait()
}

/// Copies `from` to the log a line at a time, each as `TIME STREAM TEXT`
/// (the daemon's `logs` reads that), and to `tee` when given.
fn pump(
    mut from: impl io::BufRead,
    log: std::sync::Arc<std::sync::Mutex<File>>,
    stream: &'static str,
    mut tee: Option<Box<dyn Write + Send>>,
) {
    let mut line = Vec::new();
    loop {
        line.clear();
        match from.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if let Some(t) = &mut tee {
            let _ = t.write_all(&line);
            let _ = t.flush();
        }
        let mut rec = format!("{} {stream} ", berth_engine::now()).into_bytes();
        rec.extend_from_slice(&line);
        if rec.last() != Some(&b'\n') {
            rec.push(b'\n');
        }
        let mut f = log.lock().unwrap_or_else(|p| p.into_inner());
        let _ = f.write_all(&rec);
    }
}

/// Lets the log copiers finish what the command wrote, for a second at
/// most: a process it left behind may hold the pipes open for ever.
fn drain(pumps: Vec<std::thread::JoinHandle<()>>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while pumps.iter().any(|t| !t.is_finished()) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Makes `cmd`'s stdout and stderr pipes, to be pumped into the log.
fn piped(cmd: &mut Command) {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
}

/// Opens the container's log at `log_path` to append to it (made 0600
/// when missing).
fn open_log(log_path: &str) -> Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log_path)
        .with_context(|| format!("opening {log_path}"))
}

/// Starts the threads that copy the child's output into `log` (and to our
/// own stdout and stderr with `tee`).
fn log_output(child: &mut Child, log: File, tee: bool) -> Vec<std::thread::JoinHandle<()>> {
    let log = std::sync::Arc::new(std::sync::Mutex::new(log));
    let mut threads = Vec::new();
    if let Some(out) = child.stdout.take() {
        let (log, tee): (_, Option<Box<dyn Write + Send>>) =
            (log.clone(), tee.then(|| Box::new(io::stdout()) as _));
        threads.push(std::thread::spawn(move || {
            pump(io::BufReader::new(out), log, "stdout", tee)
        }));
    }
    if let Some(err) = child.stderr.take() {
        let (log, tee): (_, Option<Box<dyn Write + Send>>) =
            (log.clone(), tee.then(|| Box::new(io::stderr()) as _));
        threads.push(std::thread::spawn(move || {
            pump(io::BufReader::new(err), log, "stderr", tee)
        }));
    }
    threads
}

/// Tells the daemon the process started.
fn report_started(client: &Client, id: &str, pid: u32) -> Result<()> {
    client.call(
        "POST",
        &format!("/containers/{id}/started"),
        Some(&ContainerStarted { pid }),
    )?;
    Ok(())
}

/// Tells the daemon the process ended (which takes the network down and,
/// with `--rm`, removes the container). Retries briefly when the daemon is
/// restarting; a daemon that stays away finds out on its own.
fn report_exited(client: &Client, id: &str, code: i32) {
    for _ in 0..50 {
        match client.call(
            "POST",
            &format!("/containers/{id}/exited"),
            Some(&ContainerExited { exit_code: code }),
        ) {
            Ok(_) => return,
            Err(e) if e.downcast_ref::<crate::client::ApiError>().is_some() => return,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
}

/// Runs the container's command in the foreground, with the terminal, and
/// returns its exit code. Its output goes to the terminal and, line by
/// line, to the container's log.
pub fn foreground(client: &Client, spec: &Spec, argv: &[String]) -> Result<i32> {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    piped(&mut cmd);
    let log = open_log(&spec.log_path)?;
    let child = enter_container(&mut cmd, spec)
        .and_then(|()| apply(&spec.process, &mut cmd))
        .and_then(|()| Ok(cmd.spawn()?));
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            report_exited(client, &spec.id, 127);
            return Err(crate::ExitWith(
                127,
                format!("cannot run {:?} in container {}: {e:#}", argv[0], spec.name),
            )
            .into());
        }
    };
    if let Err(e) = report_started(client, &spec.id, child.id()) {
        let _ = child.kill();
        let _ = child.wait();
        report_exited(client, &spec.id, 137);
        return Err(e);
    }
    let pumps = log_output(&mut child, log, true);
    let status = wait_forwarding(&mut child)?;
    drain(pumps);
    let code = exit_code(status);
    report_exited(client, &spec.id, code);
    Ok(code)
}

/// Starts the detached shim, which runs the command with its output in the
/// log and reports its end; returns once the command has started. The
/// shim is this process forked (no second start of the berth binary),
/// unless this process has threads, where only an exec is safe after a
/// fork: then it is `berth __shim`.
pub fn detached(socket: &Path, spec: &Spec, argv: &[String]) -> Result<()> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&spec.log_path)
        .with_context(|| format!("opening {}", spec.log_path))?;
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("creating a pipe")?;
    let shim = if single_threaded() {
        fork_shim(socket, spec, argv, log, wr)?
    } else {
        exec_shim(socket, spec, argv, log, wr)?
    };
    let answer = berth_engine::shim_answer(rd, &argv[0]);
    // The shim lives on as the container's parent; reap it if it already
    // ended so that it does not linger as a zombie of ours.
    let _ = nix::sys::wait::waitpid(shim, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
    match answer {
        Ok(()) => Ok(()),
        Err(msg) if msg.starts_with("cannot run") => Err(crate::ExitWith(127, msg).into()),
        Err(msg) => bail!("{msg}"),
    }
}

/// This process runs one thread (`/proc/self/stat`'s 20th field).
fn single_threaded() -> bool {
    std::fs::read_to_string("/proc/self/stat").ok().and_then(|s| {
        let (_, rest) = s.rsplit_once(')')?;
        rest.split_whitespace().nth(17)?.parse::<u32>().ok()
    }) == Some(1)
}

/// The shim as a fork of this process: a new session, the log as its
/// output, then [`shim_on`]; it never returns to the caller's code.
fn fork_shim(
    socket: &Path,
    spec: &Spec,
    argv: &[String],
    log: File,
    status: OwnedFd,
) -> Result<nix::unistd::Pid> {
    let null = File::open("/dev/null").context("opening /dev/null")?;
    io::stdout().flush()?;
    io::stderr().flush()?;
    // SAFETY: this process has a single thread (checked by the caller), so
    // the child may go on running any code after the fork.
    match unsafe { nix::unistd::fork() }.context("starting the container's shim")? {
        nix::unistd::ForkResult::Parent { child } => Ok(child),
        nix::unistd::ForkResult::Child => {
            let code = (|| -> Result<i32> {
                nix::unistd::setsid()?;
                // SAFETY: dup2 onto the standard descriptors of this
                // process, from descriptors it owns.
                unsafe {
                    check(libc::dup2(null.as_raw_fd(), 0))?;
                    check(libc::dup2(log.as_raw_fd(), 1))?;
                    check(libc::dup2(log.as_raw_fd(), 2))?;
                }
                drop((null, log));
                shim_on(&Client::new(socket.to_owned()), spec, argv, File::from(status))
            })()
            .unwrap_or_else(|e| {
                eprintln!("berth: shim: {e:#}");
                1
            });
            let _ = io::stdout().flush();
            // SAFETY: ends the shim without running the destructors and
            // exit handlers it shares with the client it was forked from.
            unsafe { libc::_exit(code) }
        }
    }
}

/// The shim as `berth __shim` (see [`shim`]), the status pipe as its fd 3.
fn exec_shim(
    socket: &Path,
    spec: &Spec,
    argv: &[String],
    log: File,
    status: OwnedFd,
) -> Result<nix::unistd::Pid> {
    let exe = std::env::current_exe().context("finding the berth binary")?;
    let shim = berth_engine::shim_command(&exe, socket, &serde_json::to_string(spec)?, argv, &log, &status)
        .and_then(|mut cmd| cmd.spawn())
        .context("starting the container's shim")?;
    Ok(nix::unistd::Pid::from_raw(shim.id() as i32))
}

/// The detached shim: runs the command in the container with the log as
/// its output, says "ok" (or why not) on fd 3, then waits and reports the
/// exit code.
pub fn shim(client: &Client, spec: &Spec, argv: &[String]) -> Result<i32> {
    // SAFETY: fd 3 was set up by `exec_shim` or the daemon's start; we own
    // it from here.
    let status_pipe = unsafe { File::from_raw_fd(3) };
    // SAFETY: fcntl on our own fd.
    unsafe { libc::fcntl(3, libc::F_SETFD, libc::FD_CLOEXEC) };
    shim_on(client, spec, argv, status_pipe)
}

/// The shim's work: starts the command in the container, says `ok` (or
/// why not) on `status_pipe`, tells the daemon, and waits for the command,
/// copying its output to the log, to report its end.
fn shim_on(client: &Client, spec: &Spec, argv: &[String], mut status_pipe: File) -> Result<i32> {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    piped(&mut cmd);
    let child = open_log(&spec.log_path).and_then(|log| {
        enter_container(&mut cmd, spec)
            .and_then(|()| apply(&spec.process, &mut cmd))
            .and_then(|()| {
                cmd.spawn()
                    .with_context(|| format!("cannot run {:?} in container {}", argv[0], spec.name))
            })
            .map(|child| (child, log))
    });
    let (mut child, log) = match child {
        Ok(c) => c,
        Err(e) => {
            // The client hears at once; the report may wait for a
            // restarting daemon.
            let _ = writeln!(status_pipe, "{e:#}");
            drop(status_pipe);
            report_exited(client, &spec.id, 127);
            return Ok(127);
        }
    };
    if let Err(e) = report_started(client, &spec.id, child.id()) {
        let _ = child.kill();
        let _ = child.wait();
        let _ = writeln!(status_pipe, "{e:#}");
        drop(status_pipe);
        report_exited(client, &spec.id, 137);
        return Ok(137);
    }
    // The client hears before the log's copiers start: the command waits
    // for them only if it writes a pipe's worth first.
    let _ = writeln!(status_pipe, "ok");
    drop(status_pipe);
    let pumps = log_output(&mut child, log, false);
    let code = exit_code(wait_forwarding(&mut child)?);
    drain(pumps);
    report_exited(client, &spec.id, code);
    Ok(code)
}
