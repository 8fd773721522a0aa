//! berth's drivers for a real dockerd (`berth daemon --serve-docker`):
//! Docker's remote network-driver and IPAM protocols (HTTP+JSON on unix
//! sockets), served from berth's engine, so that `docker network create -d
//! berth-bridge --ipam-driver berth NAME` makes a berth network.
//!
//! | socket              | Docker's name    | what answers                  |
//! |---------------------|------------------|-------------------------------|
//! | `berth-DRIVER.sock` | `-d berth-DRIVER`| berth's driver `DRIVER` (bridge, macvlan, ipvlan, overlay, loaded plugins) |
//! | `berth.sock`        | `--ipam-driver berth` | berth's IPAM ([`ipam`])  |
//!
//! How Docker's objects map to berth's ([`book`] keeps the mapping in
//! berth's store, so that neither side's restart loses it):
//! - a Docker network is a berth network named after Docker's network id,
//!   or the berth network `-o berth.network=NAME` names (then berth's own
//!   containers and Docker's share it; the network stays when Docker's goes);
//! - a Docker endpoint is a berth endpoint whose interface berth's driver
//!   makes in a namespace of its own for the moment ("staging"), with its
//!   final addresses, named `bd` and 12 hex digits of the endpoint id; berth
//!   then moves it into the host's namespace and `Join` answers its name as
//!   `SrcName`: Docker moves it into the container and names it `eth0`,
//!   `eth1`, … (`DstPrefix` `eth`), with the address and MAC of
//!   `CreateEndpoint` and the gateway of `Join`. On `Leave` Docker has moved
//!   it back under its `SrcName`; berth's driver undoes its attach and berth
//!   deletes what is left of it in the host.
//!
//! Every driver declares scope `local`: a dockerd without swarm or a
//! key-value store refuses `global` networks ("datastore for scope global
//! is not initialized"), and berth's overlay makes one network of the
//! networks of the same name on every host itself, through etcd. On a
//! global network in a cluster ([`cluster`]), Docker's addresses are
//! claimed in the cluster store (by `RequestAddress`, or `CreateEndpoint`
//! for another IPAM's) and its joined endpoints announced there, as
//! berth's own containers' are: the other hosts program their tunnels to
//! them, and no host gives an address twice. The overlay on every host is
//! then `docker network create -d berth-overlay --ipam-driver berth -o
//! berth.network=NAME --ipam-opt berth.network=NAME NAME`, NAME made once
//! with `berth network create -d overlay NAME` on any host.

pub(crate) mod book;
mod cluster;
mod ipam;
mod network;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use berth_plugin::protocol::ErrorResponse;
use serde::Serialize;

use crate::api::Limits;
use crate::engine::Engine;
use crate::{Error, Result};

pub use book::Book;

/// Where dockerd looks for plugin sockets: `--serve-docker`'s default.
pub const DEFAULT_DIR: &str = "/run/docker/plugins";

/// The IPAM plugin's name (`--ipam-driver berth`) and socket stem.
pub const IPAM_NAME: &str = "berth";

/// Docker's media type of plugin answers.
const MEDIA_TYPE: &str = "application/vnd.docker.plugins.v1+json";

/// The drivers berth does not serve: Docker has its own `host` and `null`.
const NOT_SERVED: [&str; 3] = ["host", "none", "null"];

/// What one socket serves.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Role {
    /// `IpamDriver`.
    Ipam,
    /// `NetworkDriver` backed by berth's driver of this name.
    Driver(String),
}

#[derive(Clone)]
struct Served {
    engine: Arc<Engine>,
    role: Role,
}

/// A refusal in Docker's shape: `{"Err": "..."}` with a status.
#[derive(Debug)]
pub(crate) struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    /// A 500 with `message`, what Docker shows the user after "Error
    /// response from daemon:".
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }

    fn with_status(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Self::new(e.chain())
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        json(self.status, &ErrorResponse { err: self.message })
    }
}

/// The answer of one call.
pub(crate) type Answer = std::result::Result<serde_json::Value, Refusal>;

fn json(status: StatusCode, value: &impl Serialize) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    r
}

