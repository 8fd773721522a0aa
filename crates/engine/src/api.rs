//! The HTTP API on a unix socket. `/networks` follows the Docker Engine
//! API's shapes (a `/v1.xx` prefix is accepted and ignored), so Docker
//! clients can drive berth networks; `/containers` is berth's own.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use berth_core::Error;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::UnixListener;

use crate::containers::ContainerCreate;
use crate::engine::Engine;
use crate::networks::NetworkCreate;

/// An engine error as an HTTP response: `{"message": "..."}` with the
/// status Docker would use.
pub struct ApiError(Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            Error::Invalid(_) | Error::Unsupported(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!("{}", self.0.chain());
        }
        (status, Json(json!({ "message": self.0.chain() }))).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Runs a change to the end even if the client goes away: axum drops a
/// handler's future when its connection closes, which would stop an attach
/// halfway and leave it to the next restart to clean up.
async fn finish<T: Send + 'static>(
    fut: impl std::future::Future<Output = Result<T, Error>> + Send + 'static,
) -> Result<T, Error> {
    tokio::spawn(fut)
        .await
        .map_err(|e| Error::Internal(format!("the operation's task failed: {e}")))?
}
type Eng = State<Arc<Engine>>;

#[derive(Deserialize, Default)]
#[serde(default)]
struct ListQuery {
    filters: String,
    all: String,
    force: String,
}

fn truthy(s: &str) -> bool {
    matches!(s, "1" | "true" | "True")
}

async fn ping() -> &'static str {
    "OK"
}

async fn info(State(e): Eng) -> Json<Value> {
    let drivers: Vec<Value> = e
        .drivers()
        .into_iter()
        .map(|(name, caps, supported)| {
            json!({
                "Name": name,
                "Scope": caps.scope,
                "Options": caps.options,
                "Supported": supported.is_ok(),
                "Unsupported": supported.err().unwrap_or_default(),
            })
        })
        .collect();
    let cfg = e.config();
    Json(json!({
        "Name": "berth",
        "Version": env!("CARGO_PKG_VERSION"),
        "Drivers": drivers,
        "DataRoot": cfg.data_root,
        "ExecRoot": cfg.exec_root,
        "ResolvConf": cfg.resolv_conf,
    }))
}

async fn network_list(State(e): Eng, Query(q): Query<ListQuery>) -> ApiResult<Json<Vec<Value>>> {
    let filters: BTreeMap<String, Vec<String>> = if q.filters.is_empty() {
        BTreeMap::new()
    } else {
        // Docker sends {"name":["x"]} (newer) or {"name":{"x":true}} (older).
        let v: Value = serde_json::from_str(&q.filters)
            .map_err(|e| Error::invalid(format!("invalid filters {:?}: {e}", q.filters)))?;
        let mut out = BTreeMap::new();
        for (k, vals) in v.as_object().into_iter().flatten() {
            let list: Vec<String> = match vals {
                Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect(),
                Value::Object(o) => o.keys().cloned().collect(),
                _ => Vec::new(),
            };
            out.insert(k.clone(), list);
        }
        out
    };
    Ok(Json(e.list_networks(&filters)?))
}

async fn network_inspect(State(e): Eng, UrlPath(id): UrlPath<String>) -> ApiResult<Json<Value>> {
    Ok(Json(e.inspect_network(&id)?))
}

async fn network_create(
    State(e): Eng,
    Json(req): Json<NetworkCreate>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let rec = finish(async move { e.create_network(req).await }).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "Id": rec.net.id, "Warning": "" })),
    ))
}

