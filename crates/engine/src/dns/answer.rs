//! Answering one query from what the engine knows: pure, with no sockets,
//! so that it can be tested and fuzzed on its own.

use std::collections::HashMap;
use std::net::IpAddr;

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use rand::seq::SliceRandom;

pub use super::fast::answer_fast;

/// How long clients may cache a container's address, as Docker's resolver
/// says.
pub const TTL: u32 = 600;

/// The largest UDP answer without EDNS (RFC 1035).
pub(crate) const CLASSIC_UDP: usize = 512;
/// The largest UDP answer berth sends with EDNS (the DNS flag day value).
pub(super) const EDNS_UDP: u16 = 1232;

/// One container as seen from a network: its addresses there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The container's id.
    pub container: String,
    /// Its addresses on that network.
    pub addrs: Vec<IpAddr>,
}

/// Names of one network: every name (lowercase, no trailing dot) that
/// resolves there, and the reverse map for PTR queries.
#[derive(Clone, Debug, Default)]
pub struct Zone {
    /// The network's name, for PTR answers (`name.network.`).
    pub name: String,
    /// Name → containers that answer to it (several: round-robin).
    pub names: HashMap<String, Vec<Target>>,
    /// Address → the name of the container that holds it.
    pub reverse: HashMap<IpAddr, String>,
}

/// What the resolver knows of one asking container.
#[derive(Clone, Debug, Default)]
pub struct Client {
    /// The networks it is on (ids), whose names it may resolve.
    pub networks: Vec<String>,
    /// Legacy-link aliases on user-defined networks: alias → container id.
    pub links: HashMap<String, String>,
    /// Whether names it does not know are forwarded upstream (false when
    /// all its networks are `--internal`).
    pub forward: bool,
}

/// Everything the resolver answers from.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// Per network id.
    pub zones: HashMap<String, Zone>,
    /// Per container id.
    pub clients: HashMap<String, Client>,
}

/// What to do with a datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// Ask upstream; the parsed query is kept to build errors.
    Forward(Box<Message>),
    /// Not a query we may answer at all (too short to have an id, or a
    /// response): drop it.
    Drop,
}

/// An error answer built from the raw header only, for queries that do not
/// parse: same id, QR set, the given code.
fn raw_error(query: &[u8], code: ResponseCode) -> Action {
    if query.len() < 12 {
        return Action::Drop;
    }
    let mut out = query[..12].to_vec();
    out[2] = (out[2] & 0x79) | 0x80; // QR=1, keep opcode and RD, clear AA and TC
    out[3] = (out[3] & 0x10) | (u16::from(code) as u8 & 0x0f); // keep CD, set RCODE
    out[4..12].fill(0); // no sections
    Action::Reply(out)
}

/// The response skeleton for a parsed query: id, opcode, RD and CD copied,
/// RA set, the question echoed, EDNS echoed when the query had it.
pub fn response_to(q: &Message) -> Message {
    let mut m = Message::response(q.metadata.id, q.metadata.op_code);
    m.metadata = Metadata::response_from_request(&q.metadata);
    m.metadata.recursion_available = true;
    m.add_queries(q.queries.iter().cloned());
    if q.edns.is_some() {
        let mut e = Edns::new();
        e.set_max_payload(EDNS_UDP);
        m.set_edns(e);
    }
    m
}

/// Serializes `m`; on UDP, a message larger than the client accepts goes
/// out truncated (TC set, no records) so that the client retries on TCP.
pub fn encode(m: &Message, udp_limit: Option<usize>) -> Vec<u8> {
    let bytes = m.to_vec().unwrap_or_default();
    match udp_limit {
        Some(limit) if bytes.len() > limit => m.truncate().to_vec().unwrap_or_default(),
        _ => bytes,
    }
}

/// The largest UDP answer this query accepts.
pub fn udp_limit(q: &Message) -> usize {
    match &q.edns {
        Some(e) => usize::from(e.max_payload().clamp(CLASSIC_UDP as u16, EDNS_UDP)),
        None => CLASSIC_UDP,
    }
}

fn lower(name: &Name) -> String {
    let s = name.to_lowercase().to_ascii();
    s.strip_suffix('.').unwrap_or(&s).to_owned()
}

