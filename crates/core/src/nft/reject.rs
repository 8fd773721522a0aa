//! What the kernel refused in a batch ([`Reject`]), and the [`NftError`]
//! that names the operation, its set and table, and the element or name
//! the kernel pointed at.

use super::batch::{Batch, Op};
use super::error::NftError;

/// Why a transaction failed.
pub(super) enum Failure {
    /// The kernel refused some messages (sorted by position in the batch).
    Rejected(Vec<Reject>),
    /// The batch could not be built, sent or answered.
    Io(NftError),
}

impl From<NftError> for Failure {
    fn from(e: NftError) -> Self {
        Self::Io(e)
    }
}

/// One message the kernel refused.
#[derive(Debug)]
pub(super) struct Reject {
    /// The op, or `None` for the batch as a whole (a failed commit).
    pub(super) op: Option<usize>,
    /// The op's element the kernel refused, when it says so.
    pub(super) element: Option<usize>,
    /// The refused message carried this one element only.
    pub(super) alone: bool,
    pub(super) at: Option<Spot>,
    pub(super) errno: i32,
    pub(super) msg: Option<String>,
}

/// Where in a message the kernel pointed, when not at an element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Spot {
    Table,
    Set,
}

/// Builds the error for a refused message.
pub(super) fn describe(batch: &Batch, r: &Reject) -> NftError {
    let Some(op) = r.op.and_then(|i| batch.ops.get(i)) else {
        let what = format!("committing a batch of {} operations", batch.ops.len());
        return NftError::new(what, r.msg.clone(), r.errno);
    };
    let op = match op {
        Op::Elements(op) => op,
        Op::Object(o) => return NftError::new(o.what.clone(), r.msg.clone(), r.errno),
    };
    let mut detail = match (r.at, r.element) {
        (Some(Spot::Table), _) => Some("at the table name".to_owned()),
        (Some(Spot::Set), _) => Some("at the set name".to_owned()),
        (None, Some(i)) => op.elements.get(i).map(|e| {
            format!(
                "at element {} of {}, key {}",
                i + 1,
                op.elements.len(),
                hex(&e.key)
            )
        }),
        (None, None) => None,
    };
    if let Some(msg) = &r.msg {
        detail = Some(match detail {
            Some(d) => format!("{d}: {msg}"),
            None => msg.clone(),
        });
    }
    NftError::new(op.describe(), detail, r.errno)
}

/// A key as the error prints it: its bytes in hex.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
