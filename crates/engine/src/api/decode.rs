//! The daemon's reading of a request, without an engine behind it.
//!
//! [`read`] takes a request through everything the daemon takes it
//! through before a route's handler asks the engine anything: the API
//! version prefix and Docker's headers (the same middleware as
//! [`serve`](super::serve())), the route, the route's extractors (the
//! `{id}` of the path, the query string, `filters` in both of Docker's
//! encodings, the JSON body), then the checks that need no engine (what
//! berth refuses in a create or a connect, which filters a list or a prune
//! takes). The handlers here mirror those of `routes.rs` one for one, with
//! the same extractors in the same order; a test checks that every route
//! the daemon has is read here. `fuzz/fuzz_targets/api_request.rs` feeds
//! it hostile requests.

use std::cell::RefCell;
use std::sync::OnceLock;

use axum::Router;
use axum::body::Body as HttpBody;
use axum::extract::Request as HttpRequest;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use berth_api::{
    ContainerCreateRequest, ContainerExited, ContainerStarted, Filters, NetworkConnectRequest,
    NetworkCreateRequest, NetworkDisconnectRequest, SandboxAttachRequest, SandboxDetachRequest,
    SandboxPruneRequest,
};
use tower::ServiceExt;

use super::error::{ApiError, Body, Id, Params};
use super::routes::{
    Query, check_connect, check_create, filters, method_not_allowed, not_found, stop_timeout, tail, truthy,
};
use super::serve::docker_compat;
use super::{ContainerFilter, NetworkFilter};
use crate::containers::parse_signal;
use crate::{Error, Unsupported};

/// A request the daemon would hand to its engine, as it read it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // each variant is its route, named in the table of `berth_api`
pub enum Request {
    Ping,
    Version,
    Info,
    NetworkList(Filters),
    NetworkInspect(String),
    NetworkCreate(NetworkCreateRequest),
    NetworkRemove(String),
    NetworkPrune(Filters),
    NetworkConnect(String, NetworkConnectRequest),
    NetworkDisconnect(String, NetworkDisconnectRequest),
    NetworkCheck(String),
    ContainerCreate(ContainerCreateRequest),
    ContainerList {
        all: bool,
        filters: Filters,
    },
    ContainerInspect(String),
    ContainerRemove {
        id: String,
        force: bool,
    },
    ContainerStarted(String, ContainerStarted),
    ContainerExited(String, ContainerExited),
    ContainerLogs {
        id: String,
        tail: Option<usize>,
        timestamps: bool,
    },
    ContainerStart(String),
    ContainerStop {
        id: String,
        timeout: std::time::Duration,
    },
    ContainerRestart {
        id: String,
        timeout: std::time::Duration,
    },
    ContainerKill {
        id: String,
        signal: String,
    },
    ContainerWait(String),
    PluginList,
    PluginReload,
    SandboxAttach(SandboxAttachRequest),
    SandboxDetach(SandboxDetachRequest),
    SandboxCheck(SandboxDetachRequest),
    SandboxPrune(SandboxPruneRequest),
    SystemReconcile,
}

/// A request the daemon answers itself, before its engine sees it: the
/// status and the `message` of its `{"message": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The HTTP status (400, 404, 405).
    pub status: u16,
    /// What the answer says.
    pub message: String,
}

type Read = Result<Response, ApiError>;

/// The answer of a handler that read its request: 200, with the request.
fn found(r: Request) -> Read {
    let mut resp = StatusCode::OK.into_response();
    resp.extensions_mut().insert(r);
    Ok(resp)
}

