//! The fixed part of the `inet berth` table, built as the netlink messages
//! `nft -f` sends for it: each rule below carries, as its comment, the nft
//! line it is (the test at the bottom loads that text with `nft -f` and
//! checks that both listings are the same).
//!
//! Ordering matters: established flows pass first; same-network traffic
//! (seen here when br_netfilter hands bridged packets to the inet hooks,
//! which berth turns off where it may, or when it is routed back out of
//! its bridge) passes only for icc networks; internal networks neither send nor receive
//! routed traffic; DNAT'ed (published) flows come in, from outside or from
//! any berth network; anything else between two berth bridges is dropped
//! (isolation); containers may go out; nothing else comes in.

use crate::nft::{
    Batch, Chain, Ct, Datatype, Element, Expr, Family, Header, Hook, Meta, Reg, Rule, Set, SetRef, Table,
    Verdict, key,
};

use super::{FORWARD_MARK, HAIRPIN_MARK, TABLE};

const COMMENT: &str = "managed by berth: changes are overwritten";
const INET: Family = Family::Inet;
const R1: Reg = Reg::R1;
/// `ct state established,related`: the `NF_CT_STATE_BIT`s.
const ESTABLISHED_RELATED: u32 = 0x2 | 0x4;
/// `ct status dnat`: `IPS_DST_NAT`.
const IPS_DST_NAT: u32 = 0x20;
/// `fib daddr type local`: `RTN_LOCAL`.
const RTN_LOCAL: u32 = 2;

/// Adds the table, its sets and maps, its chains and its rules to `batch`.
pub(super) fn add(batch: &mut Batch) {
    batch.add_table(&Table::new(INET, TABLE).comment(COMMENT));
    for chain in ["published", "prerouting", "output", "forward", "postrouting"] {
        let c = Chain::new(INET, TABLE, chain);
        batch.add_chain(&match chain {
            "prerouting" => c.base("nat", Hook::Prerouting, -100), // dstnat
            "output" => c.base("nat", Hook::Output, -100),
            "forward" => c.base("filter", Hook::Forward, -1), // filter - 1
            "postrouting" => c.base("nat", Hook::Postrouting, 100), // srcnat
            _ => c,
        });
    }
    sets(batch);
    for (v6, any, keep) in [false, true].into_iter().flat_map(|v6| {
        [(false, false), (false, true), (true, false), (true, true)].map(|(any, keep)| (v6, any, keep))
    }) {
        published(batch, v6, any, keep);
    }
    for chain in ["prerouting", "output"] {
        // fib daddr type local jump published
        let rule = Rule::new(INET, TABLE, chain)
            .expr(Expr::fib_daddr_type(R1))
            .expr(Expr::cmp_eq(R1, RTN_LOCAL.to_ne_bytes()))
            .expr(Expr::verdict(Verdict::Jump("published".into())));
        batch.add_rule(&rule);
    }
    forward(batch);
    postrouting(batch);
}

fn sets(batch: &mut Batch) {
    use Datatype as D;
    let set = |name: &str, key: &[D]| Set::new(INET, TABLE, name, key);
    batch.add_set(&set("bridges", &[D::IFNAME]));
    batch.add_set(&set("internal", &[D::IFNAME]));
    batch.add_set(&set("icc", &[D::IFNAME, D::IFNAME]));
    batch.add_set(&set("masq4", &[D::IPV4_ADDR]).interval());
    batch.add_set(&set("masq6", &[D::IPV6_ADDR]).interval());
    for (v, addr) in [("4", D::IPV4_ADDR), ("6", D::IPV6_ADDR)] {
        let port = [D::INET_PROTO, D::INET_SERVICE];
        let host_port = [addr, D::INET_PROTO, D::INET_SERVICE];
        let to_port = [addr, D::INET_SERVICE];
        // map dnatV { type ADDR . inet_proto . inet_service : ADDR . inet_service; }
        batch.add_set(&set(&format!("dnat{v}"), &host_port).map(&to_port));
        // map dnatV_keep { type ADDR . inet_proto . inet_service : ADDR; flags interval; }
        batch.add_set(&set(&format!("dnat{v}_keep"), &host_port).map(&[addr]).interval());
        // map dnatV_any { type inet_proto . inet_service : ADDR . inet_service; }
        batch.add_set(&set(&format!("dnat{v}_any"), &port).map(&to_port));
        // map dnatV_any_keep { type inet_proto . inet_service : ADDR; flags interval; }
        batch.add_set(&set(&format!("dnat{v}_any_keep"), &port).map(&[addr]).interval());
    }
}

