//! Tables, chains, sets and rules as a batch creates them: each becomes one
//! [`Object`] message with the attributes `nft --debug=netlink -f` shows nft sending,
//! userdata included, so that `nft list` prints them as it prints its own.

use super::element::{Element, Family};
use super::expr::{Datatype, Expr, Meta, SetRef};
use super::netlink::{Attr, align4};
use super::uapi::*;

/// One message that creates or deletes a table, chain, set or rule.
#[derive(Debug, Clone)]
pub(super) struct Object {
    /// What it does, for errors: "adding chain inet berth forward".
    pub(super) what: String,
    /// `NFT_MSG_*`.
    pub(super) ty: u16,
    /// `NLM_F_CREATE`, `NLM_F_APPEND`; `NLM_F_REQUEST | NLM_F_ACK` are added.
    pub(super) flags: u16,
    pub(super) family: Family,
    /// Names that [`validate`](super::batch::validate) checks: ("table", "berth").
    pub(super) names: Vec<(&'static str, String)>,
    pub(super) attrs: Vec<Attr>,
}

/// A table, as `nft add table FAMILY NAME { comment "…" }` creates it.
#[derive(Debug, Clone)]
pub struct Table {
    family: Family,
    name: String,
    comment: Option<String>,
}

impl Table {
    /// A table without a comment.
    pub fn new(family: Family, name: &str) -> Self {
        Self {
            family,
            name: name.to_owned(),
            comment: None,
        }
    }

    /// The comment `nft list table` prints (kept in the table's userdata).
    pub fn comment(mut self, comment: &str) -> Self {
        self.comment = Some(comment.to_owned());
        self
    }

    pub(super) fn object(&self) -> Object {
        let mut attrs = vec![
            Attr::Str(NFTA_TABLE_NAME, self.name.clone()),
            Attr::U32(NFTA_TABLE_FLAGS, 0),
        ];
        if let Some(comment) = &self.comment {
            // libnftnl's udata TLVs: NFTNL_UDATA_TABLE_COMMENT (0), NUL-terminated.
            let mut text = comment.as_bytes().to_vec();
            text.push(0);
            attrs.push(Attr::Bytes(NFTA_TABLE_USERDATA, udata(&[(0, text)])));
        }
        Object {
            what: format!("adding table {} {}", self.family, self.name),
            ty: NFT_MSG_NEWTABLE,
            flags: NLM_F_CREATE,
            family: self.family,
            names: vec![("table", self.name.clone())],
            attrs,
        }
    }

    pub(super) fn delete(family: Family, name: &str) -> Object {
        Object {
            what: format!("deleting table {family} {name}"),
            ty: NFT_MSG_DELTABLE,
            flags: 0,
            family,
            names: vec![("table", name.to_owned())],
            attrs: vec![Attr::Str(NFTA_TABLE_NAME, name.to_owned())],
        }
    }
}

/// A netfilter hook a base chain attaches to (`NF_INET_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// `prerouting` (0).
    Prerouting,
    /// `input` (1).
    Input,
    /// `forward` (2).
    Forward,
    /// `output` (3).
    Output,
    /// `postrouting` (4).
    Postrouting,
}

/// A chain: a regular one that rules jump to, or a base chain on a hook,
/// as `nft add chain FAMILY TABLE NAME { type T hook H priority P; policy accept; }`.
#[derive(Debug, Clone)]
pub struct Chain {
    family: Family,
    table: String,
    name: String,
    base: Option<(&'static str, Hook, i32)>,
}

impl Chain {
    /// A regular chain, reached by `jump`.
    pub fn new(family: Family, table: &str, name: &str) -> Self {
        Self {
            family,
            table: table.to_owned(),
            name: name.to_owned(),
            base: None,
        }
    }

    /// Makes it a base chain of type `kind` (`"filter"`, `"nat"`) on `hook`
    /// at `priority` (`filter` is 0, `dstnat` -100, `srcnat` 100), with
    /// policy accept.
    pub fn base(mut self, kind: &'static str, hook: Hook, priority: i32) -> Self {
        self.base = Some((kind, hook, priority));
        self
    }

