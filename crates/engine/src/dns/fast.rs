//! The fast path: the query a stub resolver sends for a container's name
//! (one question, A, AAAA or PTR, class IN, with at most an empty EDNS
//! OPT record) read and answered by hand, with no hickory message built
//! or serialized.
//!
//! It only answers what it finds: anything else (another type, EDNS
//! options, escapes in the name, an unknown client, a name to forward)
//! returns `false`, and [`super::answer::answer_full`] decides. For what
//! it does answer, the answer is the one the full path gives (same id,
//! flags, question, records, EDNS size and truncation); the unit tests
//! and the `dns_answer` fuzz target compare the two.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rand::seq::SliceRandom;

use super::answer::{CLASSIC_UDP, EDNS_UDP, TTL, View, lookup, reverse};

const TYPE_A: u16 = 1;
const TYPE_PTR: u16 = 12;
const TYPE_AAAA: u16 = 28;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;
/// The longest name on the wire, root label included (RFC 1035 2.3.4).
const MAX_NAME: usize = 255;
/// A pointer to the question's name, which always starts right after the
/// header.
const QUESTION_NAME: [u8; 2] = [0xc0, 12];
/// The OPT record of every EDNS answer: root name, type OPT, berth's UDP
/// size, extended RCODE 0, version 0, no flags, no options.
const OPT: [u8; 11] = {
    let size = EDNS_UDP.to_be_bytes();
    [0, 0, 41, size[0], size[1], 0, 0, 0, 0, 0, 0]
};

/// The question of a query, as read by hand.
struct Question<'q> {
    /// Name, type and class as they came: echoed as they are.
    raw: &'q [u8],
    qtype: u16,
    /// The EDNS payload size, when the query has an OPT record.
    edns: Option<u16>,
}

/// A name in lowercase, dotted, without the trailing dot: what the
/// resolver's tables are keyed by.
struct Lower {
    buf: [u8; MAX_NAME],
    len: usize,
}

