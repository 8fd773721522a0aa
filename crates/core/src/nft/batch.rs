//! [`Batch`]: the operations of one transaction, checked before anything
//! is sent, and the [`Plan`] of which elements go on the wire.

use super::element::{Element, Family};
use super::error::NftError;
use super::uapi::{NFT_DATA_VALUE_MAXLEN, NFT_NAME_MAXLEN};

/// One transaction: element additions and deletions on named sets and maps
/// of one or more tables, applied in order by [`Socket::apply`](super::Socket::apply).
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub(super) ops: Vec<Op>,
}

#[derive(Debug, Clone)]
pub(super) struct Op {
    pub(super) kind: Kind,
    pub(super) family: Family,
    pub(super) table: String,
    pub(super) set: String,
    pub(super) elements: Vec<Element>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Add,
    Delete,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds elements to a set or map, like `nft add element` (not `create`):
    /// adding an element that is already there, with the same data, is not
    /// an error. Changing a map element's data takes a delete and an add in
    /// the same batch. An empty `elements` adds nothing.
    pub fn add(&mut self, family: Family, table: &str, set: &str, elements: Vec<Element>) -> &mut Self {
        self.push(Kind::Add, family, table, set, elements)
    }

    /// Deletes elements from a set or map, like `nft delete element`: an
    /// element that is not there fails the batch with `ENOENT`, unless it is
    /// applied with [`Socket::apply_idempotent`](super::Socket::apply_idempotent). Map elements are matched by
    /// key alone; data may be left out. An empty `elements` deletes nothing.
    pub fn delete(&mut self, family: Family, table: &str, set: &str, elements: Vec<Element>) -> &mut Self {
        self.push(Kind::Delete, family, table, set, elements)
    }

    /// True when the batch holds no element to add or delete.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    fn push(
        &mut self,
        kind: Kind,
        family: Family,
        table: &str,
        set: &str,
        elements: Vec<Element>,
    ) -> &mut Self {
        if !elements.is_empty() {
            self.ops.push(Op {
                kind,
                family,
                table: table.to_owned(),
                set: set.to_owned(),
                elements,
            });
        }
        self
    }
}

/// Which elements of each op go on the wire, and how.
pub(super) struct Plan {
    pub(super) ops: Vec<PlanOp>,
}

pub(super) struct PlanOp {
    /// Indexes into the op's elements.
    pub(super) elements: Vec<usize>,
    /// One element per message, without `NLM_F_ACK`: the kernel reports
    /// each failing element on its own.
    pub(super) single: bool,
}

impl Plan {
    pub(super) fn whole(batch: &Batch) -> Self {
        Self {
            ops: batch
                .ops
                .iter()
                .map(|op| PlanOp {
                    elements: (0..op.elements.len()).collect(),
                    single: false,
                })
                .collect(),
        }
    }
}

impl Op {
    pub(super) fn describe(&self) -> String {
        let n = self.elements.len();
        let s = if n == 1 { "" } else { "s" };
        let (verb, prep) = match self.kind {
            Kind::Add => ("adding", "to"),
            Kind::Delete => ("deleting", "from"),
        };
        format!(
            "{verb} {n} element{s} {prep} set {} {} {}",
            self.family, self.table, self.set
        )
    }
}

/// Refuses, before anything is sent, what the kernel would refuse or what
/// could not be encoded: empty or over-long names, names with a NUL, keys
/// and data that are empty or longer than `NFT_DATA_VALUE_MAXLEN`.
pub(super) fn validate(batch: &Batch) -> Result<(), NftError> {
    for op in &batch.ops {
        let fail = |detail: String| Err(NftError::new(op.describe(), Some(detail), libc::EINVAL));
        for (kind, name) in [("table", &op.table), ("set", &op.set)] {
            if name.is_empty() || name.len() >= NFT_NAME_MAXLEN || name.contains('\0') {
                return fail(format!(
                    "{kind} name {name:?} must be 1 to {} bytes without NUL",
                    NFT_NAME_MAXLEN - 1
                ));
            }
        }
        for (i, e) in op.elements.iter().enumerate() {
            let values = [
                ("key", Some(&e.key)),
                ("key end", e.key_end.as_ref()),
                ("data", e.data.as_ref()),
            ];
            for (kind, value) in values {
                if let Some(v) = value
                    && (v.is_empty() || v.len() > NFT_DATA_VALUE_MAXLEN)
                {
                    return fail(format!(
                        "element {}: the {kind} is {} bytes, not 1 to {NFT_DATA_VALUE_MAXLEN}",
                        i + 1,
                        v.len()
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_elements_and_names_are_refused_before_sending() {
        let mut batch = Batch::new();
        batch.add(Family::Inet, "t", "s", vec![Element::new(vec![0; 65])]);
        let err = validate(&batch).unwrap_err();
        assert_eq!(err.errno(), libc::EINVAL);
        assert!(
            err.to_string().contains("element 1: the key is 65 bytes"),
            "{err}"
        );

        for (table, set) in [("", "s"), ("t", "a\0b"), ("t", &*"x".repeat(256))] {
            let mut batch = Batch::new();
            batch.delete(Family::Ip, table, set, vec![Element::new([1])]);
            assert_eq!(validate(&batch).unwrap_err().errno(), libc::EINVAL);
        }
        let mut batch = Batch::new();
        batch.add(Family::Inet, "t", "s", Vec::new());
        assert!(batch.is_empty());
    }
}
