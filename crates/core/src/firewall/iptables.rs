//! Docker coexistence: the one rule berth keeps in iptables' `filter`
//! table (see the module docs of [`crate::firewall`]), written over
//! nfnetlink the way iptables-nft 1.8.9 writes
//! `-m mark --mark 0x1000000/0x1000000 -m comment --comment berth -j ACCEPT`,
//! so that `iptables -S` prints it and `iptables -C` finds it.

use crate::nft::{Batch, Expr, Family, Meta, NftError, Reg, Rule, Socket, Verdict, key};

use super::FORWARD_MARK;

/// The iptables table the rule goes to.
const FILTER: &str = "filter";
/// `XT_MAX_COMMENT_LEN`: `struct xt_comment_info` is the comment,
/// NUL-padded to this size.
const XT_MAX_COMMENT_LEN: usize = 256;

/// The rule as iptables-nft encodes it (`nft --debug=netlink list chain ip
/// filter FORWARD` shows it): the mark test in native expressions, the
/// comment as the xtables `comment` match (iptables-nft 1.8.9 does not keep
/// comments in the rule's userdata), a counter, and the verdict.
pub(super) fn accept_rule(family: Family, chain: &str) -> Rule {
    let mut comment = b"berth".to_vec();
    comment.resize(XT_MAX_COMMENT_LEN, 0);
    Rule::new(family, FILTER, chain)
        .expr(Expr::meta(Meta::Mark, Reg::R1))
        .expr(Expr::bitwise(Reg::R1, Reg::R1, key::mark(FORWARD_MARK), [0; 4]))
        .expr(Expr::cmp_eq(Reg::R1, key::mark(FORWARD_MARK)))
        .expr(Expr::xt_match("comment", 0, comment))
        .expr(Expr::counter())
        .expr(Expr::verdict(Verdict::Accept))
        .iptables_compat()
}

/// Puts the rule at the top of `DOCKER-USER` (or `FORWARD`, where there is
/// no `DOCKER-USER`) in the `ip filter` and `ip6 filter` tables that have a
/// `FORWARD` chain, unless it is there already. Failures are logged, not
/// fatal: without iptables there is nothing to coexist with.
pub(super) fn coexist(socket: &Socket) {
    for (family, prog) in [(Family::Ip, "iptables"), (Family::Ip6, "ip6tables")] {
        match ensure(socket, family) {
            Ok(Some(chain)) => tracing::info!("{prog}: accepting berth's traffic in filter {chain}"),
            Ok(None) => {}
            Err(e) => tracing::warn!("{prog}: {}", crate::Error::from(e).chain()),
        }
    }
}

/// Inserts the rule where it belongs in `family`'s filter table; the chain
/// it was inserted into, or `None` when there is no such table or the rule
/// is already there.
fn ensure(socket: &Socket, family: Family) -> Result<Option<&'static str>, NftError> {
    if !socket.has_chain(family, FILTER, "FORWARD")? {
        return Ok(None);
    }
    let chain = if socket.has_chain(family, FILTER, "DOCKER-USER")? {
        "DOCKER-USER"
    } else {
        "FORWARD"
    };
    let rule = accept_rule(family, chain);
    if socket.rules(family, FILTER, chain)?.iter().any(|r| r.is(&rule)) {
        return Ok(None);
    }
    let mut batch = Batch::new();
    batch.insert_rule(&rule);
    socket.apply(&batch)?;
    Ok(Some(chain))
}