/// One rule of chain `published`, for IPv4 or IPv6, for one host address
/// or any (`_any`), for ports that change or ranges that keep them
/// (`_keep`). For `dnat4`:
/// `meta l4proto { tcp, udp, sctp } dnat ip to ip daddr . meta l4proto . th dport map @dnat4`;
/// the `_keep` rules have no protocol set and `dnat ip to …` without a port.
/// Registers are where nft puts them: the key's parts one after another
/// from `reg 1`, the map's value from `reg 1` too.
fn published(batch: &mut Batch, v6: bool, any: bool, keep: bool) {
    let (family, nfproto, daddr, addr_len) = if v6 {
        (Family::Ip6, libc::NFPROTO_IPV6, 24, 16)
    } else {
        (Family::Ip, libc::NFPROTO_IPV4, 16, 4)
    };
    let map = format!(
        "dnat{}{}{}",
        if v6 { "6" } else { "4" },
        if any { "_any" } else { "" },
        if keep { "_keep" } else { "" }
    );
    let mut rule = Rule::new(INET, TABLE, "published");
    if !keep {
        // meta l4proto { tcp, udp, sctp }: an anonymous constant set.
        let protos = [libc::IPPROTO_TCP, libc::IPPROTO_UDP, libc::IPPROTO_SCTP]
            .map(|p| Element::new(key::inet_proto(p as u8)))
            .to_vec();
        let l4 = batch.add_set(&Set::anonymous(INET, TABLE, Meta::L4proto, protos));
        rule = rule
            .expr(Expr::meta(Meta::L4proto, R1))
            .expr(Expr::lookup(R1, &l4, None));
    }
    // The key: [ip daddr .] meta l4proto . th dport.
    let (proto, port) = if !any {
        rule = rule
            .expr(Expr::meta(Meta::Nfproto, R1))
            .expr(Expr::cmp_eq(R1, [nfproto as u8]))
            .expr(Expr::payload(Header::Network, daddr, addr_len, R1));
        if v6 { (Reg(2), Reg(13)) } else { (Reg(9), Reg(10)) }
    } else {
        (R1, Reg(9))
    };
    rule = rule.expr(Expr::meta(Meta::L4proto, proto));
    if keep {
        // nft's byte order fix-up of the protocol for an interval lookup.
        rule = rule.expr(Expr::hton(proto, proto, 2, 1));
    }
    let to_port = if v6 { Reg(2) } else { Reg(9) };
    rule = rule
        .expr(Expr::payload(Header::Transport, 2, 2, port))
        .expr(Expr::lookup(R1, &SetRef::named(&map), Some(R1)))
        .expr(Expr::dnat(family, R1, (!keep).then_some(to_port)));
    batch.add_rule(&rule);
}

fn forward(batch: &mut Batch) {
    let rule = || Rule::new(INET, TABLE, "forward");
    // ct state established,related meta mark set meta mark | 0x01000000 accept
    let established = rule()
        .expr(Expr::ct(Ct::State, R1))
        .expr(Expr::bitwise(R1, R1, ESTABLISHED_RELATED.to_ne_bytes(), [0; 4]))
        .expr(Expr::cmp_neq(R1, [0; 4]));
    batch.add_rule(&accept_marked(established));
    // ct status dnat iifname @bridges oifname @bridges meta mark set meta mark | 0x02000000
    let hairpin = in_set(
        in_set(dnat(rule()), Meta::Iifname, "bridges"),
        Meta::Oifname,
        "bridges",
    );
    batch.add_rule(&set_mark(hairpin, HAIRPIN_MARK));
    // iifname . oifname @icc meta mark set meta mark | 0x01000000 accept
    let icc = rule()
        .expr(Expr::meta(Meta::Iifname, R1))
        .expr(Expr::meta(Meta::Oifname, Reg(2)))
        .expr(Expr::lookup(R1, &SetRef::named("icc"), None));
    batch.add_rule(&accept_marked(icc));
    // iifname @internal drop; oifname @internal drop
    for meta in [Meta::Iifname, Meta::Oifname] {
        batch.add_rule(&in_set(rule(), meta, "internal").expr(Expr::verdict(Verdict::Drop)));
    }
    // oifname @bridges ct status dnat meta mark set meta mark | 0x01000000 accept
    batch.add_rule(&accept_marked(dnat(in_set(rule(), Meta::Oifname, "bridges"))));
    // iifname @bridges oifname @bridges drop
    let between = in_set(in_set(rule(), Meta::Iifname, "bridges"), Meta::Oifname, "bridges");
    batch.add_rule(&between.expr(Expr::verdict(Verdict::Drop)));
    // iifname @bridges meta mark set meta mark | 0x01000000 accept
    batch.add_rule(&accept_marked(in_set(rule(), Meta::Iifname, "bridges")));
    // oifname @bridges drop
    batch.add_rule(&in_set(rule(), Meta::Oifname, "bridges").expr(Expr::verdict(Verdict::Drop)));
}

