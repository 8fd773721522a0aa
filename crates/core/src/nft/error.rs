//! [`NftError`]: what was being done when the kernel (or the socket)
//! said no, and the errno it gave.

use std::fmt;
use std::io;

/// Why a batch failed: what was being done (the operation, its set and
/// table, and where the kernel can tell, which element or name it refused),
/// and the errno, kept as the [`source`](std::error::Error::source) and by
/// [`errno`](NftError::errno).
///
/// It becomes a [`crate::Error::Nft`] with `?`, or a
/// [`crate::Error::Firewall`] that says what the batch was for.
///
/// Printed with its cause (`{:#}` in anyhow, [`crate::Error::chain`]):
/// `nftables: adding 2 elements to set inet berth bridges (at the set name):
/// No such file or directory (os error 2)`.
#[derive(Debug)]
pub struct NftError {
    what: String,
    detail: Option<String>,
    source: io::Error,
}

impl NftError {
    pub(super) fn new(what: impl Into<String>, detail: Option<String>, errno: i32) -> Self {
        Self {
            what: what.into(),
            detail,
            source: io::Error::from_raw_os_error(errno),
        }
    }

    pub(super) fn io(what: impl Into<String>, source: io::Error) -> Self {
        Self {
            what: what.into(),
            detail: None,
            source,
        }
    }

    /// The errno the kernel (or the socket) reported, e.g. `libc::ENOENT`
    /// when the table, set or element to delete does not exist, `libc::EEXIST`
    /// when a map key is already mapped to other data, `libc::EINVAL` for a
    /// key of the wrong length.
    pub fn errno(&self) -> i32 {
        self.source.raw_os_error().unwrap_or(libc::EIO)
    }
}

impl fmt::Display for NftError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "nftables: {}", self.what)?;
        if let Some(detail) = &self.detail {
            write!(f, " ({detail})")?;
        }
        Ok(())
    }
}

impl std::error::Error for NftError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl From<NftError> for io::Error {
    /// An `io::Error` of the same kind that wraps the `NftError`: it prints
    /// the same and its `source()` is the errno, but its own
    /// `raw_os_error()` is `None` (an `io::Error` holds an errno or a
    /// message, not both). Get the errno back by walking `source()` or by
    /// downcasting `get_ref()` to `NftError`.
    fn from(err: NftError) -> Self {
        io::Error::new(err.source.kind(), err)
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    #[test]
    fn an_nft_error_as_an_io_error_keeps_kind_message_and_errno() {
        let err = NftError::new("deleting 1 element from set inet berth icc", None, libc::ENOENT);
        let text = err.to_string();
        let io_err = io::Error::from(err);
        assert_eq!(io_err.kind(), io::ErrorKind::NotFound);
        assert_eq!(io_err.to_string(), text);
        let inner = io_err
            .get_ref()
            .and_then(|e| e.downcast_ref::<NftError>())
            .unwrap();
        assert_eq!(inner.errno(), libc::ENOENT);
        let source = std::error::Error::source(&io_err).unwrap();
        assert_eq!(
            source
                .downcast_ref::<io::Error>()
                .and_then(io::Error::raw_os_error),
            Some(libc::ENOENT)
        );
        let wrapped = crate::Error::io("removing firewall elements for bridge br0", io_err);
        assert_eq!(
            wrapped.chain(),
            format!(
                "removing firewall elements for bridge br0: {text}: No such file or directory (os error 2)"
            )
        );
    }
}
