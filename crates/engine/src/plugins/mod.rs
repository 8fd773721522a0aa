//! Third-party drivers: one JSON protocol, three transports.
//!
//! - shared libraries exporting `berth_plugin_v1` (`shared`),
//! - Docker's remote network-driver protocol over a unix socket (`docker`),
//! - CNI plugins run as programs (`cni`, one driver named `cni`).
//!
//! Each appears as a [`NetworkDriver`] like a built-in one, selected with
//! `-d NAME`. Discovery never fails the daemon: a plugin that cannot be
//! loaded is listed with the reason.

pub mod cni;
pub mod docker;
mod shared;

pub use shared::decode_answer;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_core::NetworkDriver;

/// The daemon's environment variable that bounds each plugin call, of
/// every transport, in milliseconds.
pub const TIMEOUT_ENV: &str = "BERTH_PLUGIN_TIMEOUT_MS";

/// The bound on a plugin call unless [`TIMEOUT_ENV`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The bound on a plugin call: [`TIMEOUT_ENV`] if it holds a positive
/// number of milliseconds, else [`DEFAULT_TIMEOUT`] (with one warning when
/// it holds something else).
pub fn timeout() -> Duration {
    let Ok(v) = std::env::var(TIMEOUT_ENV) else {
        return DEFAULT_TIMEOUT;
    };
    match v.trim().parse::<u64>() {
        Ok(ms) if ms > 0 => Duration::from_millis(ms),
        _ => {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!(
                    "{TIMEOUT_ENV}={v:?} is not a positive number of milliseconds; using {}",
                    show_duration(DEFAULT_TIMEOUT)
                );
            });
            DEFAULT_TIMEOUT
        }
    }
}

/// A plugin timeout as messages show it: `10 s`, `700 ms`.
pub(crate) fn show_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// At most this many characters of a plugin's text go into a message.
const MAX_TEXT: usize = 300;

/// Text from a plugin made fit for a one-line message: control characters
/// and runs of white space become one space, and it is cut at
/// [`MAX_TEXT`] characters.
pub(crate) fn one_line(s: &str) -> String {
    let mut out = String::new();
    for (i, word) in s
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .enumerate()
    {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.chars().count() > MAX_TEXT {
        out = out.chars().take(MAX_TEXT).collect();
        out.push('…');
    }
    out
}

/// Where plugins are looked for.
#[derive(Clone, Debug, Default)]
pub struct PluginConfig {
    /// Directories of shared-library plugins (`--plugin-dir`).
    pub plugin_dirs: Vec<PathBuf>,
    /// Directories of Docker plugin sockets (`/run/docker/plugins`).
    pub docker_socket_dirs: Vec<PathBuf>,
    /// Directories of Docker plugin `.spec` and `.json` files
    /// (`/etc/docker/plugins`, `/usr/lib/docker/plugins`).
    pub docker_spec_dirs: Vec<PathBuf>,
    /// Where CNI network configuration lists are (`--cni-config-dir`).
    pub cni_config_dir: PathBuf,
    /// Where CNI plugin programs are (`--cni-path`).
    pub cni_path: Vec<PathBuf>,
}

/// One plugin as `berth plugin ls` shows it: the API's type.
pub use berth_api::PluginInfo;

/// A discovered plugin and, if it loaded, its driver.
pub struct Found {
    /// What `plugin ls` says of it.
    pub info: PluginInfo,
    /// The driver, when it loaded.
    pub driver: Option<Arc<dyn NetworkDriver>>,
}

/// The drivers that are always there (the `cni` one runs CNI plugins).
pub fn builtin(cfg: &PluginConfig) -> Vec<Arc<dyn NetworkDriver>> {
    let mut v: Vec<Arc<dyn NetworkDriver>> = vec![
        Arc::new(berth_driver_bridge::Bridge),
        Arc::new(berth_driver_host::Host),
        Arc::new(berth_driver_none::Null),
        Arc::new(berth_driver_macvlan::Macvlan),
        Arc::new(berth_driver_ipvlan::Ipvlan),
        Arc::new(berth_driver_overlay::Overlay),
    ];
    v.extend(cni::driver(cfg));
    v
}

/// The built-in drivers as `GET /info` lists them, for a client that has
/// no daemon to ask. Whether the kernel can run each is not probed here
/// (probing makes links): they read as supported.
pub fn builtin_drivers() -> Vec<berth_api::DriverInfo> {
    builtin(&PluginConfig::default())
        .iter()
        .map(|d| crate::api::views::driver_info(d.name().to_owned(), &d.capabilities(), Ok(())))
        .collect()
}

/// Looks for plugins of every transport.
pub async fn discover(cfg: &PluginConfig) -> Vec<Found> {
    let mut found = shared::discover(cfg).await;
    found.extend(docker::discover(cfg).await);
    found
}