fn postrouting(batch: &mut Batch) {
    let rule = || Rule::new(INET, TABLE, "postrouting");
    let masquerade = Expr::masquerade;
    // meta mark & 0x02000000 == 0x02000000 masquerade
    let hairpin = rule()
        .expr(Expr::meta(Meta::Mark, R1))
        .expr(Expr::bitwise(R1, R1, key::mark(HAIRPIN_MARK), [0; 4]))
        .expr(Expr::cmp_eq(R1, key::mark(HAIRPIN_MARK)));
    batch.add_rule(&hairpin.expr(masquerade()));
    // oifname @bridges ip saddr 127.0.0.0/8 masquerade
    let localhost = ipv(in_set(rule(), Meta::Oifname, "bridges"), false)
        .expr(Expr::payload(Header::Network, 12, 1, R1))
        .expr(Expr::cmp_eq(R1, [127]));
    batch.add_rule(&localhost.expr(masquerade()));
    // oifname @bridges return
    batch.add_rule(&in_set(rule(), Meta::Oifname, "bridges").expr(Expr::verdict(Verdict::Return)));
    // ip saddr @masq4 masquerade; ip6 saddr @masq6 masquerade
    for (v6, offset, len, set) in [(false, 12, 4, "masq4"), (true, 8, 16, "masq6")] {
        let r = ipv(rule(), v6)
            .expr(Expr::payload(Header::Network, offset, len, R1))
            .expr(Expr::lookup(R1, &SetRef::named(set), None));
        batch.add_rule(&r.expr(masquerade()));
    }
}

/// `IFNAME @set`.
fn in_set(rule: Rule, meta: Meta, set: &str) -> Rule {
    rule.expr(Expr::meta(meta, R1))
        .expr(Expr::lookup(R1, &SetRef::named(set), None))
}

/// `ct status dnat`.
fn dnat(rule: Rule) -> Rule {
    rule.expr(Expr::ct(Ct::Status, R1))
        .expr(Expr::bitwise(R1, R1, IPS_DST_NAT.to_ne_bytes(), [0; 4]))
        .expr(Expr::cmp_neq(R1, [0; 4]))
}

/// `meta nfproto ipv4|ipv6`, which nft puts before any `ip`/`ip6` match in
/// an inet table.
fn ipv(rule: Rule, v6: bool) -> Rule {
    let nfproto = if v6 {
        libc::NFPROTO_IPV6
    } else {
        libc::NFPROTO_IPV4
    };
    rule.expr(Expr::meta(Meta::Nfproto, R1))
        .expr(Expr::cmp_eq(R1, [nfproto as u8]))
}

/// `meta mark set meta mark | BIT`.
fn set_mark(rule: Rule, bit: u32) -> Rule {
    rule.expr(Expr::meta(Meta::Mark, R1))
        .expr(Expr::bitwise(R1, R1, key::mark(!bit), key::mark(bit)))
        .expr(Expr::meta_set(Meta::Mark, R1))
}

/// `meta mark set meta mark | FORWARD_MARK accept`.
fn accept_marked(rule: Rule) -> Rule {
    set_mark(rule, FORWARD_MARK).expr(Expr::verdict(Verdict::Accept))
}
