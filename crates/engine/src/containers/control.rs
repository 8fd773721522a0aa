//! `stop`, `start`, `restart`, `kill` and `wait`: a container's process
//! signalled, waited for, or run again on its networks.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use berth_core::SandboxKind;
use nix::sys::signal::Signal;

use super::endpoints::parse_static;
use super::shim::{shim_answer, shim_command};
use super::{Created, process};
use crate::engine::Engine;
use crate::networks::find_network;
use crate::store::model::{ContainerRecord, LastEndpoint, Status};
use crate::{Error, Result};

/// How often a stop or a wait looks at the process again.
const POLL: Duration = Duration::from_millis(20);

/// A signal as Docker takes it: `KILL`, `SIGKILL`, `kill` or `9`.
pub fn parse_signal(s: &str) -> Result<Signal> {
    let bad = || Error::BadSignal(s.to_owned());
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    Signal::from_str(&name).map_err(|_| bad())
}

/// Refuses to run, stop or signal a container whose namespace another
/// runtime owns: berth has no process there.
pub(super) fn refuse_external(c: &ContainerRecord) -> Result<()> {
    if c.is_external() {
        return Err(Error::ExternalContainer {
            container: c.name.clone(),
        });
    }
    Ok(())
}

impl Engine {
    /// Sends `signal` to a running container's process.
    pub async fn kill_container(&self, key: &str, signal: Signal) -> Result<()> {
        let c = self.find_container(key)?;
        refuse_external(&c)?;
        if !Self::running(&c) {
            return Err(Error::NotRunning { container: c.name });
        }
        if process::alive(c.pid, c.pid_start) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.pid as i32), signal);
        }
        Ok(())
    }

    /// Stops a container as Docker does: SIGTERM, then SIGKILL after
    /// `timeout`; returns once it is marked exited (its network down). A
    /// container that is not running is left as it is.
    pub async fn stop_container(&self, key: &str, timeout: Duration) -> Result<()> {
        let c = self.find_container(key)?;
        refuse_external(&c)?;
        if !Self::running(&c) {
            return Ok(());
        }
        let (pid, start) = (c.pid, c.pid_start);
        let pidt = nix::unistd::Pid::from_raw(pid as i32);
        let mut last = Signal::SIGTERM;
        if process::alive(pid, start) {
            let _ = nix::sys::signal::kill(pidt, Signal::SIGTERM);
        }
        let deadline = Instant::now() + timeout;
        while process::alive(pid, start) && Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
        if process::alive(pid, start) {
            last = Signal::SIGKILL;
            process::kill(pid, start);
        }
        // Whoever started it (the shim, or `berth run` in the foreground)
        // reports the exit code; a reporter that is gone is made up for.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.find_container(&c.id) {
                Ok(now) if now.status == Status::Running && now.pid == pid => {}
                // Reaped before its reporter spoke: the signal says how.
                Ok(now) if now.status == Status::Exited && now.exit_code == -1 => {
                    return self.container_exited(&c.id, 128 + last as i32).await;
                }
                Ok(_) | Err(Error::ContainerNotFound { .. }) => return Ok(()),
                Err(e) => return Err(e),
            }
            if Instant::now() >= deadline {
                return self.container_exited(&c.id, 128 + last as i32).await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until a container is not running and returns its exit code.
    pub async fn wait_container(&self, key: &str) -> Result<i32> {
        let id = self.find_container(key)?.id;
        loop {
            let c = self.find_container(&id)?;
            if c.status != Status::Running {
                return Ok(c.exit_code);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Starts a created or exited container again: a new sandbox on the
    /// networks it was on (the addresses asked with `--ip` kept, others
    /// given anew), its files written again, and its command run detached
    /// through the shim, which reports to the API on `socket`. A running
    /// container is left as it is.
    pub async fn start_container(&self, key: &str, socket: &Path) -> Result<()> {
        let c = self.find_container(key)?;
        refuse_external(&c)?;
        if Self::running(&c) {
            return Ok(());
        }
        if c.status == Status::Running {
            // Its process died unseen: mark it exited before starting.
            self.container_exited(&c.id, -1).await?;
        }
        let spec = self.prepare_start(&c.id).await?;
        let argv = self.find_container(&c.id)?.cmd;
        let socket = socket.to_owned();
        let name = spec.name.clone();
        let launched = tokio::task::spawn_blocking(move || launch(&socket, &spec, &argv))
            .await
            .map_err(|source| Error::Task {
                what: "starting the container's shim",
                source,
            })?;
        launched.map_err(|message| Error::StartFailed {
            container: name,
            message,
        })
    }

    /// Brings an exited container's network back up and marks it created.
    async fn prepare_start(&self, id: &str) -> Result<Created> {
        let lock = self.container_lock(id);
        let g = lock.lock().await;
        let mut c = self.find_container(id)?;
        if c.status == Status::Created && c.sandbox.is_some() {
            return Ok(self.spec_of(&c));
        }
        let mut last = std::mem::take(&mut c.last_endpoints);
        if last.is_empty() {
            last.push(LastEndpoint {
                network: c.network_mode.clone(),
                ..Default::default()
            });
        }
        let first = last.remove(0);
        self.rejoin_first(&mut c, &first).await?;
        c.status = Status::Created;
        c.exit_code = 0;
        c.last_networks.clear();
        self.save_container(&c).await?;
        self.state().containers.insert(c.id.clone(), c.clone());
        drop(g);
        for ep in &last {
            if c.endpoints.iter().any(|e| {
                self.state()
                    .networks
                    .get(&e.network_id)
                    .is_some_and(|n| n.net.name == ep.network)
            }) {
                continue; // a way out that the first network brought back
            }
            let v4 = ep.static_ip.iter().find(|i| i.is_ipv4()).map(|i| i.to_string());
            let v6 = ep.static_ip.iter().find(|i| i.is_ipv6()).map(|i| i.to_string());
            let mac = ep.mac.map(|m| m.to_string()).unwrap_or_default();
            if let Err(e) = self
                .connect(
                    &ep.network,
                    id,
                    v4.as_deref().unwrap_or(""),
                    v6.as_deref().unwrap_or(""),
                    &ep.aliases,
                    &mac,
                )
                .await
            {
                tracing::warn!(container = %c.name, network = %ep.network, "joining again on start: {}", e.chain());
            }
        }
        Ok(self.spec_of(&self.find_container(id)?))
    }

    /// The first network and the sandbox, as `create` makes them.
    async fn rejoin_first(&self, rec: &mut ContainerRecord, first: &LastEndpoint) -> Result<()> {
        let v4 = first
            .static_ip
            .iter()
            .find(|i| i.is_ipv4())
            .map(|i| i.to_string());
        let v6 = first
            .static_ip
            .iter()
            .find(|i| i.is_ipv6())
            .map(|i| i.to_string());
        let wanted = parse_static(v4.as_deref().unwrap_or(""), v6.as_deref().unwrap_or(""))?;
        self.await_unlinked(&first.network, &wanted).await;
        let (mut joins, kind) = {
            let mut st = self.state();
            let net = find_network(&st, &first.network)?.clone();
            let kind = self.driven(&st, &net)?.caps.sandbox;
            let mut ep = self.plan_endpoint(&mut st, &net, &[], &wanted, first.mac)?;
            ep.aliases = first.aliases.clone();
            let mut joins = vec![(net.clone(), ep)];
            match self.plan_egress(&mut st, &net, std::slice::from_ref(&joins[0].1)) {
                Ok(gw) => joins.extend(gw),
                Err(e) => {
                    Self::settle_all(&mut st, &joins, false);
                    return Err(e);
                }
            }
            (joins, kind)
        };
        let made = async {
            let sb = match kind {
                SandboxKind::Host => self.host_sandbox.clone(),
                _ => self.new_sandbox(&rec.id, rec.dns.embedded).await?,
            };
            rec.sandbox = Some(sb.path.clone());
            if let Err(e) = self.wire(&sb, rec, &mut joins).await {
                let _ = self.drop_sandbox_of(&rec.id, kind);
                rec.sandbox = None;
                return Err(e);
            }
            rec.endpoints.extend(joins.iter().map(|(_, ep)| ep.clone()));
            self.publish(rec);
            let files = super::files::make_log(&self.cfg.paths(&rec.id).log)
                .and_then(|()| self.write_files(rec, kind));
            if let Err(e) = files {
                self.dns.remove(&rec.id);
                self.unwire(Some(&sb), &joins).await;
                let _ = self.drop_sandbox_of(&rec.id, kind);
                rec.endpoints.clear();
                rec.sandbox = None;
                return Err(e);
            }
            Ok(())
        }
        .await;
        self.settled(&joins);
        Self::settle_all(&mut self.state(), &joins, made.is_ok());
        made
    }

    /// What the shim needs to enter the container.
    pub(super) fn spec_of(&self, c: &ContainerRecord) -> Created {
        let paths = self.cfg.paths(&c.id);
        Created {
            id: c.id.clone(),
            name: c.name.clone(),
            hostname: c.hostname.clone(),
            sandbox_key: c
                .sandbox
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            netns_dir: self.cfg.netns_dir().display().to_string(),
            hosts_path: paths.hosts.display().to_string(),
            resolv_conf_path: paths.resolv_conf.display().to_string(),
            hostname_path: paths.hostname.display().to_string(),
            log_path: paths.log.display().to_string(),
            process: c.process.clone(),
        }
    }
}

/// Starts the shim (`berth __shim`, this very binary) as `berth run -d`
/// does, and returns once it says the command started, or why not.
fn launch(socket: &Path, spec: &Created, argv: &[String]) -> std::result::Result<(), String> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&spec.log_path)
        .map_err(|e| format!("opening {}: {e}", spec.log_path))?;
    let (rd, wr) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("creating a pipe: {e}"))?;
    let exe = std::env::current_exe().map_err(|e| format!("finding the berth binary: {e}"))?;
    let spec_json = serde_json::to_string(spec).map_err(|e| e.to_string())?;
    let mut shim = shim_command(&exe, socket, &spec_json, argv, &log, &wr)
        .and_then(|mut cmd| cmd.spawn())
        .map_err(|e| format!("starting the shim: {e}"))?;
    drop(wr);
    let answer = shim_answer(rd, &argv[0]);
    // The shim is the daemon's child: reap it whenever it ends.
    std::thread::spawn(move || shim.wait());
    answer
}
