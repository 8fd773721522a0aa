//! Finding and activating Docker network plugins, as Docker does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_core::{NetworkDriver, Scope};
use berth_plugin::protocol::{CapabilitiesResponse, method};
use serde::Deserialize;

use super::NETWORK_DRIVER;
use super::answers::{ActivateResponse, BadAnswer, parse_scope};
use super::driver::{DockerDriver, DockerPlugin};
use crate::plugins::{Found, PluginConfig, PluginInfo, one_line, timeout};

/// Where a plugin was found, and the socket to reach it at (or why not).
struct Candidate {
    name: String,
    file: PathBuf,
    socket: Result<PathBuf, BadSpec>,
}

/// A plugin address that berth does not reach.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum BadAddress {
    /// `unix://` without an absolute path.
    #[error("invalid address {0:?} (accepted: unix:///PATH)")]
    NotAbsolute(String),
    /// Another scheme than `unix`.
    #[error(
        "{scheme} address {address:?}: berth reaches Docker plugins over unix sockets only (unix:///PATH)"
    )]
    NotUnix {
        /// The scheme.
        scheme: String,
        /// The address.
        address: String,
    },
    /// No scheme.
    #[error("invalid address {0:?}: no scheme (accepted: unix:///PATH)")]
    NoScheme(String),
}