/// Decodes a request body (an empty one as `{}`), or says which call's
/// request did not decode.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    call: &str,
    body: &[u8],
) -> std::result::Result<T, Refusal> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        &b"{}"[..]
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        Refusal::with_status(
            StatusCode::BAD_REQUEST,
            format!("decoding the request of {call}: {e}"),
        )
    })
}

async fn call(State(s): State<Served>, UrlPath(call): UrlPath<String>, body: Bytes) -> Response {
    let answer = match (&s.role, call.as_str()) {
        (_, "Plugin.Activate") => Ok(serde_json::json!({
            "Implements": [if s.role == Role::Ipam { "IpamDriver" } else { "NetworkDriver" }]
        })),
        (Role::Ipam, c) => match c.strip_prefix("IpamDriver.") {
            Some(m) => ipam::call(&s.engine, m, &body).await,
            None => Err(unknown(&call)),
        },
        (Role::Driver(d), c) => match c.strip_prefix("NetworkDriver.") {
            Some(m) => network::call(&s.engine, d, m, &body).await,
            None => Err(unknown(&call)),
        },
    };
    match answer {
        Ok(v) => json(StatusCode::OK, &v),
        Err(r) => {
            tracing::warn!(call, "refused for dockerd: {}", r.message);
            r.into_response()
        }
    }
}

fn unknown(call: &str) -> Refusal {
    Refusal::with_status(StatusCode::NOT_FOUND, format!("{call}: no such call"))
}

/// The sockets `--serve-docker` serves in `dir`: the IPAM plugin's and one
/// per driver berth has (built-in and loaded plugins), but `host` and
/// `none`.
fn sockets(engine: &Engine, dir: &Path) -> Vec<(PathBuf, Role)> {
    let mut out = vec![(dir.join(format!("{IPAM_NAME}.sock")), Role::Ipam)];
    for (name, _, _) in engine.drivers() {
        if !NOT_SERVED.contains(&name.as_str()) {
            out.push((dir.join(format!("{IPAM_NAME}-{name}.sock")), Role::Driver(name)));
        }
    }
    out
}

/// Whether a plugin of this name (`NAME.sock`) is one `--serve-docker`
/// serves (`berth`, `berth-DRIVER`), which berth's own plugin discovery
/// skips: berth does not load itself.
pub fn is_served_name(name: &str) -> bool {
    name == IPAM_NAME || name.starts_with("berth-")
}

/// The sockets of `--serve-docker`, bound and not yet served.
pub struct Sockets {
    engine: Arc<Engine>,
    bound: Vec<(PathBuf, Role, tokio::net::UnixListener)>,
}

/// Binds the sockets of berth's drivers and IPAM for dockerd in `dir`
/// (made if missing; a socket left there by a daemon that was killed is
/// replaced). A socket that cannot be made is the error, and the ones
/// already made are removed again.
pub fn bind(engine: Arc<Engine>, dir: &Path) -> Result<Sockets> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let mut bound = Vec::new();
    for (path, role) in sockets(&engine, dir) {
        let _ = std::fs::remove_file(&path);
        match crate::api::listen::bind(&path, nix::unistd::getgid().as_raw()) {
            Ok(l) => bound.push((path, role, l)),
            Err(e) => {
                for (p, _, _) in &bound {
                    let _ = std::fs::remove_file(p);
                }
                return Err(e);
            }
        }
    }
    Ok(Sockets { engine, bound })
}

impl Sockets {
    /// Answers dockerd on every socket until `shutdown` resolves, then
    /// removes the sockets.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        let mut paths = Vec::new();
        for (path, role, listener) in self.bound {
            tracing::info!(socket = %path.display(), "serving dockerd");
            let app = Router::new().route("/{call}", post(call)).with_state(Served {
                engine: self.engine.clone(),
                role,
            });
            let mut stopped = stopped.clone();
            let done = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            tasks.push(tokio::spawn(crate::api::listen::run(
                listener,
                app,
                Limits::default(),
                done,
            )));
            paths.push(path);
        }
        shutdown.await;
        let _ = stop.send(true);
        for t in tasks {
            let _ = t.await;
        }
        for p in paths {
            let _ = std::fs::remove_file(p);
        }
    }
}
