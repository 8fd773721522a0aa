//! `berth daemon`: runs the engine and serves its API.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use berth_engine::{Config, Engine};

use crate::args::{DaemonArgs, address_pool, socket_path};
use crate::client::{self, Client};

/// The socket's group: `--group` (a name or a gid), else `berth` when it
/// exists, else root's group (0).
fn socket_group(given: Option<&str>) -> Result<u32> {
    use nix::unistd::Group;
    let Some(name) = given else {
        return Ok(Group::from_name("berth")
            .ok()
            .flatten()
            .map_or(0, |g| g.gid.as_raw()));
    };
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
        return name.parse::<u32>().with_context(|| {
            format!("--group {name}: not a gid (accepted: a group name or a gid below 2^32)")
        });
    }
    match Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => bail!(
            "--group {name:?}: no such group (accepted: the name of an existing group, or a numeric gid)"
        ),
        Err(e) => bail!("--group {name:?}: looking the group up: {e}"),
    }
}

/// A whole number from the daemon's environment within `range`, else
/// `default`; anything else is an error naming the variable.
fn env_number(var: &str, range: std::ops::RangeInclusive<u64>, default: u64) -> Result<u64> {
    let Some(v) = std::env::var_os(var) else {
        return Ok(default);
    };
    let v = v.to_string_lossy();
    match v.trim().parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => bail!(
            "{var}={v:?}: not accepted (accepted: a whole number from {} to {})",
            range.start(),
            range.end()
        ),
    }
}

/// What one client may hold of the API: the defaults, or
/// `BERTH_API_HEADER_TIMEOUT_MS`, `BERTH_API_MAX_CONNECTIONS` and
/// `BERTH_API_MAX_BODY` (bytes).
fn api_limits() -> Result<berth_engine::api::Limits> {
    let d = berth_engine::api::Limits::default();
    let ms = env_number(
        "BERTH_API_HEADER_TIMEOUT_MS",
        1..=3_600_000,
        d.header_timeout.as_millis() as u64,
    )?;
    let conns = env_number(
        "BERTH_API_MAX_CONNECTIONS",
        1..=berth_engine::api::MAX_CONNECTIONS as u64,
        d.max_connections as u64,
    )?;
    let body = env_number("BERTH_API_MAX_BODY", 1..=1 << 30, d.max_body as u64)?;
    Ok(berth_engine::api::Limits {
        header_timeout: Duration::from_millis(ms),
        max_connections: conns as usize,
        max_body: body as usize,
    })
}

/// The cluster the daemon joins, from its flags.
fn cluster(args: &DaemonArgs) -> Result<Option<berth_engine::ClusterConfig>> {
    let Some(store) = &args.cluster_store else {
        if args.advertise_addr.is_some() || !args.cluster_store_opt.is_empty() {
            bail!(
                "--advertise-addr and --cluster-store-opt need --cluster-store (etcd://HOST:PORT[,HOST:PORT...])"
            );
        }
        return Ok(None);
    };
    let options = berth_engine::berth_cluster::Options::parse(store, &args.cluster_store_opt)?;
    let Some(advertise) = args.advertise_addr.clone() else {
        bail!(
            "--cluster-store needs --advertise-addr (an address of this host, or an interface that has one)"
        );
    };
    Ok(Some(berth_engine::ClusterConfig { options, advertise }))
}

/// Docker's choice: with systemd-resolved's stub in /etc/resolv.conf, the
/// real upstream servers are in /run/systemd/resolve/resolv.conf.
fn default_resolv_conf() -> PathBuf {
    let etc = PathBuf::from("/etc/resolv.conf");
    let only_stub = std::fs::read_to_string(&etc).is_ok_and(|s| {
        let servers: Vec<&str> = s
            .lines()
            .filter_map(|l| l.strip_prefix("nameserver"))
            .map(str::trim)
            .collect();
        !servers.is_empty() && servers.iter().all(|s| *s == "127.0.0.53")
    });
    let resolved = PathBuf::from("/run/systemd/resolve/resolv.conf");
    if only_stub && resolved.exists() {
        resolved
    } else {
        etc
    }
}

