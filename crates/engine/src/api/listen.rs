//! The socket and the bounds on what a client can hold.
//!
//! - The socket is made under a temporary name, given mode 0660 and the
//!   daemon's group, and only then renamed into place: there is no moment
//!   when anyone else may connect.
//! - A connection has [`Limits::header_timeout`] to send a request's
//!   headers, the first one and each one after on a kept-alive connection
//!   (so an idle connection is closed after that long too), and as long
//!   for the body; a client that is slower is dropped (a body too slow is
//!   answered 408).
//! - At most [`Limits::max_connections`] connections are served at once.
//!   Further clients are not refused: they wait in the socket's backlog,
//!   and are served in turn as soon as a connection ends. Since no client
//!   holds a connection idle for longer than the header timeout, a full
//!   house drains by itself.
//! - A body longer than [`Limits::max_body`] is answered 413 without
//!   being read (by its `Content-Length`, or as soon as a chunked body
//!   passes the limit).

use std::convert::Infallible;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::UnixListener;
use tokio::sync::{Semaphore, watch};

use crate::api::error::ApiError;
use crate::{Error, Result};

/// The most [`Limits::max_connections`] can be.
pub const MAX_CONNECTIONS: usize = 65536;

/// What one client may hold of the daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// How long a client has to send a request's headers (and its body),
    /// and how long a kept-alive connection may stay idle.
    pub header_timeout: Duration,
    /// Connections served at once; more wait their turn.
    pub max_connections: usize,
    /// The longest request body accepted, in bytes.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(30),
            max_connections: 256,
            max_body: 1 << 20,
        }
    }
}

/// Where and for whom the API listens.
#[derive(Clone, Debug)]
pub struct Listen {
    /// The socket's path.
    pub socket: PathBuf,
    /// The group that may connect besides root (the socket's group).
    pub gid: u32,
    /// What one client may hold.
    pub limits: Limits,
}

/// The limits a request's body is read under, for [`super::error::Body`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct BodyLimits {
    pub max: usize,
    pub timeout: Duration,
}

impl Default for BodyLimits {
    fn default() -> Self {
        let l = Limits::default();
        Self {
            max: l.max_body,
            timeout: l.header_timeout,
        }
    }
}

/// Answers 413 to a body whose declared length is over the limit, and
/// hands the limits to the extractor that reads bodies.
pub(crate) async fn limit_body(State(limits): State<BodyLimits>, mut req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max as u64) {
        return ApiError(Error::BodyTooLarge { limit: limits.max }).into_response();
    }
    req.extensions_mut().insert(limits);
    next.run(req).await
}

/// Binds the socket with mode 0660 and group `gid`, made under a temporary
/// name and renamed into place.
pub(crate) fn bind(socket: &Path, gid: u32) -> Result<UnixListener> {
    let dir = socket.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    let mut tmp = socket.as_os_str().to_owned();
    tmp.push(format!(".{}.new", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let listener =
        UnixListener::bind(&tmp).map_err(|e| Error::io(format!("listening on {}", tmp.display()), e))?;
    let secured = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| Error::io(format!("setting the mode of {} to 660", tmp.display()), e))
        .and_then(|()| {
            std::os::unix::fs::chown(&tmp, None, Some(gid))
                .map_err(|e| Error::io(format!("giving {} to group {gid}", tmp.display()), e))
        })
        .and_then(|()| {
            std::fs::rename(&tmp, socket)
                .map_err(|e| Error::io(format!("moving {} to {}", tmp.display(), socket.display()), e))
        });
    if let Err(e) = secured {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(listener)
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves,
/// then lets every connection finish its request.
pub(crate) async fn run<S>(
    listener: UnixListener,
    app: S,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let max = limits.max_connections.clamp(1, MAX_CONNECTIONS);
    let slots = Arc::new(Semaphore::new(max));
    let (stop, stopped) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        // A slot first: without one, the next client waits in the backlog.
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
        let stream = tokio::select! {
            r = listener.accept() => r,
            () = &mut shutdown => break,
        };
        let stream = match stream {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of file descriptors, most likely: let some go.
                tracing::warn!("accepting an API connection: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let svc = TowerToHyperService::new(tower::ServiceExt::map_request(
            app.clone(),
            |r: hyper::Request<Incoming>| r.map(Body::new),
        ));
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let mut conn = pin!(
                hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(limits.header_timeout)
                    .serve_connection(TokioIo::new(stream), svc)
            );
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!("API connection: {e}");
                    }
                }
                // The one change is to true (or the server gone).
                _ = stopped.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every connection gives its slot back when it ends.
    let _ = slots.acquire_many(max as u32).await;
    Ok(())
}
