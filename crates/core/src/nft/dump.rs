//! Reading chains and rules back from the kernel (`NFT_MSG_GETCHAIN`,
//! `NFT_MSG_GETRULE`), to find out whether a chain exists and whether a
//! rule is already in it.

use super::element::Family;
use super::error::NftError;
use super::netlink::{Attr, attrs};
use super::object::Rule;
use super::socket::Socket;
use super::uapi::*;

/// A rule as the kernel lists it: its handle and its expressions.
#[derive(Debug, Clone)]
pub struct ListedRule {
    handle: u64,
    /// Each expression's name and its `NFTA_EXPR_DATA` attributes, raw.
    exprs: Vec<(String, Vec<u8>)>,
}

impl Socket {
    /// True when `chain` exists in table `table`, like `nft list chain
    /// FAMILY TABLE CHAIN` succeeding; false when the chain or the table is
    /// missing.
    pub fn has_chain(&self, family: Family, table: &str, chain: &str) -> Result<bool, NftError> {
        let what = format!("looking up chain {family} {table} {chain}");
        let attrs = [
            Attr::Str(NFTA_CHAIN_TABLE, table.to_owned()),
            Attr::Str(NFTA_CHAIN_NAME, chain.to_owned()),
        ];
        match self.query(&what, NFT_MSG_GETCHAIN, NLM_F_ACK, family, &attrs) {
            Ok(_) => Ok(true),
            Err(e) if e.errno() == libc::ENOENT => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The rules of `chain`, first to last, like `nft -a list chain`. Fails
    /// with `ENOENT` when the chain or the table is missing.
    pub fn rules(&self, family: Family, table: &str, chain: &str) -> Result<Vec<ListedRule>, NftError> {
        let what = format!("listing the rules of chain {family} {table} {chain}");
        let filter = [
            Attr::Str(NFTA_RULE_TABLE, table.to_owned()),
            Attr::Str(NFTA_RULE_CHAIN, chain.to_owned()),
        ];
        // A dump filtered by table and chain; the kernel answers even an
        // unknown chain with an empty dump, so look it up first.
        if !self.has_chain(family, table, chain)? {
            return Err(NftError::new(what, None, libc::ENOENT));
        }
        let replies = self.query(&what, NFT_MSG_GETRULE, NLM_F_DUMP, family, &filter)?;
        Ok(replies.iter().map(|r| ListedRule::parse(r)).collect())
    }
}

impl ListedRule {
    fn parse(msg: &[u8]) -> Self {
        let mut rule = Self {
            handle: 0,
            exprs: Vec::new(),
        };
        for (ty, value) in attrs(msg) {
            match ty {
                NFTA_RULE_HANDLE => {
                    rule.handle = value.try_into().map_or(0, u64::from_be_bytes);
                }
                NFTA_RULE_EXPRESSIONS => {
                    for (_, expr) in attrs(value) {
                        let mut name = String::new();
                        let mut data = Vec::new();
                        for (ty, v) in attrs(expr) {
                            match ty {
                                NFTA_EXPR_NAME => {
                                    let text = v.split(|&b| b == 0).next().unwrap_or_default();
                                    name = String::from_utf8_lossy(text).into_owned();
                                }
                                NFTA_EXPR_DATA => data = v.to_vec(),
                                _ => {}
                            }
                        }
                        rule.exprs.push((name, data));
                    }
                }
                _ => {}
            }
        }
        rule
    }

    /// The rule's handle (`nft -a` prints it), for `nft delete rule … handle N`.
    pub fn handle(&self) -> u64 {
        self.handle
    }

    /// True when this rule does what `rule` does: the same expressions in
    /// the same order, each holding every attribute `rule` gives it, with
    /// the same value (the kernel lists some more, such as defaults).
    /// Counters are not compared: they count.
    pub fn is(&self, rule: &Rule) -> bool {
        self.exprs.len() == rule.exprs.len()
            && self
                .exprs
                .iter()
                .zip(&rule.exprs)
                .all(|((name, data), e)| name == e.name && (e.name == "counter" || holds(data, &e.data)))
    }
}

/// True when the attributes in `listed` include each of `wanted` with the
/// same value, nests compared the same way.
fn holds(listed: &[u8], wanted: &[Attr]) -> bool {
    wanted.iter().all(|want| {
        let ty = match want {
            Attr::U32(ty, _)
            | Attr::U64(ty, _)
            | Attr::Str(ty, _)
            | Attr::Bytes(ty, _)
            | Attr::Nest(ty, _) => *ty,
        };
        attrs(listed).any(|(t, value)| {
            t == ty
                && match want {
                    Attr::U32(_, v) => value == v.to_be_bytes(),
                    Attr::U64(_, v) => value == v.to_be_bytes(),
                    Attr::Str(_, s) => value.split(|&b| b == 0).next() == Some(s.as_bytes()),
                    Attr::Bytes(_, b) => value == b.as_slice(),
                    Attr::Nest(_, inner) => holds(value, inner),
                }
        })
    })
}