/// The given directories, or the defaults when none were given.
fn or(given: Vec<PathBuf>, defaults: &[&str]) -> Vec<PathBuf> {
    if given.is_empty() {
        defaults.iter().map(PathBuf::from).collect()
    } else {
        given
    }
}

/// Runs the daemon until SIGINT or SIGTERM; SIGHUP re-installs the firewall.
pub fn run(host: Option<&str>, args: DaemonArgs) -> Result<()> {
    let socket = socket_path(host.unwrap_or(&client::default_host()))?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log_level).unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // A log file (the auto-started daemon's, a redirect) gets no
        // colour codes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if Client::new(socket.clone()).ping() {
        bail!("a berth daemon is already listening on {}", socket.display());
    }
    let cluster = cluster(&args)?;
    let serve_docker = crate::args::serve_docker_dir(args.serve_docker.as_deref())?;
    let listen = berth_engine::api::Listen {
        socket: socket.clone(),
        gid: socket_group(args.group.as_deref())?,
        limits: api_limits()?,
    };
    let address_pools = args
        .default_address_pool
        .iter()
        .map(|p| address_pool(p, berth_engine::ipam::AddressPool::new))
        .collect::<Result<Vec<_>>>()?;
    let cfg = Config {
        data_root: args.data_root.unwrap_or_else(client::default_data_root),
        exec_root: args.exec_root.unwrap_or_else(client::default_exec_root),
        resolv_conf: args.resolv_conf.unwrap_or_else(default_resolv_conf),
        plugins: berth_engine::plugins::PluginConfig {
            plugin_dirs: or(args.plugin_dir, &["/usr/lib/berth/plugins", "/etc/berth/plugins"]),
            docker_socket_dirs: or(args.docker_plugin_dir, &["/run/docker/plugins"]),
            docker_spec_dirs: or(
                args.docker_plugin_spec_dir,
                &["/etc/docker/plugins", "/usr/lib/docker/plugins"],
            ),
            cni_config_dir: args.cni_config_dir,
            cni_path: args
                .cni_path
                .split(':')
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .collect(),
        },
        cluster,
        recover_store: args.recover_store,
        address_pools,
        bridge_nf_call: args.bridge_nf_call,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let engine = Engine::start(cfg).await.map_err(|e| anyhow::anyhow!(e.chain()))?;
        let reaper = engine.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                reaper.reap().await;
            }
        });
        let hup = engine.clone();
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .context("installing a SIGHUP handler")?;
        tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                tracing::info!("SIGHUP: re-installing the firewall");
                if let Err(e) = hup.reconcile().await {
                    tracing::error!("reconciling: {}", e.chain());
                }
            }
        });
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing a SIGTERM handler")?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let until_stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let served = match &serve_docker {
            Some(dir) => {
                let sockets = berth_engine::serve_docker::bind(engine.clone(), dir)
                    .map_err(|e| anyhow::anyhow!(e.chain()))?;
                Some(tokio::spawn(sockets.serve(until_stopped())))
            }
            None => None,
        };
        let mut api = tokio::spawn({
            let (engine, done) = (engine.clone(), until_stopped());
            async move { berth_engine::api::serve(engine, &listen, done).await }
        });
        tracing::info!(socket = %socket.display(), "berth daemon ready");
        let early = tokio::select! {
            _ = tokio::signal::ctrl_c() => None,
            _ = term.recv() => None,
            r = &mut api => Some(r),
        };
        tracing::info!("shutting down; networks and containers stay as they are");
        let _ = stop.send(true);
        let api = match early {
            Some(r) => r,
            None => api.await,
        }
        .context("the API server")?;
        if let Some(t) = served {
            t.await.context("the dockerd plugin sockets")?;
        }
        if let Err(e) = engine.flush().await {
            tracing::error!("taking the store to the disk: {}", e.chain());
        }
        let _ = std::fs::remove_file(&socket);
        api.map_err(|e| anyhow::anyhow!(e.chain()))?;
        Ok(())
    })
}