async fn network_remove(State(e): Eng, UrlPath(id): UrlPath<String>) -> ApiResult<StatusCode> {
    finish(async move { e.remove_network(&id).await }).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn network_prune(State(e): Eng) -> ApiResult<Json<Value>> {
    let deleted = finish(async move { e.prune_networks().await }).await?;
    Ok(Json(json!({ "NetworksDeleted": deleted })))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ConnectRequest {
    container: String,
    endpoint_config: EndpointConfig,
    force: bool,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct EndpointConfig {
    #[serde(rename = "IPAMConfig")]
    ipam_config: IpamConfigReq,
    aliases: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct IpamConfigReq {
    #[serde(rename = "IPv4Address")]
    ipv4: String,
    #[serde(rename = "IPv6Address")]
    ipv6: String,
}

async fn network_connect(
    State(e): Eng,
    UrlPath(id): UrlPath<String>,
    Json(req): Json<ConnectRequest>,
) -> ApiResult<StatusCode> {
    finish(async move {
        let ip = &req.endpoint_config.ipam_config;
        e.connect(
            &id,
            &req.container,
            &ip.ipv4,
            &ip.ipv6,
            &req.endpoint_config.aliases,
        )
        .await
    })
    .await?;
    Ok(StatusCode::OK)
}

async fn network_disconnect(
    State(e): Eng,
    UrlPath(id): UrlPath<String>,
    Json(req): Json<ConnectRequest>,
) -> ApiResult<StatusCode> {
    finish(async move { e.disconnect(&id, &req.container, req.force).await }).await?;
    Ok(StatusCode::OK)
}

async fn network_check(State(e): Eng, UrlPath(id): UrlPath<String>) -> ApiResult<Json<Vec<Value>>> {
    Ok(Json(e.check_network(&id).await?))
}

async fn container_create(
    State(e): Eng,
    Json(req): Json<ContainerCreate>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let created = finish(async move { e.create_container(req).await }).await?;
    Ok((StatusCode::CREATED, Json(json!(created))))
}

async fn container_list(State(e): Eng, Query(q): Query<ListQuery>) -> Json<Vec<Value>> {
    Json(e.list_containers(truthy(&q.all)))
}

async fn container_inspect(State(e): Eng, UrlPath(id): UrlPath<String>) -> ApiResult<Json<Value>> {
    Ok(Json(e.inspect_container(&id)?))
}

async fn container_remove(
    State(e): Eng,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<StatusCode> {
    finish(async move { e.remove_container(&id, truthy(&q.force)).await }).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Started {
    pid: u32,
}

async fn container_started(
    State(e): Eng,
    UrlPath(id): UrlPath<String>,
    Json(s): Json<Started>,
) -> ApiResult<StatusCode> {
    finish(async move { e.container_started(&id, s.pid).await }).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Exited {
    exit_code: i32,
}

async fn container_exited(
    State(e): Eng,
    UrlPath(id): UrlPath<String>,
    Json(x): Json<Exited>,
) -> ApiResult<StatusCode> {
    finish(async move { e.container_exited(&id, x.exit_code).await }).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn container_logs(State(e): Eng, UrlPath(id): UrlPath<String>) -> ApiResult<Vec<u8>> {
    Ok(e.logs(&id)?)
}

async fn plugin_list(State(e): Eng) -> Json<Value> {
    Json(json!(e.plugins()))
}

async fn plugin_reload(State(e): Eng) -> Json<Value> {
    Json(json!(e.reload_plugins().await))
}

async fn system_reconcile(State(e): Eng) -> ApiResult<StatusCode> {
    finish(async move { e.reconcile().await }).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError(Error::NotFound(format!("no such endpoint: {}", uri.path())))
}

/// The API's routes.
pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route("/_ping", get(ping))
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
        .route("/plugins", get(plugin_list))
        .route("/plugins/reload", post(plugin_reload))
        .route("/system/reconcile", post(system_reconcile))
        .fallback(not_found)
        .with_state(engine)
}

/// Drops a leading `/v1.41`-style version from the path, so Docker clients
/// that always send one reach the same routes.
fn strip_version(mut req: Request) -> Request {
    let path = req.uri().path();
    if let Some(rest) = path.strip_prefix("/v")
        && let Some(slash) = rest.find('/')
        && rest[..slash].chars().all(|c| c.is_ascii_digit() || c == '.')
        && slash > 0
    {
        let new = match req.uri().query() {
            Some(q) => format!("{}?{q}", &rest[slash..]),
            None => rest[slash..].to_owned(),
        };
        if let Ok(uri) = new.parse::<Uri>() {
            *req.uri_mut() = uri;
        }
    }
    req
}

/// Serves the API on `socket` until `shutdown` resolves.
pub async fn serve(
    engine: Arc<Engine>,
    socket: &Path,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> berth_core::Result<()> {
    let _ = std::fs::remove_file(socket);
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::kernel(format!("creating {}", dir.display()), e))?;
    }
    let listener = UnixListener::bind(socket)
        .map_err(|e| Error::kernel(format!("listening on {}", socket.display()), e))?;
    let app = tower::ServiceExt::map_request(router(engine), strip_version);
    axum::serve(listener, axum::ServiceExt::<Request>::into_make_service(app))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::kernel("serving the API", e))
}
