//! [`Batch`]: the operations of one transaction, checked before anything
//! is sent, and the [`Plan`] of which of its elements go on the wire.

use std::collections::BTreeMap;

use super::element::{Element, Family};
use super::error::NftError;
use super::expr::SetRef;
use super::object::{Chain, Object, Rule, Set, Table};
use super::uapi::{NFT_DATA_VALUE_MAXLEN, NFT_NAME_MAXLEN};

/// One transaction: tables, chains, sets and rules to create or delete,
/// and element additions and deletions on named sets and maps of one or
/// more tables, applied in order by [`Socket::apply`](super::Socket::apply).
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub(super) ops: Vec<Op>,
    /// The last `NFTA_SET_ID` handed out: each new set gets one, unique in
    /// the transaction, so that rules and elements can name a set that
    /// does not exist yet (an anonymous one has no name until the commit).
    set_ids: u32,
    /// Rules appended so far per chain, to number them in errors.
    rules: BTreeMap<String, usize>,
}

#[derive(Debug, Clone)]
pub(super) enum Op {
    Elements(ElementOp),
    /// A table, chain, set or rule message.
    Object(Object),
}

#[derive(Debug, Clone)]
pub(super) struct ElementOp {
    pub(super) kind: Kind,
    pub(super) family: Family,
    pub(super) table: String,
    pub(super) set: String,
    /// Set by [`Batch::add_set`] for a set created in the same batch.
    pub(super) set_id: Option<u32>,
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
        self.push(Kind::Add, family, table, set, None, elements)
    }

    /// Deletes elements from a set or map, like `nft delete element`: an
    /// element that is not there fails the batch with `ENOENT`, unless it is
    /// applied with [`Socket::apply_idempotent`](super::Socket::apply_idempotent).
    /// Map elements are matched by key alone; data may be left out. An
    /// empty `elements` deletes nothing.
    pub fn delete(&mut self, family: Family, table: &str, set: &str, elements: Vec<Element>) -> &mut Self {
        self.push(Kind::Delete, family, table, set, None, elements)
    }

    /// Creates a table, or updates it if it exists, like `nft add table`.
    pub fn add_table(&mut self, table: &Table) -> &mut Self {
        self.ops.push(Op::Object(table.object()));
        self
    }

    /// Deletes a table with everything in it, like `nft delete table`. A
    /// missing table fails the batch with `ENOENT`: add the (empty) table
    /// first in the same batch to delete it whether or not it exists, as
    /// `table inet t {}; delete table inet t` does.
    pub fn delete_table(&mut self, family: Family, name: &str) -> &mut Self {
        self.ops.push(Op::Object(Table::delete(family, name)));
        self
    }

    /// Creates a chain, like `nft add chain`.
    pub fn add_chain(&mut self, chain: &Chain) -> &mut Self {
        self.ops.push(Op::Object(chain.object()));
        self
    }

    /// Creates a set or map and then adds its elements, like `nft add set`
    /// or `nft add map`; returns what rules use to look it up. An anonymous
    /// set gets its name (`__set0`, …) from the kernel at commit.
    pub fn add_set(&mut self, set: &Set) -> SetRef {
        self.set_ids += 1;
        let id = self.set_ids;
        self.ops.push(Op::Object(set.object(id)));
        let r = set.reference(id);
        let elements = set.elements.clone();
        self.push(Kind::Add, set.family, &set.table, &r.name, Some(id), elements);
        r
    }

    /// Appends a rule to its chain, like `nft add rule`.
    pub fn add_rule(&mut self, rule: &Rule) -> &mut Self {
        let n = self.rules.entry(rule.chain_path()).or_default();
        *n += 1;
        self.ops.push(Op::Object(rule.object(true, *n)));
        self
    }

    /// Inserts a rule at the top of its chain, like `nft insert rule` (or
    /// `iptables -I CHAIN 1`): a new rule without `NLM_F_APPEND` or a
    /// position goes first.
    pub fn insert_rule(&mut self, rule: &Rule) -> &mut Self {
        self.ops.push(Op::Object(rule.object(false, 1)));
        self
    }

    /// True when the batch holds nothing to send.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    fn push(
        &mut self,
        kind: Kind,
        family: Family,
        table: &str,
        set: &str,
        set_id: Option<u32>,
        elements: Vec<Element>,
    ) -> &mut Self {
        if !elements.is_empty() {
            self.ops.push(Op::Elements(ElementOp {
                kind,
                family,
                table: table.to_owned(),
                set: set.to_owned(),
                set_id,
                elements,
            }));
        }
        self
    }
}

/// Which elements of each op go on the wire, and how.
pub(super) struct Plan {
    pub(super) ops: Vec<PlanOp>,
}

pub(super) struct PlanOp {
    /// Indexes into the op's elements; an object op has one, for itself.
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
                    elements: match op {
                        Op::Elements(op) => (0..op.elements.len()).collect(),
                        Op::Object(_) => vec![0],
                    },
                    single: false,
                })
                .collect(),
        }
    }
}

impl Op {
    pub(super) fn describe(&self) -> String {
        match self {
            Self::Elements(op) => op.describe(),
            Self::Object(o) => o.what.clone(),
        }
    }
}

impl ElementOp {
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
        let names: Vec<(&str, &String)> = match op {
            Op::Elements(op) => vec![("table", &op.table), ("set", &op.set)],
            Op::Object(o) => o.names.iter().map(|(k, n)| (*k, n)).collect(),
        };
        for (kind, name) in names {
            if name.is_empty() || name.len() >= NFT_NAME_MAXLEN || name.contains('\0') {
                return fail(format!(
                    "{kind} name {name:?} must be 1 to {} bytes without NUL",
                    NFT_NAME_MAXLEN - 1
                ));
            }
        }
        let Op::Elements(op) = op else { continue };
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
