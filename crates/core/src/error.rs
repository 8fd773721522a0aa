use std::io;

/// The one error type every berth crate shares.
///
/// The variant says how the caller should treat the failure (the API maps
/// them to HTTP status codes); the message says what was being done, and
/// the cause, when there is one, sits in `#[source]` with its errno intact.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request itself is wrong: a bad option, address or name.
    #[error("{0}")]
    Invalid(String),
    /// The named object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request clashes with existing state (a name or address in use).
    #[error("{0}")]
    Conflict(String),
    /// The operation is never allowed on this object (removing a
    /// pre-defined network); the API answers 403, as Docker does.
    #[error("{0}")]
    Forbidden(String),
    /// This kernel or build cannot do what was asked.
    #[error("{0}")]
    Unsupported(String),
    /// The kernel (netlink, a syscall, a file under /proc) refused; the
    /// string says what we were doing.
    #[error("{0}")]
    Kernel(String, #[source] io::Error),
    /// A broken invariant or an outside program that failed.
    #[error("{0}")]
    Internal(String),
}

/// `Result` with berth's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds an [`Error::Invalid`] from anything printable.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::Invalid(msg.into())
    }

    /// Builds an [`Error::Kernel`] for an `io::Error` and what we were doing.
    pub fn kernel(what: impl Into<String>, err: io::Error) -> Self {
        Self::Kernel(what.into(), err)
    }

    /// Maps an rtnetlink failure to [`Error::Kernel`], keeping the errno.
    pub fn netlink(what: impl Into<String>, err: rtnetlink::Error) -> Self {
        Self::Kernel(what.into(), netlink_io(err))
    }

    /// The errno behind a kernel error, if there is one anywhere in its
    /// chain of causes.
    pub fn errno(&self) -> Option<i32> {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(self);
        while let Some(c) = cause {
            if let Some(code) = c.downcast_ref::<io::Error>().and_then(io::Error::raw_os_error) {
                return Some(code);
            }
            cause = c.source();
        }
        None
    }

    /// The message with every cause appended once, as `{:#}` prints it in
    /// `anyhow`: "creating bridge br0: File exists (os error 17)".
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            out.push_str(": ");
            out.push_str(&c.to_string());
            cause = c.source();
        }
        out
    }
}

/// Turns an rtnetlink error into an `io::Error`, keeping the errno when the
/// kernel sent one.
pub fn netlink_io(err: rtnetlink::Error) -> io::Error {
    match err {
        rtnetlink::Error::NetlinkError(msg) => msg.to_io(),
        other => io::Error::other(other.to_string()),
    }
}

/// True when an rtnetlink error carries the given errno (positive, e.g.
/// `libc::ENODEV`).
pub fn is_errno(err: &rtnetlink::Error, errno: i32) -> bool {
    matches!(err, rtnetlink::Error::NetlinkError(m) if m.raw_code() == -errno)
}
