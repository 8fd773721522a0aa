//! [`Error`]: what the API's own types refuse.

use crate::version::{API_VERSION, ApiVersion, MIN_API_VERSION};

/// Why a value of the API's types is refused: an API version that is not
/// one, or one berth does not serve (in Docker's words).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A string that is not `MAJOR.MINOR`.
    #[error("invalid API version {0:?} (accepted: MAJOR.MINOR, from {MIN_API_VERSION} to {API_VERSION})")]
    BadVersion(String),
    /// A version older than [`MIN_API_VERSION`].
    #[error(
        "client version {0} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
    )]
    VersionTooOld(ApiVersion),
    /// A version newer than [`API_VERSION`].
    #[error("client version {0} is too new. Maximum supported API version is {API_VERSION}")]
    VersionTooNew(ApiVersion),
}