    pub(super) fn object(&self) -> Object {
        let mut attrs = vec![
            Attr::Str(NFTA_CHAIN_TABLE, self.table.clone()),
            Attr::Str(NFTA_CHAIN_NAME, self.name.clone()),
        ];
        if let Some((kind, hook, priority)) = self.base {
            attrs.extend([
                Attr::Str(NFTA_CHAIN_TYPE, kind.to_owned()),
                Attr::U32(NFTA_CHAIN_POLICY, libc::NF_ACCEPT as u32),
                Attr::Nest(
                    NFTA_CHAIN_HOOK,
                    vec![
                        Attr::U32(NFTA_HOOK_HOOKNUM, hook as u32),
                        Attr::U32(NFTA_HOOK_PRIORITY, priority as u32),
                    ],
                ),
            ]);
        }
        Object {
            what: format!("adding chain {} {} {}", self.family, self.table, self.name),
            ty: NFT_MSG_NEWCHAIN,
            flags: NLM_F_CREATE,
            family: self.family,
            names: vec![("table", self.table.clone()), ("chain", self.name.clone())],
            attrs,
        }
    }
}

/// How nft numbers a concatenation's type: each part's type in 6 bits.
const TYPE_BITS: u32 = 6;
/// nft's expression type numbers, kept in a set's userdata for listing.
const EXPR_META: u32 = 9;
const EXPR_CONCAT: u32 = 13;

/// A named set or map, as `nft add set|map` declares it with `type A . B
/// [: C . D]; [flags interval;]`, or an anonymous constant set as nft
/// makes for `meta l4proto { tcp, udp }`.
#[derive(Debug, Clone)]
pub struct Set {
    pub(super) family: Family,
    pub(super) table: String,
    name: Option<String>,
    key: Vec<Datatype>,
    data: Vec<Datatype>,
    interval: bool,
    /// The `meta` key an anonymous set is looked up with.
    meta: Option<Meta>,
    pub(super) elements: Vec<Element>,
}

impl Set {
    /// A named set whose key is `key` (several datatypes: a concatenation).
    pub fn new(family: Family, table: &str, name: &str, key: &[Datatype]) -> Self {
        Self {
            family,
            table: table.to_owned(),
            name: Some(name.to_owned()),
            key: key.to_vec(),
            data: Vec::new(),
            interval: false,
            meta: None,
            elements: Vec::new(),
        }
    }

    /// An anonymous constant set of `meta` `key` values holding `elements`,
    /// as nft builds for `meta l4proto { tcp, udp, sctp }`; the rule that
    /// looks it up owns it.
    pub fn anonymous(family: Family, table: &str, key: Meta, elements: Vec<Element>) -> Self {
        Self {
            family,
            table: table.to_owned(),
            name: None,
            key: vec![key.datatype()],
            data: Vec::new(),
            interval: false,
            meta: Some(key),
            elements,
        }
    }

    /// Makes it a map to `data`.
    pub fn map(mut self, data: &[Datatype]) -> Self {
        self.data = data.to_vec();
        self
    }

    /// `flags interval`: elements are ranges or prefixes.
    pub fn interval(mut self) -> Self {
        self.interval = true;
        self
    }

    pub(super) fn reference(&self, id: u32) -> SetRef {
        SetRef {
            name: self.name.clone().unwrap_or_else(|| "__set%d".to_owned()),
            id: Some(id),
        }
    }