/// Why a `.spec` or `.json` file gives no socket.
#[derive(Debug, thiserror::Error)]
enum BadSpec {
    /// The file could not be read.
    #[error("reading it: {0}")]
    Unreadable(std::io::Error),
    /// A `.json` file that is not a spec (the parser's words, one line).
    #[error("not a plugin spec: {0}")]
    NotASpec(String),
    /// A `.json` spec without an address.
    #[error("it has no Addr")]
    NoAddr,
    /// An address berth does not reach.
    #[error(transparent)]
    Address(#[from] BadAddress),
}

/// Why a plugin found was not loaded.
#[derive(Debug, thiserror::Error)]
enum NotLoaded {
    /// Its socket is not known.
    #[error("refused: {0}")]
    Refused(BadSpec),
    /// A call of the activation failed.
    #[error("not loaded: {}", .0.chain())]
    Call(berth_core::Error),
    /// It is not a network driver (what it implements, one line).
    #[error("not a network driver: it implements {0}")]
    NotADriver(String),
    /// Its capabilities are not usable.
    #[error("not loaded: GetCapabilities: {0}")]
    Capabilities(BadAnswer),
}

fn is_socket(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

/// The socket path of a plugin address: only `unix://` is reached.
fn unix_address(addr: &str) -> Result<PathBuf, BadAddress> {
    let addr = addr.trim();
    match addr.split_once("://") {
        Some(("unix", path)) if path.starts_with('/') => Ok(PathBuf::from(path)),
        Some(("unix", _)) => Err(BadAddress::NotAbsolute(addr.to_owned())),
        Some((scheme, _)) if !scheme.is_empty() => Err(BadAddress::NotUnix {
            scheme: scheme.to_owned(),
            address: addr.to_owned(),
        }),
        _ => Err(BadAddress::NoScheme(addr.to_owned())),
    }
}

/// A `.spec` file: one URL.
fn read_spec(p: &Path) -> Result<PathBuf, BadSpec> {
    let text = std::fs::read_to_string(p).map_err(BadSpec::Unreadable)?;
    Ok(unix_address(&text)?)
}

/// A `.json` file: `{"Name": …, "Addr": …, "TLSConfig": …}`. As in Docker,
/// the file's name names the plugin.
fn read_json_spec(p: &Path) -> Result<PathBuf, BadSpec> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Spec {
        #[serde(default)]
        addr: String,
    }
    let text = std::fs::read(p).map_err(BadSpec::Unreadable)?;
    let spec: Spec =
        serde_json::from_slice(&text).map_err(|e| BadSpec::NotASpec(one_line(&e.to_string())))?;
    if spec.addr.is_empty() {
        return Err(BadSpec::NoAddr);
    }
    Ok(unix_address(&spec.addr)?)
}

/// Every plugin definition in Docker's lookup order: sockets first
/// (`NAME/NAME.sock`, then `NAME.sock`), then in each spec directory
/// `NAME/NAME.spec`, `NAME.spec`, `NAME/NAME.json`, `NAME.json`.
fn candidates(cfg: &PluginConfig) -> Vec<Candidate> {
    /// (name, rank in Docker's order, file) of one directory.
    fn scan(dir: &Path, exts: &[&str], keep: impl Fn(&Path) -> bool) -> Vec<(String, usize, PathBuf)> {
        let mut found = Vec::new();
        let Ok(rd) = std::fs::read_dir(dir) else {
            return found;
        };
        for e in rd.flatten() {
            let entry = e.file_name().to_string_lossy().into_owned();
            let path = dir.join(&entry);
            for (i, ext) in exts.iter().enumerate() {
                let inner = path.join(format!("{entry}.{ext}"));
                if path.is_dir() && keep(&inner) {
                    found.push((entry.clone(), 2 * i, inner));
                }
                if let Some(name) = entry.strip_suffix(&format!(".{ext}"))
                    && !name.is_empty()
                    && keep(&path)
                {
                    found.push((name.to_owned(), 2 * i + 1, path.clone()));
                }
            }
        }
        found.sort();
        found
    }
    let mut out = Vec::new();
    for dir in &cfg.docker_socket_dirs {
        for (name, _, file) in scan(dir, &["sock"], is_socket) {
            // berth's own, when it serves dockerd there (`--serve-docker`).
            if crate::serve_docker::is_served_name(&name) {
                continue;
            }
            out.push(Candidate {
                name,
                socket: Ok(file.clone()),
                file,
            });
        }
    }
    for dir in &cfg.docker_spec_dirs {
        for (name, _, file) in scan(dir, &["spec", "json"], Path::is_file) {
            let socket = if file.extension().is_some_and(|e| e == "spec") {
                read_spec(&file)
            } else {
                read_json_spec(&file)
            };
            out.push(Candidate { name, file, socket });
        }
    }
    out
}

/// Activates one plugin: `Plugin.Activate`, then `GetCapabilities` if it
/// is a network driver.
async fn activate(name: &str, socket: &Path, timeout: Duration) -> Result<DockerPlugin, NotLoaded> {
    let mut plugin = DockerPlugin {
        name: name.to_owned(),
        socket: socket.to_owned(),
        scope: Scope::Local,
        timeout,
    };
    let act: ActivateResponse = plugin
        .call("Plugin.Activate", &serde_json::json!({}))
        .await
        .map_err(|e| NotLoaded::Call(plugin.error("Plugin.Activate", e)))?;
    if !act.implements.iter().any(|i| i == NETWORK_DRIVER) {
        return Err(NotLoaded::NotADriver(if act.implements.is_empty() {
            "nothing".to_owned()
        } else {
            one_line(&act.implements.join(", "))
        }));
    }
    let caps: CapabilitiesResponse = plugin
        .driver_call(method::GET_CAPABILITIES, &serde_json::json!({}))
        .await
        .map_err(|e| NotLoaded::Call(plugin.error(method::GET_CAPABILITIES, e)))?;
    plugin.scope = parse_scope(&caps).map_err(NotLoaded::Capabilities)?;
    Ok(plugin)
}

/// Finds and activates Docker network plugins. Never fails: a plugin that
/// cannot be used is listed with the reason. Activations run side by side,
/// each bounded by the timeout.
pub async fn discover(cfg: &PluginConfig) -> Vec<Found> {
    let timeout = timeout();
    let mut first: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut jobs = Vec::new();
    for c in candidates(cfg) {
        let info = PluginInfo {
            name: c.name.clone(),
            transport: "docker".into(),
            path: c.file.display().to_string(),
            abi: None,
            status: String::new(),
        };
        if let Some(earlier) = first.get(&c.name) {
            let status = format!("ignored: {} defines plugin {:?} first", earlier.display(), c.name);
            jobs.push(futures_util::future::Either::Left(async move {
                Found {
                    info: PluginInfo { status, ..info },
                    driver: None,
                }
            }));
            continue;
        }
        first.insert(c.name.clone(), c.file.clone());
        jobs.push(futures_util::future::Either::Right(async move {
            let activated = match c.socket {
                Ok(socket) => activate(&c.name, &socket, timeout).await,
                Err(why) => Err(NotLoaded::Refused(why)),
            };
            match activated {
                Ok(p) => Found {
                    info: PluginInfo {
                        status: "loaded".into(),
                        ..info
                    },
                    driver: Some(Arc::new(DockerDriver(Arc::new(p))) as Arc<dyn NetworkDriver>),
                },
                Err(why) => Found {
                    info: PluginInfo {
                        status: why.to_string(),
                        ..info
                    },
                    driver: None,
                },
            }
        }));
    }
    futures_util::future::join_all(jobs).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unix_addresses_are_reached() {
        assert_eq!(
            unix_address("unix:///run/p.sock\n"),
            Ok(PathBuf::from("/run/p.sock"))
        );
        assert!(
            unix_address("tcp://localhost:8080")
                .unwrap_err()
                .to_string()
                .contains("unix sockets only")
        );
        assert!(
            unix_address("/run/p.sock")
                .unwrap_err()
                .to_string()
                .contains("no scheme")
        );
        assert!(unix_address("unix://relative").is_err());
    }
}
