//! The listener, and what every request and answer goes through before
//! and after its route: the API version of the path, and Docker's headers.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use berth_api::{API_VERSION, ApiVersion, PING_HEADERS};

use crate::api::error::ApiError;
use crate::api::listen::{self, BodyLimits, Listen};
use crate::api::routes::router;
use crate::engine::Engine;
use crate::{Error, Result};

/// The API version a path starts with (`/v1.41/networks` → `1.41`) and the
/// path without it; `None` when it has none. A prefix that looks like a
/// version (`/v` and digits and dots) but is not one is an error.
fn split_version(path: &str) -> Option<(Result<ApiVersion, Error>, &str)> {
    let rest = path.strip_prefix("/v")?;
    let slash = rest.find('/')?;
    let v = &rest[..slash];
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let version = v.parse::<ApiVersion>().map_err(Error::Api);
    Some((version, &rest[slash..]))
}

/// Takes a `/v1.24`…`/v1.47` prefix off the path (Docker clients always
/// send one), refuses another version in Docker's words (400), and puts
/// Docker's headers on the answer: `Api-Version` (without it a Docker
/// client falls back to API 1.24), `Ostype`, `Server`, ….
pub(super) async fn docker_compat(mut req: Request, next: Next) -> Response {
    let refused = match split_version(req.uri().path()) {
        None => None,
        Some((Err(e), _)) => Some(e),
        Some((Ok(v), rest)) => match v.check() {
            Err(why) => Some(Error::Api(why)),
            Ok(()) => {
                let new = match req.uri().query() {
                    Some(q) => format!("{rest}?{q}"),
                    None => rest.to_owned(),
                };
                if let Ok(uri) = new.parse::<Uri>() {
                    *req.uri_mut() = uri;
                }
                None
            }
        },
    };
    let mut resp = match refused {
        Some(e) => ApiError(e).into_response(),
        None => next.run(req).await,
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&API_VERSION.to_string()) {
        h.insert("api-version", v);
    }
    h.insert(
        "server",
        HeaderValue::from_static(concat!("berth/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    for (name, value) in PING_HEADERS {
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            h.insert(name, HeaderValue::from_static(value));
        }
    }
    resp
}

/// Serves the API as `listen` says until `shutdown` resolves: the socket
/// 0660 with the daemon's group, within the limits of
/// [`Limits`](super::Limits).
pub async fn serve(
    engine: Arc<Engine>,
    listen: &Listen,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = listen::bind(&listen.socket, listen.gid)?;
    let _ = super::routes::SOCKET.set(listen.socket.clone());
    let body = BodyLimits {
        max: listen.limits.max_body,
        timeout: listen.limits.header_timeout,
    };
    let app = tower::Layer::layer(
        &middleware::from_fn(docker_compat),
        tower::Layer::layer(
            &middleware::from_fn_with_state(body, listen::limit_body),
            router(engine),
        ),
    );
    listen::run(listener, app, listen.limits, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefixes_are_read() {
        let (v, rest) = split_version("/v1.41/networks/x").unwrap();
        assert_eq!(v.unwrap(), ApiVersion::new(1, 41));
        assert_eq!(rest, "/networks/x");
        assert!(split_version("/networks").is_none());
        assert!(split_version("/version").is_none());
        assert!(split_version("/v1.41").is_none());
        assert!(split_version("/v1.2.3/x").unwrap().0.is_err());
    }
}