/// The addresses `name` has for `client`: on each network they share, the
/// containers called `name` there, or `name.network`, or the target of a
/// link alias. `None` when the name is not a container name at all.
pub(super) fn lookup(view: &View, client: &Client, name: &str) -> Option<Vec<IpAddr>> {
    let mut found = false;
    let mut out = Vec::new();
    let linked = client.links.get(name);
    for net in &client.networks {
        let Some(zone) = view.zones.get(net) else { continue };
        let short = name
            .strip_suffix(zone.name.as_str())
            .and_then(|n| n.strip_suffix('.'))
            .filter(|n| !n.is_empty() && !zone.name.is_empty());
        for key in [Some(name), short].into_iter().flatten() {
            if let Some(targets) = zone.names.get(key) {
                found = true;
                for t in targets {
                    add_new(&mut out, &t.addrs);
                }
            }
        }
        if let Some(target) = linked {
            for targets in zone.names.values() {
                for t in targets.iter().filter(|t| &t.container == target) {
                    found = true;
                    add_new(&mut out, &t.addrs);
                }
            }
        }
    }
    found.then_some(out)
}

fn add_new(out: &mut Vec<IpAddr>, addrs: &[IpAddr]) {
    for a in addrs {
        if !out.contains(a) {
            out.push(*a);
        }
    }
}

/// The PTR name of `ip` for `client`, on the first shared network that
/// knows it.
pub(super) fn reverse(view: &View, client: &Client, ip: IpAddr) -> Option<String> {
    client.networks.iter().find_map(|net| {
        let zone = view.zones.get(net)?;
        zone.reverse.get(&ip).map(|n| format!("{n}.{}.", zone.name))
    })
}

/// Answers one datagram from container `client_id`: the common query for
/// a known name by hand ([`answer_fast`]), everything else through
/// hickory ([`answer_full`]).
pub fn answer(view: &View, client_id: &str, query: &[u8], udp: bool) -> Action {
    let mut out = Vec::new();
    if answer_fast(view, client_id, query, udp, &mut out) {
        return Action::Reply(out);
    }
    answer_full(view, client_id, query, udp)
}

/// Answers one datagram from container `client_id` with hickory's parser
/// and encoder, whatever it is: what [`answer`] does when the fast path
/// declines, and what the tests and the fuzz target compare it with.
pub fn answer_full(view: &View, client_id: &str, query: &[u8], udp: bool) -> Action {
    // Check the header before handing the rest to the parser: one
    // question, no answers, a few additional records at most. Anything
    // else is not a query a stub resolver sends.
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return Action::Drop;
    }
    let count = |i: usize| u16::from_be_bytes([query[i], query[i + 1]]);
    let opcode = (query[2] >> 3) & 0x0f;
    if opcode != 0 {
        return raw_error(query, ResponseCode::NotImp);
    }
    if count(4) != 1 || count(6) != 0 || count(8) != 0 || count(10) > 2 {
        return raw_error(query, ResponseCode::FormErr);
    }
    let Ok(q) = Message::from_vec(query) else {
        return raw_error(query, ResponseCode::FormErr);
    };
    if q.metadata.message_type != MessageType::Query || q.metadata.op_code != OpCode::Query {
        return raw_error(query, ResponseCode::FormErr);
    }
    let Some(question) = q.queries.first().cloned() else {
        return raw_error(query, ResponseCode::FormErr);
    };
    let limit = udp.then(|| udp_limit(&q));
    let Some(client) = view.clients.get(client_id) else {
        let mut m = response_to(&q);
        m.metadata.response_code = ResponseCode::Refused;
        return Action::Reply(encode(&m, limit));
    };
    if question.query_class() != DNSClass::IN {
        return forward_or_fail(q, client, limit);
    }
    let name = lower(question.name());
    let qtype = question.query_type();
    if qtype == RecordType::PTR {
        if let Ok(net) = question.name().parse_arpa_name()
            && net.prefix_len() == net.max_prefix_len()
            && let Some(ptr) = reverse(view, client, net.addr())
            && let Ok(target) = Name::from_ascii(&ptr)
        {
            let mut m = response_to(&q);
            m.add_answer(Record::from_rdata(
                question.name().clone(),
                TTL,
                RData::PTR(PTR(target)),
            ));
            return Action::Reply(encode(&m, limit));
        }
        return forward_or_fail(q, client, limit);
    }
    let Some(mut addrs) = lookup(view, client, &name) else {
        return forward_or_fail(q, client, limit);
    };
    // A name held by several containers answers all of them, in a new
    // order each time (round-robin).
    addrs.shuffle(&mut rand::rng());
    let mut m = response_to(&q);
    for a in addrs {
        let rdata = match (qtype, a) {
            (RecordType::A | RecordType::ANY, IpAddr::V4(v4)) => RData::A(A(v4)),
            (RecordType::AAAA | RecordType::ANY, IpAddr::V6(v6)) => RData::AAAA(AAAA(v6)),
            _ => continue,
        };
        m.add_answer(Record::from_rdata(question.name().clone(), TTL, rdata));
    }
    // A local name without records of the asked type: NOERROR and no data.
    Action::Reply(encode(&m, limit))
}

