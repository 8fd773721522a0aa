//! Failures as answers, and the extractors that turn a request that does
//! not decode into one: `{"message": "..."}` with the status Docker uses.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use berth_api::ErrorResponse;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::api::listen::BodyLimits;

/// An engine error as an HTTP answer: `{"message": "..."}` with the status
/// Docker would use ([`Error::status`]): 400 bad input, 403 an operation
/// never allowed (on a pre-defined network), 404 not found, 409 a conflict
/// with what exists, 500 for the rest (also logged).
#[derive(Debug)]
pub struct ApiError(pub Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl ApiError {
    /// The status Docker would answer.
    pub fn status(&self) -> StatusCode {
        self.0.status()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!("{}", self.0.chain());
        }
        let body = ErrorResponse {
            message: self.0.chain(),
        };
        (status, Json(body)).into_response()
    }
}

/// A JSON request body of type `T`. One that is empty or does not decode
/// is a 400 naming the field and what was wrong with it; one longer than
/// the daemon's limit a 413, one too slow to arrive a 408
/// ([`BodyLimits`]).
pub(crate) struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let limits = req.extensions().get::<BodyLimits>().copied().unwrap_or_default();
        let bytes = tokio::time::timeout(limits.timeout, read_body(req.into_body(), limits.max))
            .await
            .map_err(|_| Error::BodyTimeout {
                ms: limits.timeout.as_millis(),
            })??;
        Ok(Self(decode(&bytes)?))
    }
}

/// Reads a body of at most `max` bytes, stopping as soon as it is longer.
async fn read_body(body: axum::body::Body, max: usize) -> Result<Vec<u8>, Error> {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Error::UnreadableBody {
            reason: e.to_string(),
        })?;
        if out.len() + chunk.len() > max {
            return Err(Error::BodyTooLarge { limit: max });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Decodes a request body, naming the field that is wrong
/// (`IPAM.Config[0].Subnet: invalid type: integer `5`, expected a string`).
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::EmptyBody);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        // "." is the whole body; "?" a place serde could not name yet.
        let field = Some(path).filter(|p| p != "." && p != "?");
        Error::BadBody {
            field,
            error: e.into_inner(),
        }
    })?;
    de.end().map_err(|error| Error::BadBody { field: None, error })?;
    Ok(v)
}

/// The query string as `T`; one that does not decode is a 400.
pub(crate) struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match Query::<T>::try_from_uri(&parts.uri) {
            Ok(Query(q)) => Ok(Self(q)),
            Err(e) => Err(Error::BadQuery {
                query: parts.uri.query().unwrap_or_default().to_owned(),
                reason: e.body_text(),
            }
            .into()),
        }
    }
}

/// The `{id}` of a route: a network's or container's name, id or prefix.
pub(crate) struct Id(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) => Ok(Self(id)),
            Err(e) => Err(Error::BadPath {
                path: parts.uri.path().to_owned(),
                reason: e.body_text(),
            }
            .into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use berth_api::NetworkCreateRequest;

    use super::*;

    #[test]
    fn bad_bodies_name_what_is_wrong() {
        let e =
            decode::<NetworkCreateRequest>(br#"{"Name":"x","IPAM":{"Config":[{"Subnet":5}]}}"#).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "invalid request body: IPAM.Config[0].Subnet: invalid type: integer `5`, expected a string"
            ),
            "{e}"
        );
        let e = decode::<NetworkCreateRequest>(b"").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid request body: it is empty (expected a JSON object)"
        );
        let e = decode::<NetworkCreateRequest>(b"{\"Name\":\"x\"} junk").unwrap_err();
        assert!(e.to_string().contains("trailing characters"), "{e}");
        let e = decode::<NetworkCreateRequest>(b"\"x\"").unwrap_err();
        assert!(
            e.to_string().starts_with(
                "invalid request body: invalid type: string \"x\", expected struct NetworkCreateRequest"
            ),
            "{e}"
        );
        let ok = decode::<NetworkCreateRequest>(br#"{"Name":"x","Options":null,"ConfigFrom":null}"#).unwrap();
        assert_eq!(ok.name, "x");
    }
}