/// The daemon's routes and extractors, with handlers that stop where the
/// engine would begin (see `routes::router`).
fn router() -> Router {
    Router::new()
        .route("/_ping", get(|| async { found(Request::Ping) }))
        .route("/version", get(|| async { found(Request::Version) }))
        .route("/info", get(|| async { found(Request::Info) }))
        .route(
            "/networks",
            get(|Params(q): Params<Query>| async move {
                let f = filters(&q)?;
                NetworkFilter::list(&f)?;
                found(Request::NetworkList(f))
            }),
        )
        .route(
            "/networks/create",
            post(|Body(req): Body<NetworkCreateRequest>| async move {
                check_create(&req)?;
                found(Request::NetworkCreate(req))
            }),
        )
        .route(
            "/networks/prune",
            post(|Params(q): Params<Query>| async move {
                let f = filters(&q)?;
                NetworkFilter::prune(&f)?;
                found(Request::NetworkPrune(f))
            }),
        )
        .route(
            "/networks/{id}",
            get(|Id(id): Id| async move { found(Request::NetworkInspect(id)) })
                .delete(|Id(id): Id| async move { found(Request::NetworkRemove(id)) }),
        )
        .route(
            "/networks/{id}/connect",
            post(|Id(id): Id, Body(req): Body<NetworkConnectRequest>| async move {
                check_connect(&req)?;
                found(Request::NetworkConnect(id, req))
            }),
        )
        .route(
            "/networks/{id}/disconnect",
            post(
                |Id(id): Id, Body(req): Body<NetworkDisconnectRequest>| async move {
                    if req.container.is_empty() {
                        return Err(Error::NoContainerGiven.into());
                    }
                    found(Request::NetworkDisconnect(id, req))
                },
            ),
        )
        .route(
            "/networks/{id}/check",
            post(|Id(id): Id| async move { found(Request::NetworkCheck(id)) }),
        )
        .route(
            "/containers/create",
            post(|Body(req): Body<ContainerCreateRequest>| async move {
                if !req.image.is_empty() {
                    return Err(Error::Unsupported(Unsupported::Image(req.image.clone())).into());
                }
                found(Request::ContainerCreate(req))
            }),
        )
        .route(
            "/containers/json",
            get(|Params(q): Params<Query>| async move {
                let f = filters(&q)?;
                ContainerFilter::new(&f)?;
                found(Request::ContainerList {
                    all: truthy(&q.all),
                    filters: f,
                })
            }),
        )
        .route(
            "/containers/{id}/json",
            get(|Id(id): Id| async move { found(Request::ContainerInspect(id)) }),
        )
        .route(
            "/containers/{id}",
            delete(|Id(id): Id, Params(q): Params<Query>| async move {
                found(Request::ContainerRemove {
                    id,
                    force: truthy(&q.force),
                })
            }),
        )
        .route(
            "/containers/{id}/started",
            post(|Id(id): Id, Body(s): Body<ContainerStarted>| async move {
                found(Request::ContainerStarted(id, s))
            }),
        )
        .route(
            "/containers/{id}/exited",
            post(|Id(id): Id, Body(x): Body<ContainerExited>| async move {
                found(Request::ContainerExited(id, x))
            }),
        )
        .route(
            "/containers/{id}/logs",
            get(|Id(id): Id, Params(q): Params<Query>| async move {
                found(Request::ContainerLogs {
                    id,
                    tail: tail(&q)?,
                    timestamps: truthy(&q.timestamps),
                })
            }),
        )
        .route(
            "/containers/{id}/start",
            post(|Id(id): Id| async move { found(Request::ContainerStart(id)) }),
        )
        .route(
            "/containers/{id}/stop",
            post(|Id(id): Id, Params(q): Params<Query>| async move {
                let timeout = stop_timeout(&q)?;
                found(Request::ContainerStop { id, timeout })
            }),
        )
        .route(
            "/containers/{id}/restart",
            post(|Id(id): Id, Params(q): Params<Query>| async move {
                let timeout = stop_timeout(&q)?;
                found(Request::ContainerRestart { id, timeout })
            }),
        )
        .route(
            "/containers/{id}/kill",
            post(|Id(id): Id, Params(q): Params<Query>| async move {
                let signal = if q.signal.is_empty() {
                    "SIGKILL".to_owned()
                } else {
                    parse_signal(&q.signal)?.as_str().to_owned()
                };
                found(Request::ContainerKill { id, signal })
            }),
        )
        .route(
            "/sandboxes/attach",
            post(|Body(req): Body<SandboxAttachRequest>| async move { found(Request::SandboxAttach(req)) }),
        )
        .route(
            "/sandboxes/detach",
            post(|Body(req): Body<SandboxDetachRequest>| async move { found(Request::SandboxDetach(req)) }),
        )
        .route(
            "/sandboxes/check",
            post(|Body(req): Body<SandboxDetachRequest>| async move { found(Request::SandboxCheck(req)) }),
        )
        .route(
            "/sandboxes/prune",
            post(|Body(req): Body<SandboxPruneRequest>| async move { found(Request::SandboxPrune(req)) }),
        )
        .route(
            "/containers/{id}/wait",
            post(|Id(id): Id| async move { found(Request::ContainerWait(id)) }),
        )
        .route("/plugins", get(|| async { found(Request::PluginList) }))
        .route("/plugins/reload", post(|| async { found(Request::PluginReload) }))
        .route(
            "/system/reconcile",
            post(|| async { found(Request::SystemReconcile) }),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

thread_local! {
    /// One small runtime per thread: every step of a read is ready at
    /// once, but axum's services are futures.
    static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

/// Runs `fut` to its end on this thread's runtime.
fn block_on<T>(fut: impl Future<Output = T>) -> Result<T, Refused> {
    RUNTIME.with(|rt| {
        let mut rt = rt.borrow_mut();
        let rt = match rt.as_mut() {
            Some(rt) => rt,
            None => rt.insert(
                tokio::runtime::Builder::new_current_thread()
                    // The body's read has a deadline, as in the daemon.
                    .enable_time()
                    .build()
                    .map_err(|e| Refused {
                        status: 500,
                        message: format!("no runtime: {e}"),
                    })?,
            ),
        };
        Ok(rt.block_on(fut))
    })
}

/// Reads a request as the daemon does: `method`, the request target
/// (`/v1.41/networks?filters=…`) and the body. `Ok` with what the engine
/// would be asked; `Err` with the answer the daemon gives itself. A
/// method or target that hyper would not let through is a 400 here.
pub fn read(method: &[u8], target: &str, body: &[u8]) -> Result<Request, Refused> {
    static ROUTES: OnceLock<Router> = OnceLock::new();
    let refused = |message: &str| Refused {
        status: 400,
        message: message.to_owned(),
    };
    let method = Method::from_bytes(method).map_err(|_| refused("invalid HTTP method"))?;
    let uri: Uri = target.parse().map_err(|_| refused("invalid request target"))?;
    let req = HttpRequest::builder()
        .method(method)
        .uri(uri)
        .body(HttpBody::from(body.to_vec()))
        .map_err(|_| refused("invalid request"))?;
    // Around the router, as `serve` has it: the prefix goes before routing.
    let app = tower::Layer::layer(
        &middleware::from_fn(docker_compat),
        ROUTES.get_or_init(router).clone(),
    );
    let resp = match block_on(app.oneshot(req))? {
        Ok(resp) => resp,
        Err(never) => match never {},
    };
    if let Some(r) = resp.extensions().get::<Request>() {
        return Ok(r.clone());
    }
    let status = resp.status().as_u16();
    let message = match block_on(axum::body::to_bytes(resp.into_body(), usize::MAX))? {
        Ok(b) => serde_json::from_slice::<berth_api::ErrorResponse>(&b)
            .map(|e| e.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&b).into_owned()),
        Err(e) => format!("unreadable answer: {e}"),
    };
    Err(Refused { status, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(method, path)` of every route of `routes::router`, read from its
    /// source: `.route("/path", get(a).delete(b))`.
    fn daemon_routes() -> Vec<(String, String)> {
        let src = include_str!("routes.rs");
        let body = &src[src.find("pub fn router(").expect("routes.rs has router()")..];
        let body = &body[..body.find("\n}\n").unwrap_or(body.len())];
        let mut out = Vec::new();
        for part in body.split(".route(\"").skip(1) {
            let (path, rest) = part.split_once('"').expect("a route's path literal");
            let rest = &rest[..rest.find(".route(").unwrap_or(rest.len())];
            let rest = &rest[..rest.find(".fallback(").unwrap_or(rest.len())];
            for m in ["get", "post", "delete", "put", "patch", "head"] {
                let called = rest.match_indices(&format!("{m}(")).any(|(at, _)| {
                    at == 0 || !rest[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                });
                if called {
                    out.push((m.to_uppercase(), path.to_owned()));
                }
            }
        }
        out
    }

    fn body_for(path: &str) -> &'static [u8] {
        match path {
            "/networks/create" => br#"{"Name":"n"}"#,
            "/containers/create" => br#"{"Cmd":["sh"]}"#,
            p if p.ends_with("/connect") || p.ends_with("/disconnect") => br#"{"Container":"c"}"#,
            p if p.ends_with("/started") => br#"{"Pid":1}"#,
            p if p.ends_with("/exited") => br#"{"ExitCode":0}"#,
            p if p.starts_with("/sandboxes/") => br#"{"Network":"n"}"#,
            _ => b"",
        }
    }

    #[test]
    fn every_route_of_the_daemon_is_read() {
        let routes = daemon_routes();
        assert!(
            routes.len() >= 20,
            "too few routes read from routes.rs: {routes:?}"
        );
        for (method, path) in routes {
            let target = format!("/v1.41{}", path.replace("{id}", "web"));
            let r = read(method.as_bytes(), &target, body_for(&path));
            assert!(r.is_ok(), "{method} {target}: {r:?}");
        }
    }

    #[test]
    fn requests_read_as_the_daemon_reads_them() {
        assert_eq!(
            read(
                b"GET",
                "/v1.41/networks?filters=%7B%22name%22%3A%5B%22web%22%5D%7D",
                b""
            ),
            read(
                b"GET",
                "/networks?filters=%7B%22name%22%3A%7B%22web%22%3Atrue%7D%7D",
                b""
            )
        );
        assert_eq!(
            read(b"DELETE", "/containers/a%20b?force=1", b""),
            Ok(Request::ContainerRemove {
                id: "a b".into(),
                force: true
            })
        );
        let e = read(b"GET", "/v1.99/networks", b"").unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("too new"), "{e:?}");
        let e = read(b"POST", "/networks/create", b"{\"Name\":5}").unwrap_err();
        assert_eq!(
            (e.status, e.message.starts_with("invalid request body: Name:")),
            (400, true)
        );
        let e = read(b"GET", "/networks?filters=%7B%22colour%22%3A%5B%5D%7D", b"").unwrap_err();
        assert!(e.message.contains("invalid filter \"colour\""), "{e:?}");
        assert_eq!(read(b"GET", "/nowhere", b"").unwrap_err().status, 404);
        assert_eq!(read(b"PUT", "/networks/create", b"").unwrap_err().status, 405);
        assert_eq!(read(b"G T", "/", b"").unwrap_err().status, 400);
    }
}