impl Lower {
    fn as_str(&self) -> &str {
        // Only ASCII letters, digits, '-' and '_' and dots go in.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

/// Whether a label needs no escaping in hickory's text form (what the full
/// path compares): letters, digits and '_', and '-' after the first byte.
fn plain(label: &[u8]) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .iter()
            .enumerate()
            .all(|(i, &b)| b.is_ascii_alphanumeric() || b == b'_' || (b == b'-' && i > 0))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Reads the header and question; `None` for anything but the common
/// query.
fn parse(query: &[u8]) -> Option<(Question<'_>, Lower)> {
    // QR=0 and opcode QUERY; one question, nothing else but maybe an OPT.
    if query.len() < 12 || query[2] & 0xf8 != 0 {
        return None;
    }
    let counts = [4, 6, 8, 10].map(|i| u16::from_be_bytes([query[i], query[i + 1]]));
    if counts[..3] != [1, 0, 0] || counts[3] > 1 {
        return None;
    }
    let mut lower = Lower {
        buf: [0; MAX_NAME],
        len: 0,
    };
    let mut at = 12;
    loop {
        let len = usize::from(*query.get(at)?);
        if len == 0 {
            break;
        }
        // Compression pointers and reserved label types: not here.
        let label = query.get(at + 1..at + 1 + len).filter(|l| plain(l))?;
        if at + 1 + len - 12 + 1 > MAX_NAME {
            return None;
        }
        if lower.len > 0 {
            lower.buf[lower.len] = b'.';
            lower.len += 1;
        }
        for &b in label {
            lower.buf[lower.len] = b.to_ascii_lowercase();
            lower.len += 1;
        }
        at += 1 + len;
    }
    if lower.len == 0 {
        return None; // the root
    }
    let qtype = u16_at(query, at + 1)?;
    let qclass = u16_at(query, at + 3)?;
    if qclass != CLASS_IN || !matches!(qtype, TYPE_A | TYPE_AAAA | TYPE_PTR) {
        return None;
    }
    let raw = &query[12..at + 5];
    let edns = match counts[3] {
        0 => None,
        _ => {
            // Root name, type OPT, payload size, TTL, no options.
            let opt = query.get(at + 5..at + 16)?;
            if opt[0] != 0 || u16_at(opt, 1)? != TYPE_OPT || u16_at(opt, 9)? != 0 {
                return None;
            }
            Some(u16_at(opt, 3)?)
        }
    };
    Some((Question { raw, qtype, edns }, lower))
}

/// The address a full reverse name stands for (`d.c.b.a.in-addr.arpa`,
/// or 32 nibbles and `ip6.arpa`), read as hickory reads it.
fn arpa(name: &str) -> Option<IpAddr> {
    if let Some(rest) = name.strip_suffix(".in-addr.arpa") {
        let mut octets = [0u8; 4];
        let mut labels = rest.rsplit('.');
        for o in &mut octets {
            *o = labels.next()?.parse().ok()?;
        }
        return labels
            .next()
            .is_none()
            .then(|| IpAddr::V4(Ipv4Addr::from(octets)));
    }
    let rest = name.strip_suffix(".ip6.arpa")?;
    let mut addr: u128 = 0;
    let mut labels = rest.rsplit('.');
    for _ in 0..32 {
        let l = labels.next().filter(|l| l.len() == 1)?;
        addr = addr << 4 | u128::from(u8::from_str_radix(l, 16).ok()?);
    }
    labels.next().is_none().then(|| IpAddr::V6(Ipv6Addr::from(addr)))
}

/// Appends `name` (dotted, with the trailing dot) in wire form; `false`
/// when hickory's `Name::from_ascii` would not take it as it is.
fn put_name(out: &mut Vec<u8>, name: &str) -> bool {
    let Some(name) = name.strip_suffix('.') else {
        return false;
    };
    if name.len() + 2 > MAX_NAME {
        return false;
    }
    for label in name.split('.') {
        if !plain(label.as_bytes()) {
            return false;
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    true
}

fn put_record(out: &mut Vec<u8>, rtype: u16, rdata: &[u8]) {
    out.extend_from_slice(&QUESTION_NAME);
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&TTL.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
}

/// Answers `query` from container `client_id` into `out` (cleared first)
/// when it is the common query for a name the resolver knows; `false`
/// leaves the query to the full path.
pub fn answer_fast(view: &View, client_id: &str, query: &[u8], udp: bool, out: &mut Vec<u8>) -> bool {
    let Some((q, name)) = parse(query) else {
        return false;
    };
    let Some(client) = view.clients.get(client_id) else {
        return false;
    };
    out.clear();
    // Header: id; QR, opcode 0, RD as asked; RA, CD as asked, NOERROR.
    out.extend_from_slice(&query[..2]);
    out.push(0x80 | (query[2] & 0x01));
    out.push(0x80 | (query[3] & 0x10));
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(q.edns.is_some())]);
    out.extend_from_slice(q.raw);
    let mut answers: u16 = 0;
    if q.qtype == TYPE_PTR {
        let Some(ptr) = arpa(name.as_str()).and_then(|ip| reverse(view, client, ip)) else {
            return false;
        };
        // RDLENGTH is filled in once the name is written.
        put_record(out, TYPE_PTR, &[]);
        let start = out.len();
        if !put_name(out, &ptr) {
            return false;
        }
        let len = (out.len() - start) as u16;
        out[start - 2..start].copy_from_slice(&len.to_be_bytes());
        answers = 1;
    } else {
        let Some(mut addrs) = lookup(view, client, name.as_str()) else {
            return false;
        };
        // A name held by several containers answers all of them, in a new
        // order each time (round-robin).
        if addrs.len() > 1 {
            addrs.shuffle(&mut rand::rng());
        }
        for a in addrs {
            match (q.qtype, a) {
                (TYPE_A, IpAddr::V4(v4)) => put_record(out, TYPE_A, &v4.octets()),
                (TYPE_AAAA, IpAddr::V6(v6)) => put_record(out, TYPE_AAAA, &v6.octets()),
                _ => continue,
            }
            answers += 1;
        }
    }
    out[6..8].copy_from_slice(&answers.to_be_bytes());
    if q.edns.is_some() {
        out.extend_from_slice(&OPT);
    }
    let limit = match q.edns {
        Some(size) => usize::from(size.clamp(CLASSIC_UDP as u16, EDNS_UDP)),
        None => CLASSIC_UDP,
    };
    if udp && out.len() > limit {
        // Too big for the client: TC set and no records, so that it asks
        // again over TCP.
        out[2] |= 0x02;
        out[6..8].fill(0);
        out.truncate(12 + q.raw.len());
        if q.edns.is_some() {
            out.extend_from_slice(&OPT);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    use hickory_proto::rr::{Name, RecordType};
    use rand::{Rng, SeedableRng};

    use super::super::answer::{Action, Client, Target, Zone, answer, answer_full};
    use super::*;

    fn target(id: &str, addrs: &[&str]) -> Target {
        Target {
            container: id.into(),
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    /// A long alias: 3 labels of 63 bytes and one of 58, 249 bytes in
    /// text, 251 on the wire; with `.my-net` it is too long for a name.
    fn long_alias() -> String {
        let l = "a".repeat(63);
        format!("{l}.{l}.{l}.{}", "b".repeat(58))
    }

    fn view() -> View {
        let mut v = View::default();
        let mut z = Zone {
            name: "my-net".into(),
            ..Default::default()
        };
        let c1 = target("c1id", &["172.18.0.2", "fd00::2"]);
        let c2 = target("c2id", &["172.18.0.3"]);
        let c4 = target("c4id", &["fd00::4"]);
        z.names.insert("centos01".into(), vec![c1.clone()]);
        z.names.insert("centos02".into(), vec![c2.clone()]);
        z.names.insert("v6only".into(), vec![c4.clone()]);
        z.names
            .insert("web".into(), vec![c1.clone(), c2.clone(), c4.clone()]);
        z.names.insert("dotted.name".into(), vec![c2.clone()]);
        z.names.insert("_svc-x".into(), vec![c2.clone()]);
        z.names.insert(long_alias(), vec![c2.clone()]);
        // Enough addresses to overflow 512 bytes, and 1232 for AAAA.
        let many: Vec<Target> = (0..60)
            .map(|i| {
                target(
                    &format!("m{i}"),
                    &[&format!("10.1.0.{}", i + 2), &format!("fd01::{:x}", i + 2)],
                )
            })
            .collect();
        z.names.insert("many".into(), many);
        z.reverse.insert("172.18.0.2".parse().unwrap(), "centos01".into());
        z.reverse.insert("fd00::2".parse().unwrap(), "centos01".into());
        z.reverse
            .insert("172.18.0.3".parse().unwrap(), "dotted.name".into());
        z.reverse.insert("fd00::4".parse().unwrap(), "bad name!".into());
        v.zones.insert("n1".into(), z);
        let mut other = Zone {
            name: "other".into(),
            ..Default::default()
        };
        other
            .names
            .insert("hidden".into(), vec![target("c3id", &["10.9.0.2"])]);
        v.zones.insert("n2".into(), other);
        v.clients.insert(
            "c2id".into(),
            Client {
                networks: vec!["n1".into()],
                links: HashMap::from([("db".into(), "c1id".into())]),
                forward: true,
            },
        );
        v.clients.insert(
            "inner".into(),
            Client {
                networks: vec!["n1".into()],
                links: HashMap::new(),
                forward: false,
            },
        );
        v
    }

    const NAMES: &[&str] = &[
        "centos01",
        "CentOS01.",
        "centos01.my-net",
        "centos01.MY-NET.",
        "centos02",
        "v6only",
        "web",
        "db",
        "dotted.name",
        "dotted.name.my-net",
        "_svc-x",
        "many",
        "hidden",
        "example.org",
        "c1id",
        "2.0.18.172.in-addr.arpa",
        "2.0.18.172.IN-ADDR.ARPA.",
        "002.0.18.172.in-addr.arpa",
        "3.0.18.172.in-addr.arpa",
        "0.18.172.in-addr.arpa",
        "9.9.9.10.in-addr.arpa",
        "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa",
        "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.D.F.ip6.arpa",
        "4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa",
    ];

    /// A query as a stub resolver or dig makes it: `edns` is the payload
    /// size of an OPT record, `cookie` adds an option to it.
    fn make(id: u16, name: &Name, qtype: RecordType, rd: bool, edns: Option<u16>, cookie: bool) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = rd;
        m.add_query(Query::query(name.clone(), qtype));
        if let Some(size) = edns {
            let mut e = Edns::new();
            e.set_max_payload(size);
            if cookie {
                e.options_mut()
                    .insert(EdnsOption::Unknown(u16::from(EdnsCode::Cookie), vec![7; 8]));
            }
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    /// The answer in a form where round-robin order does not count.
    fn canonical(bytes: &[u8]) -> Message {
        let mut m = Message::from_vec(bytes).expect("a valid answer");
        m.answers.sort_by_key(|r| r.data.to_string());
        m
    }

    /// Checks the fast path against the full one on `query`; says whether
    /// the fast path took it.
    fn same(v: &View, client: &str, query: &[u8], udp: bool) -> bool {
        let mut out = Vec::new();
        if !answer_fast(v, client, query, udp, &mut out) {
            return false;
        }
        let Action::Reply(full) = answer_full(v, client, query, udp) else {
            panic!("the fast path answered {query:02x?}, the full path did not");
        };
        assert_eq!(
            canonical(&out),
            canonical(&full),
            "fast and full answers differ for {query:02x?} (udp {udp})"
        );
        assert_eq!(out.len(), full.len(), "sizes differ for {query:02x?}");
        true
    }

    #[test]
    fn fast_answers_equal_full_answers() {
        let v = view();
        let mut names: Vec<String> = NAMES.iter().map(|n| n.to_string()).collect();
        names.push(long_alias());
        names.push(format!("{}.my-net", long_alias()));
        let mut taken = 0;
        let mut tried = 0;
        for (i, name) in names.iter().enumerate() {
            let Ok(name) = Name::from_ascii(name) else {
                continue;
            };
            for qtype in [
                RecordType::A,
                RecordType::AAAA,
                RecordType::PTR,
                RecordType::ANY,
                RecordType::MX,
            ] {
                for edns in [None, Some(0), Some(512), Some(1000), Some(1232), Some(4096)] {
                    for (rd, cookie) in [(true, false), (false, false), (true, true)] {
                        if cookie && edns.is_none() {
                            continue;
                        }
                        let q = make(i as u16 * 977, &name, qtype, rd, edns, cookie);
                        for client in ["c2id", "inner", "stranger"] {
                            for udp in [true, false] {
                                tried += 1;
                                taken += usize::from(same(&v, client, &q, udp));
                            }
                        }
                    }
                }
            }
        }
        assert!(taken > tried / 10, "the fast path took only {taken} of {tried}");
    }

    #[test]
    fn the_common_queries_take_the_fast_path() {
        let v = view();
        let mut out = Vec::new();
        for (name, qtype, edns) in [
            ("centos01", RecordType::A, None),
            ("CENTOS01.my-net.", RecordType::AAAA, Some(1232)),
            ("web", RecordType::A, Some(4096)),
            ("db", RecordType::A, None),
            ("2.0.18.172.in-addr.arpa", RecordType::PTR, None),
        ] {
            let q = make(1, &Name::from_ascii(name).unwrap(), qtype, true, edns, false);
            assert!(answer_fast(&v, "c2id", &q, true, &mut out), "{name} {qtype}");
            assert!(same(&v, "c2id", &q, true));
        }
        // Same bytes as hickory's, where the order is fixed.
        let q = make(
            9,
            &Name::from_ascii("CentOS01").unwrap(),
            RecordType::A,
            true,
            Some(1400),
            false,
        );
        assert!(answer_fast(&v, "c2id", &q, true, &mut out));
        assert_eq!(Action::Reply(out.clone()), answer_full(&v, "c2id", &q, true));
        // Names it leaves to the full path: unknown (forwarded), other
        // networks, unknown clients, another class.
        for (client, name) in [
            ("c2id", "example.org"),
            ("c2id", "hidden"),
            ("stranger", "centos01"),
        ] {
            let q = make(
                1,
                &Name::from_ascii(name).unwrap(),
                RecordType::A,
                true,
                None,
                false,
            );
            assert!(!answer_fast(&v, client, &q, true, &mut out), "{client} {name}");
        }
        let mut q = make(
            1,
            &Name::from_ascii("centos01").unwrap(),
            RecordType::A,
            true,
            None,
            false,
        );
        let len = q.len();
        q[len - 1] = 3; // class CH
        assert!(!answer_fast(&v, "c2id", &q, true, &mut out));
    }

    #[test]
    fn overflow_truncates_like_the_full_path() {
        let v = view();
        let mut out = Vec::new();
        for (qtype, edns, udp, tc) in [
            (RecordType::A, None, true, true),
            (RecordType::A, Some(1232), true, false),
            (RecordType::AAAA, Some(1232), true, true),
            (RecordType::AAAA, Some(100), true, true),
            (RecordType::AAAA, None, false, false),
        ] {
            let q = make(3, &Name::from_ascii("many").unwrap(), qtype, true, edns, false);
            assert!(same(&v, "c2id", &q, udp));
            assert!(answer_fast(&v, "c2id", &q, udp, &mut out));
            assert_eq!(out[2] & 0x02 != 0, tc, "{qtype} {edns:?} udp {udp}");
        }
    }

    /// Random flags, ids, case, EDNS fields and bytes appended or changed
    /// on queries the fast path takes: whatever it still takes must get the
    /// full path's answer. Seeded and bounded; the fuzz target does the same
    /// coverage-guided.
    #[test]
    fn mutated_queries_agree() {
        let v = view();
        let mut rng = rand::rngs::StdRng::seed_from_u64(0xfa57);
        let seeds: Vec<Vec<u8>> = NAMES
            .iter()
            .flat_map(|n| {
                let n = Name::from_ascii(n).unwrap();
                [
                    make(1, &n, RecordType::A, true, None, false),
                    make(2, &n, RecordType::AAAA, true, Some(1232), false),
                    make(3, &n, RecordType::PTR, false, Some(600), false),
                ]
            })
            .collect();
        let mut taken = 0;
        for i in 0..40_000 {
            let mut p = seeds[i % seeds.len()].clone();
            for _ in 0..rng.random_range(0..4) {
                let at = rng.random_range(0..p.len());
                match rng.random_range(0..6) {
                    0 => p[at] = rng.random(),
                    1 => p[at] ^= 1 << rng.random_range(0..8),
                    2 => p[at] = p[at].to_ascii_uppercase(),
                    3 => p.push(rng.random()),
                    4 => p.truncate(at.max(12)),
                    _ => p[rng.random_range(2..4)] ^= 1 << rng.random_range(0..8),
                }
            }
            let client = if i % 7 == 0 { "inner" } else { "c2id" };
            taken += usize::from(same(&v, client, &p, i % 2 == 0));
            // `answer` must give what the full path gives (up to order).
            match (answer(&v, client, &p, true), answer_full(&v, client, &p, true)) {
                (Action::Reply(a), Action::Reply(b)) => assert_eq!(canonical(&a), canonical(&b)),
                (a, b) => assert_eq!(a, b),
            }
        }
        assert!(taken > 1000, "only {taken} mutated queries took the fast path");
    }

    #[test]
    fn hand_made_opt_records_agree() {
        let v = view();
        let base = make(
            5,
            &Name::from_ascii("centos01").unwrap(),
            RecordType::A,
            true,
            Some(1232),
            false,
        );
        let opt = base.len() - 11;
        let mut out = Vec::new();
        // OPT bytes: name 0, type 1-2, size 3-4, extended RCODE 5,
        // version 6, flags 7-8 (DO is 0x80 of 7), RDLENGTH 9-10. Tiny and
        // huge sizes, RCODE bits, version 1, DO.
        for (i, val) in [(3, 0x00), (3, 0xff), (4, 0x0f), (5, 1u8), (6, 1), (7, 0x80)] {
            let mut q = base.clone();
            q[opt + i] = val;
            assert!(same(&v, "c2id", &q, true), "byte {i} = {val:#x}");
        }
        // An OPT whose name is not the root: left to the full path.
        let mut q = base[..opt].to_vec();
        q.extend_from_slice(&[1, b'x', 0]);
        q.extend_from_slice(&base[opt + 1..]);
        assert!(!answer_fast(&v, "c2id", &q, true, &mut out));
        // Not an OPT at all.
        let mut q = base.clone();
        q[opt + 2] = 1;
        assert!(!answer_fast(&v, "c2id", &q, true, &mut out));
    }
}
