//! One handler per route: a typed request in, a typed answer out.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use berth_api::{
    ContainerCreateRequest, ContainerCreateResponse, ContainerExited, ContainerInspect, ContainerStarted,
    ContainerSummary, ContainerWaitResponse, ErrorResponse, Filters, Network, NetworkCheck,
    NetworkConnectRequest, NetworkCreateRequest, NetworkCreateResponse, NetworkDisconnectRequest,
    NetworkPruneResponse, PluginInfo, SandboxAttachRequest, SandboxAttachResponse, SandboxDetachRequest,
    SandboxPruneRequest, SandboxPruneResponse, SystemInfo, SystemVersion,
};
use serde::Deserialize;

use crate::api::error::{ApiError, Body, Id, Params};
use crate::api::views;
use crate::containers::parse_signal;
use crate::engine::Engine;
use crate::{Error, Result, Unsupported};

type Eng = State<Arc<Engine>>;
type ApiResult<T> = std::result::Result<T, ApiError>;

/// Runs a change to the end even if the client goes away: axum drops a
/// handler's future when its connection closes, which would stop an attach
/// halfway and leave it to the next restart to clean up.
async fn finish<T: Send + 'static>(fut: impl Future<Output = Result<T>> + Send + 'static) -> Result<T> {
    tokio::spawn(fut).await.map_err(|source| Error::Task {
        what: "the operation's task failed",
        source,
    })?
}

/// The query parameters berth reads; the others Docker clients send
/// (`limit`, `size`, `verbose`, `v`, …) are ignored.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Query {
    pub(super) filters: String,
    pub(super) all: String,
    pub(super) force: String,
    /// `stop`, `restart`: seconds before SIGKILL.
    pub(super) t: String,
    /// `kill`: the signal.
    pub(super) signal: String,
    /// `logs`: the last lines only (`all` or a number).
    pub(super) tail: String,
    /// `logs`: each line with its time.
    pub(super) timestamps: String,
}

/// The seconds of `?t=`, 10 when absent, as Docker's; a negative one waits
/// a day.
pub(super) fn stop_timeout(q: &Query) -> Result<std::time::Duration> {
    if q.t.is_empty() {
        return Ok(std::time::Duration::from_secs(10));
    }
    let t: i64 = q.t.parse().map_err(|_| Error::BadQuery {
        query: format!("t={}", q.t),
        reason: "not a whole number of seconds".into(),
    })?;
    Ok(std::time::Duration::from_secs(if t < 0 {
        86_400
    } else {
        t as u64
    }))
}

/// The lines `?tail=` keeps: `None` for all.
pub(super) fn tail(q: &Query) -> Result<Option<usize>> {
    match q.tail.as_str() {
        "" | "all" => Ok(None),
        n => n.parse().map(Some).map_err(|_| Error::BadQuery {
            query: format!("tail={n}"),
            reason: "not a number of lines or \"all\"".into(),
        }),
    }
}

/// The socket the daemon serves, which shims started by `start` report to.
pub(super) static SOCKET: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Docker's reading of a boolean query parameter: anything but empty,
/// `0`, `no`, `false` and `none` is true.
pub(super) fn truthy(s: &str) -> bool {
    !matches!(
        s.to_ascii_lowercase().as_str(),
        "" | "0" | "no" | "false" | "none"
    )
}

pub(super) fn filters(q: &Query) -> Result<Filters> {
    if q.filters.is_empty() {
        return Ok(Filters::new());
    }
    serde_json::from_str(&q.filters).map_err(|error| Error::BadFilters {
        value: q.filters.clone(),
        error,
    })
}

async fn ping() -> &'static str {
    "OK"
}

async fn version() -> Json<SystemVersion> {
    Json(views::version())
}

async fn info(State(e): Eng) -> Json<SystemInfo> {
    let mut info = views::info(&e);
    if let Some(c) = &mut info.cluster {
        e.cluster_hosts(c).await;
    }
    Json(info)
}

async fn network_list(State(e): Eng, Params(q): Params<Query>) -> ApiResult<Json<Vec<Network>>> {
    Ok(Json(e.list_networks(&filters(&q)?)?))
}

async fn network_inspect(State(e): Eng, Id(id): Id) -> ApiResult<Json<Network>> {
    Ok(Json(e.inspect_network(&id)?))
}

/// Refuses what a Docker client may ask for and berth cannot do, naming
/// the flag.
pub(super) fn check_create(r: &NetworkCreateRequest) -> Result<()> {
    let refuse = |what| Err(Error::Unsupported(what));
    if r.ingress {
        return refuse(Unsupported::Ingress);
    }
    if r.config_only {
        return refuse(Unsupported::ConfigOnly);
    }
    if let Some(c) = &r.config_from
        && !c.network.is_empty()
    {
        return refuse(Unsupported::ConfigFrom(c.network.clone()));
    }
    if r.enable_ipv4 == Some(false) {
        return refuse(Unsupported::NoIpv4);
    }
    if !matches!(r.scope.as_str(), "" | "local" | "global") {
        return refuse(Unsupported::Scope(r.scope.clone()));
    }
    if !r.ipam.options.is_empty() {
        return refuse(Unsupported::IpamOptions);
    }
    Ok(())
}