fn forward_or_fail(q: Message, client: &Client, limit: Option<usize>) -> Action {
    if client.forward {
        Action::Forward(Box::new(q))
    } else {
        Action::Reply(encode(&failure(&q), limit))
    }
}

/// SERVFAIL for a query that could not be answered (no upstream, upstreams
/// silent), as Docker's resolver says it.
pub fn failure(q: &Message) -> Message {
    let mut m = response_to(q);
    m.metadata.response_code = ResponseCode::ServFail;
    m
}

/// A query message for tests and for the bench: `name` of `qtype`.
pub fn query(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    if let Ok(n) = Name::from_ascii(name) {
        m.add_query(Query::query(n, qtype));
    }
    m.to_vec().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> View {
        let mut v = View::default();
        let mut z = Zone {
            name: "my-net".into(),
            ..Default::default()
        };
        let t1 = Target {
            container: "c1id".into(),
            addrs: vec!["172.18.0.2".parse().unwrap(), "fd00::2".parse().unwrap()],
        };
        let t2 = Target {
            container: "c2id".into(),
            addrs: vec!["172.18.0.3".parse().unwrap()],
        };
        z.names.insert("centos01".into(), vec![t1.clone()]);
        z.names.insert("centos02".into(), vec![t2.clone()]);
        z.names.insert("web".into(), vec![t1.clone(), t2.clone()]);
        z.reverse.insert("172.18.0.2".parse().unwrap(), "centos01".into());
        v.zones.insert("n1".into(), z);
        let mut other = Zone {
            name: "other".into(),
            ..Default::default()
        };
        other.names.insert(
            "hidden".into(),
            vec![Target {
                container: "c3id".into(),
                addrs: vec!["10.9.0.2".parse().unwrap()],
            }],
        );
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

    fn reply(a: Action) -> Message {
        match a {
            Action::Reply(b) => Message::from_vec(&b).expect("a valid reply"),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    fn addrs(m: &Message) -> Vec<String> {
        let mut v: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn answers_names_on_shared_networks() {
        let v = view();
        let m = reply(answer(&v, "c2id", &query(7, "centos01", RecordType::A), true));
        assert_eq!(m.metadata.id, 7);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.metadata.recursion_available);
        assert_eq!(addrs(&m), ["172.18.0.2"]);
        assert_eq!(m.answers[0].ttl, TTL);
        let m = reply(answer(&v, "c2id", &query(8, "CENTOS01.", RecordType::AAAA), true));
        assert_eq!(addrs(&m), ["fd00::2"]);
        let m = reply(answer(
            &v,
            "c2id",
            &query(9, "centos01.my-net", RecordType::A),
            true,
        ));
        assert_eq!(addrs(&m), ["172.18.0.2"]);
        // No AAAA for an IPv4-only container: NOERROR, no data.
        let m = reply(answer(&v, "c2id", &query(10, "centos02", RecordType::AAAA), true));
        assert_eq!(
            (m.metadata.response_code, m.answers.len()),
            (ResponseCode::NoError, 0)
        );
    }

    #[test]
    fn shared_names_answer_everyone_in_turn() {
        let v = view();
        let mut firsts = std::collections::HashSet::new();
        for i in 0..64 {
            let m = reply(answer(&v, "c2id", &query(i, "web", RecordType::A), true));
            assert_eq!(addrs(&m), ["172.18.0.2", "172.18.0.3"]);
            firsts.insert(m.answers[0].data.to_string());
        }
        assert_eq!(firsts.len(), 2, "the order never changed");
    }

    #[test]
    fn other_networks_are_invisible_and_unknown_names_go_upstream() {
        let v = view();
        assert!(matches!(
            answer(&v, "c2id", &query(1, "hidden", RecordType::A), true),
            Action::Forward(_)
        ));
        assert!(matches!(
            answer(&v, "c2id", &query(1, "example.org", RecordType::A), true),
            Action::Forward(_)
        ));
        // Internal networks do not forward.
        let m = reply(answer(&v, "inner", &query(1, "example.org", RecordType::A), true));
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        // Unknown clients are refused.
        let m = reply(answer(&v, "stranger", &query(1, "centos01", RecordType::A), true));
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    }

    #[test]
    fn links_resolve_for_the_linking_container_only() {
        let v = view();
        let m = reply(answer(&v, "c2id", &query(1, "db", RecordType::A), true));
        assert_eq!(addrs(&m), ["172.18.0.2"]);
        let m = reply(answer(&v, "inner", &query(1, "db", RecordType::A), true));
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    }

    #[test]
    fn ptr_names_container_dot_network() {
        let v = view();
        let m = reply(answer(
            &v,
            "c2id",
            &query(1, "2.0.18.172.in-addr.arpa", RecordType::PTR),
            true,
        ));
        assert_eq!(addrs(&m), ["centos01.my-net."]);
        assert!(matches!(
            answer(
                &v,
                "c2id",
                &query(1, "9.9.9.10.in-addr.arpa", RecordType::PTR),
                true
            ),
            Action::Forward(_)
        ));
    }

    #[test]
    fn malformed_queries_get_errors_or_nothing() {
        let v = view();
        assert_eq!(answer(&v, "c2id", &[], true), Action::Drop);
        assert_eq!(answer(&v, "c2id", &[1, 2, 3], true), Action::Drop);
        // A response is never answered (no loops between resolvers).
        let mut resp = query(5, "centos01", RecordType::A);
        resp[2] |= 0x80;
        assert_eq!(answer(&v, "c2id", &resp, true), Action::Drop);
        // Truncated after the header: FORMERR with the same id.
        let q = query(0x1234, "centos01", RecordType::A);
        let m = reply(answer(&v, "c2id", &q[..14], true));
        assert_eq!(
            (m.metadata.id, m.metadata.response_code),
            (0x1234, ResponseCode::FormErr)
        );
        // Two questions, or a huge count: FORMERR without parsing.
        let mut two = q.clone();
        two[5] = 2;
        assert_eq!(
            reply(answer(&v, "c2id", &two, true)).metadata.response_code,
            ResponseCode::FormErr
        );
        let mut huge = q.clone();
        huge[4] = 0xff;
        huge[5] = 0xff;
        assert_eq!(
            reply(answer(&v, "c2id", &huge, true)).metadata.response_code,
            ResponseCode::FormErr
        );
        // Another opcode: NOTIMP.
        let mut notify = q.clone();
        notify[2] = (notify[2] & 0x87) | (4 << 3);
        assert_eq!(
            reply(answer(&v, "c2id", &notify, true)).metadata.response_code,
            ResponseCode::NotImp
        );
    }

    /// The fuzz-style check of the parser: random and mutated packets never
    /// panic and always give a reply, a forward or a drop. Deterministic
    /// (seeded) and bounded, so it runs in every test pass; the
    /// coverage-guided target is in `fuzz/`.
    #[test]
    fn random_and_mutated_packets_never_panic() {
        use rand::{Rng, SeedableRng};
        let v = view();
        let mut rng = rand::rngs::StdRng::seed_from_u64(0xbe27);
        let seeds: Vec<Vec<u8>> = [
            query(1, "centos01", RecordType::A),
            query(2, "web", RecordType::AAAA),
            query(3, "2.0.18.172.in-addr.arpa", RecordType::PTR),
            query(4, "example.org", RecordType::MX),
        ]
        .into();
        for i in 0..60_000 {
            let mut p = if i % 3 == 0 {
                let len = rng.random_range(0..600);
                (0..len).map(|_| rng.random()).collect()
            } else {
                seeds[i % seeds.len()].clone()
            };
            for _ in 0..rng.random_range(0..8) {
                if p.is_empty() {
                    break;
                }
                let at = rng.random_range(0..p.len());
                match rng.random_range(0..3) {
                    0 => p[at] = rng.random(),
                    1 => p.truncate(at),
                    _ => p.insert(at, rng.random()),
                }
            }
            let _ = answer(&v, "c2id", &p, i % 2 == 0);
        }
    }
}