    pub(super) fn object(&self, id: u32) -> Object {
        let name = self.reference(id).name;
        let concat = |types: &[Datatype]| types.len() > 1;
        let type_of = |types: &[Datatype]| types.iter().fold(0, |t, d| t << TYPE_BITS | d.id);
        let len_of = |types: &[Datatype]| match types {
            [one] => one.len,
            _ => types.iter().map(|d| align4(d.len as usize) as u32).sum(),
        };
        let byteorder = |types: &[Datatype]| match types {
            [one] => one.byteorder,
            _ => 0,
        };
        let map = !self.data.is_empty();
        let mut flags = 0;
        if self.name.is_none() {
            flags |= NFT_SET_ANONYMOUS | NFT_SET_CONSTANT;
        }
        if self.interval {
            flags |= NFT_SET_INTERVAL;
            if concat(&self.key) {
                flags |= NFT_SET_CONCAT;
            }
        }
        if map {
            flags |= NFT_SET_MAP;
        }
        let mut attrs = vec![
            Attr::Str(NFTA_SET_TABLE, self.table.clone()),
            Attr::Str(NFTA_SET_NAME, name.clone()),
            Attr::U32(NFTA_SET_FLAGS, flags),
            Attr::U32(NFTA_SET_KEY_TYPE, type_of(&self.key)),
            Attr::U32(NFTA_SET_KEY_LEN, len_of(&self.key)),
        ];
        if map {
            attrs.push(Attr::U32(NFTA_SET_DATA_TYPE, type_of(&self.data)));
            attrs.push(Attr::U32(NFTA_SET_DATA_LEN, len_of(&self.data)));
        }
        attrs.push(Attr::U32(NFTA_SET_ID, id));
        if self.name.is_none() {
            let size = self.elements.len() as u32;
            attrs.push(Attr::Nest(
                NFTA_SET_DESC,
                vec![Attr::U32(NFTA_SET_DESC_SIZE, size)],
            ));
        } else if self.interval && concat(&self.key) {
            // The kernel's pipapo set needs each field's length.
            let fields = self
                .key
                .iter()
                .map(|d| Attr::Nest(NFTA_LIST_ELEM, vec![Attr::U32(NFTA_SET_FIELD_LEN, d.len)]))
                .collect();
            attrs.push(Attr::Nest(
                NFTA_SET_DESC,
                vec![Attr::Nest(NFTA_SET_DESC_CONCAT, fields)],
            ));
        }
        // What nft keeps for its own listing (libnftnl's NFTNL_UDATA_SET_*):
        // byte orders, and which expression a key or value was typed from.
        let u32le = |v: u32| v.to_le_bytes().to_vec();
        let typeof_concat = udata(&[(0, u32le(EXPR_CONCAT)), (1, Vec::new())]);
        let mut tlvs = vec![(0, u32le(byteorder(&self.key)))];
        if map {
            tlvs.push((1, u32le(byteorder(&self.data))));
        }
        if let Some(meta) = self.meta {
            let key = udata(&[(0, u32le(meta as u32))]);
            tlvs.push((3, udata(&[(0, u32le(EXPR_META)), (1, key)])));
        } else if concat(&self.key) {
            tlvs.push((3, typeof_concat.clone()));
        }
        if concat(&self.data) {
            tlvs.push((4, typeof_concat));
        }
        if map {
            tlvs.push((6, u32le(0)));
        }
        attrs.push(Attr::Bytes(NFTA_SET_USERDATA, udata(&tlvs)));
        let kind = if map { "map" } else { "set" };
        let shown = self.name.as_deref().unwrap_or("(anonymous)");
        Object {
            what: format!("adding {kind} {} {} {shown}", self.family, self.table),
            ty: NFT_MSG_NEWSET,
            flags: NLM_F_CREATE,
            family: self.family,
            names: vec![("table", self.table.clone()), ("set", name)],
            attrs,
        }
    }
}

/// A rule: expressions run in order, as `nft --debug=netlink add rule`
/// prints them.
#[derive(Debug, Clone)]
pub struct Rule {
    family: Family,
    table: String,
    chain: String,
    pub(super) exprs: Vec<Expr>,
    compat: bool,
}

impl Rule {
    /// An empty rule for `chain` in `table`.
    pub fn new(family: Family, table: &str, chain: &str) -> Self {
        Self {
            family,
            table: table.to_owned(),
            chain: chain.to_owned(),
            exprs: Vec::new(),
            compat: false,
        }
    }

    /// Appends an expression.
    pub fn expr(mut self, expr: Expr) -> Self {
        self.exprs.push(expr);
        self
    }

    /// Adds the `NFTA_RULE_COMPAT` attribute iptables-nft puts on its rules
    /// (no `-p` protocol, no flags), so that a rule written here is one
    /// iptables reads as its own.
    pub fn iptables_compat(mut self) -> Self {
        self.compat = true;
        self
    }

    pub(super) fn chain_path(&self) -> String {
        format!("chain {} {} {}", self.family, self.table, self.chain)
    }

    pub(super) fn object(&self, append: bool, n: usize) -> Object {
        let exprs = self.exprs.iter().map(Expr::attr).collect();
        let mut attrs = vec![
            Attr::Str(NFTA_RULE_TABLE, self.table.clone()),
            Attr::Str(NFTA_RULE_CHAIN, self.chain.clone()),
            Attr::Nest(NFTA_RULE_EXPRESSIONS, exprs),
        ];
        if self.compat {
            attrs.push(Attr::Nest(
                NFTA_RULE_COMPAT,
                vec![
                    Attr::U32(NFTA_RULE_COMPAT_PROTO, 0),
                    Attr::U32(NFTA_RULE_COMPAT_FLAGS, 0),
                ],
            ));
        }
        let (what, flags) = if append {
            (
                format!("adding rule {n} to {}", self.chain_path()),
                NLM_F_CREATE | NLM_F_APPEND,
            )
        } else {
            (
                format!("inserting a rule at the top of {}", self.chain_path()),
                NLM_F_CREATE,
            )
        };
        Object {
            what,
            ty: NFT_MSG_NEWRULE,
            flags,
            family: self.family,
            names: vec![("table", self.table.clone()), ("chain", self.chain.clone())],
            attrs,
        }
    }
}

/// libnftnl's userdata: TLVs of a one-byte type, a one-byte length and the
/// value. Values here are short: a longer one is cut at 255 bytes.
fn udata(tlvs: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (ty, value) in tlvs {
        let value = value.get(..255).unwrap_or(value);
        out.push(*ty);
        out.push(value.len() as u8);
        out.extend_from_slice(value);
    }
    out
}