async fn network_create(
    State(e): Eng,
    Body(req): Body<NetworkCreateRequest>,
) -> ApiResult<(StatusCode, Json<NetworkCreateResponse>)> {
    check_create(&req)?;
    let rec = finish(async move { e.create_network(req).await }).await?;
    let answer = NetworkCreateResponse {
        id: rec.net.id,
        warning: String::new(),
    };
    Ok((StatusCode::CREATED, Json(answer)))
}

async fn network_remove(State(e): Eng, Id(id): Id) -> ApiResult<StatusCode> {
    finish(async move { e.remove_network(&id).await }).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn network_prune(State(e): Eng, Params(q): Params<Query>) -> ApiResult<Json<NetworkPruneResponse>> {
    let f = filters(&q)?;
    let deleted = finish(async move { e.prune_networks(&f).await }).await?;
    Ok(Json(NetworkPruneResponse {
        networks_deleted: deleted,
    }))
}

pub(super) fn check_connect(r: &NetworkConnectRequest) -> Result<()> {
    if r.container.is_empty() {
        return Err(Error::NoContainerGiven);
    }
    let ep = &r.endpoint_config;
    if !ep.links.is_empty() {
        return Err(Error::Unsupported(Unsupported::ConnectLinks));
    }
    if !ep.driver_opts.is_empty() {
        return Err(Error::Unsupported(Unsupported::ConnectDriverOptions));
    }
    if ep
        .ipam_config
        .as_ref()
        .is_some_and(|c| !c.link_local_ips.is_empty())
    {
        return Err(Error::Unsupported(Unsupported::LinkLocalAddresses));
    }
    Ok(())
}

async fn network_connect(
    State(e): Eng,
    Id(id): Id,
    Body(req): Body<NetworkConnectRequest>,
) -> ApiResult<StatusCode> {
    check_connect(&req)?;
    finish(async move {
        let ep = req.endpoint_config;
        let ip = ep.ipam_config.unwrap_or_default();
        e.connect(
            &id,
            &req.container,
            &ip.ipv4_address,
            &ip.ipv6_address,
            &ep.aliases,
            &ep.mac_address,
        )
        .await
    })
    .await?;
    Ok(StatusCode::OK)
}

async fn network_disconnect(
    State(e): Eng,
    Id(id): Id,
    Body(req): Body<NetworkDisconnectRequest>,
) -> ApiResult<StatusCode> {
    if req.container.is_empty() {
        return Err(Error::NoContainerGiven.into());
    }
    finish(async move { e.disconnect(&id, &req.container, req.force).await }).await?;
    Ok(StatusCode::OK)
}

async fn network_check(State(e): Eng, Id(id): Id) -> ApiResult<Json<Vec<NetworkCheck>>> {
    Ok(Json(e.check_network(&id).await?))
}

async fn container_create(
    State(e): Eng,
    Body(req): Body<ContainerCreateRequest>,
) -> ApiResult<(StatusCode, Json<ContainerCreateResponse>)> {
    if !req.image.is_empty() {
        return Err(Error::Unsupported(Unsupported::Image(req.image.clone())).into());
    }
    let created = finish(async move { e.create_container(req).await }).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn container_list(State(e): Eng, Params(q): Params<Query>) -> ApiResult<Json<Vec<ContainerSummary>>> {
    Ok(Json(e.list_containers(truthy(&q.all), &filters(&q)?)?))
}

async fn container_inspect(State(e): Eng, Id(id): Id) -> ApiResult<Json<ContainerInspect>> {
    Ok(Json(e.inspect_container(&id)?))
}

async fn container_remove(State(e): Eng, Id(id): Id, Params(q): Params<Query>) -> ApiResult<StatusCode> {
    finish(async move { e.remove_container(&id, truthy(&q.force)).await }).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn container_started(
    State(e): Eng,
    Id(id): Id,
    Body(s): Body<ContainerStarted>,
) -> ApiResult<StatusCode> {
    finish(async move { e.container_started(&id, s.pid).await }).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn container_exited(
    State(e): Eng,
    Id(id): Id,
    Body(x): Body<ContainerExited>,
) -> ApiResult<StatusCode> {
    finish(async move { e.container_exited(&id, x.exit_code).await }).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn container_logs(State(e): Eng, Id(id): Id, Params(q): Params<Query>) -> ApiResult<Vec<u8>> {
    Ok(e.logs(&id, tail(&q)?, truthy(&q.timestamps))?)
}

async fn container_start(State(e): Eng, Id(id): Id) -> ApiResult<StatusCode> {
    let socket = SOCKET.get().cloned().unwrap_or_default();
    finish(async move { e.start_container(&id, &socket).await }).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn container_stop(State(e): Eng, Id(id): Id, Params(q): Params<Query>) -> ApiResult<StatusCode> {
    let t = stop_timeout(&q)?;
    finish(async move { e.stop_container(&id, t).await }).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn container_restart(State(e): Eng, Id(id): Id, Params(q): Params<Query>) -> ApiResult<StatusCode> {
    let t = stop_timeout(&q)?;
    let socket = SOCKET.get().cloned().unwrap_or_default();
    finish(async move {
        e.stop_container(&id, t).await?;
        e.start_container(&id, &socket).await
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn container_kill(State(e): Eng, Id(id): Id, Params(q): Params<Query>) -> ApiResult<StatusCode> {
    let sig = if q.signal.is_empty() {
        nix::sys::signal::Signal::SIGKILL
    } else {
        parse_signal(&q.signal)?
    };
    e.kill_container(&id, sig).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn container_wait(State(e): Eng, Id(id): Id) -> ApiResult<Json<ContainerWaitResponse>> {
    let code = e.wait_container(&id).await?;
    Ok(Json(ContainerWaitResponse {
        status_code: code.into(),
    }))
}

async fn sandbox_attach(
    State(e): Eng,
    Body(req): Body<SandboxAttachRequest>,
) -> ApiResult<(StatusCode, Json<SandboxAttachResponse>)> {
    let made = finish(async move { e.attach_sandbox(req).await }).await?;
    Ok((StatusCode::CREATED, Json(made)))
}

async fn sandbox_detach(State(e): Eng, Body(req): Body<SandboxDetachRequest>) -> ApiResult<StatusCode> {
    finish(async move { e.detach_sandbox(&req).await }).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn sandbox_check(State(e): Eng, Body(req): Body<SandboxDetachRequest>) -> ApiResult<StatusCode> {
    e.check_sandbox(&req).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn sandbox_prune(
    State(e): Eng,
    Body(req): Body<SandboxPruneRequest>,
) -> ApiResult<Json<SandboxPruneResponse>> {
    Ok(Json(finish(async move { e.prune_sandboxes(&req).await }).await?))
}

async fn plugin_list(State(e): Eng) -> Json<Vec<PluginInfo>> {
    Json(e.plugins())
}

async fn plugin_reload(State(e): Eng) -> Json<Vec<PluginInfo>> {
    Json(e.reload_plugins().await)
}

async fn system_reconcile(State(e): Eng) -> ApiResult<StatusCode> {
    finish(async move { e.reconcile().await }).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn not_found(uri: Uri) -> ApiError {
    ApiError(Error::NoSuchRoute {
        path: uri.path().to_owned(),
    })
}

pub(super) async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let body = ErrorResponse {
        message: format!("method {method} is not allowed on {}", uri.path()),
    };
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}

/// The API's routes, without the version prefix (see [`crate::api::serve`]).
/// `decode.rs` mirrors them (its test reads this function's source).
pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/_ping", get(ping))
        .route("/version", get(version))
        .route("/info", get(info))
        .route("/networks", get(network_list))
        .route("/networks/create", post(network_create))
        .route("/networks/prune", post(network_prune))
        .route("/networks/{id}", get(network_inspect).delete(network_remove))
        .route("/networks/{id}/connect", post(network_connect))
        .route("/networks/{id}/disconnect", post(network_disconnect))
        .route("/networks/{id}/check", post(network_check))
        .route("/containers/create", post(container_create))
        .route("/containers/json", get(container_list))
        .route("/containers/{id}/json", get(container_inspect))
        .route("/containers/{id}", delete(container_remove))
        .route("/containers/{id}/started", post(container_started))
        .route("/containers/{id}/exited", post(container_exited))
        .route("/containers/{id}/logs", get(container_logs))
        .route("/containers/{id}/start", post(container_start))
        .route("/containers/{id}/stop", post(container_stop))
        .route("/containers/{id}/restart", post(container_restart))
        .route("/containers/{id}/kill", post(container_kill))
        .route("/containers/{id}/wait", post(container_wait))
        .route("/sandboxes/attach", post(sandbox_attach))
        .route("/sandboxes/detach", post(sandbox_detach))
        .route("/sandboxes/check", post(sandbox_check))
        .route("/sandboxes/prune", post(sandbox_prune))
        .route("/plugins", get(plugin_list))
        .route("/plugins/reload", post(plugin_reload))
        .route("/system/reconcile", post(system_reconcile))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(engine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_read_like_dockers() {
        for t in ["1", "true", "True", "yes"] {
            assert!(truthy(t), "{t}");
        }
        for f in ["", "0", "false", "FALSE", "no", "none"] {
            assert!(!truthy(f), "{f}");
        }
    }

    #[test]
    fn swarm_only_requests_are_refused_by_flag() {
        let mut r = NetworkCreateRequest {
            name: "x".into(),
            ..Default::default()
        };
        check_create(&r).unwrap();
        r.ingress = true;
        assert!(check_create(&r).unwrap_err().to_string().contains("--ingress"));
        r.ingress = false;
        r.scope = "swarm".into();
        assert!(
            check_create(&r)
                .unwrap_err()
                .to_string()
                .contains("accepted: local")
        );
    }
}
