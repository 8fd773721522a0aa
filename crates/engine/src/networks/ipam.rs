//! Address management: choosing subnets from Docker's default pools and
//! handing out addresses inside them.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use berth_core::IpamConfig;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::error::AddressRole;
use crate::{Error, Result};

/// Docker's default local pools, in order: 172.17.0.0/16 … 172.31.0.0/16,
/// then 192.168.0.0/20 … 192.168.240.0/20.
pub fn default_pools() -> impl Iterator<Item = IpNet> {
    let b16 =
        (17u8..=31).map(|b| IpNet::V4(Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16).expect("valid /16")));
    let c20 = (0u8..16)
        .map(|i| IpNet::V4(Ipv4Net::new(Ipv4Addr::new(192, 168, i * 16, 0), 20).expect("valid /20")));
    b16.chain(c20)
}

/// True when two prefixes share any address.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Docker's default pool for global (overlay) networks: 10.0.0.0/8 in
/// /24s, 10.0.0.0/24 first.
pub fn global_pools() -> impl Iterator<Item = IpNet> {
    (0u32..1 << 16).map(|i| {
        let a = Ipv4Addr::new(10, (i >> 8) as u8, (i & 0xff) as u8, 0);
        IpNet::V4(Ipv4Net::new(a, 24).expect("valid /24"))
    })
}

/// A local pool given with `berth daemon --default-address-pool
/// base=CIDR,size=N`, as dockerd's flag: the subnets of prefix length
/// `size` in `base`, in order. Given pools replace Docker's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddressPool {
    base: Ipv4Net,
    size: u8,
}

impl AddressPool {
    /// A pool of `/size` subnets of `base`; `None` when `size` is shorter
    /// than `base`'s prefix or longer than 30 (a subnet needs room for a
    /// gateway and a container).
    pub fn new(base: Ipv4Net, size: u8) -> Option<Self> {
        (base.prefix_len() <= size && size <= 30).then(|| Self {
            base: base.trunc(),
            size,
        })
    }

    fn subnets(&self) -> impl Iterator<Item = IpNet> {
        self.base.subnets(self.size).into_iter().flatten().map(IpNet::V4)
    }
}

impl std::fmt::Display for AddressPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "base={},size={}", self.base, self.size)
    }
}

/// The first subnet of the local pools (`pools`, or Docker's defaults
/// when there are none) that overlaps none of `taken`.
pub fn pick_subnet(taken: &[IpNet], pools: &[AddressPool]) -> Result<IpNet> {
    if pools.is_empty() {
        return pick_from(default_pools(), taken, "172.17-31.0.0/16, 192.168.0-240.0/20");
    }
    let names: Vec<String> = pools.iter().map(ToString::to_string).collect();
    pick_from(
        pools.iter().flat_map(AddressPool::subnets),
        taken,
        &names.join("; "),
    )
}

/// The first global default pool that overlaps none of `taken`.
pub fn pick_global_subnet(taken: &[IpNet]) -> Result<IpNet> {
    pick_from(global_pools(), taken, "10.0.0.0/8 in /24s")
}

fn pick_from(mut pools: impl Iterator<Item = IpNet>, taken: &[IpNet], names: &str) -> Result<IpNet> {
    pools
        .find(|p| !taken.iter().any(|t| overlaps(p, t)))
        .ok_or_else(|| Error::PoolsExhausted {
            pools: names.to_owned(),
        })
}

/// A unique-local IPv6 /64 derived from a network id, for `--ipv6` without
/// an IPv6 `--subnet`.
pub fn ula_for(id: &str) -> IpNet {
    let h = |i: usize| u16::from_str_radix(id.get(i..i + 4).unwrap_or("0000"), 16).unwrap_or(0);
    let addr = Ipv6Addr::new(0xfd00 | (h(0) & 0xff), h(4), h(8), 0, 0, 0, 0, 0);
    IpNet::V6(Ipv6Net::new(addr, 64).expect("valid /64"))
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(v6: bool, n: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(n))
    } else {
        IpAddr::V4(Ipv4Addr::from(n as u32))
    }
}

/// The addresses of one subnet: which are reserved and which are in use.
#[derive(Clone, Debug)]
pub struct Pool {
    /// The subnet.
    pub subnet: IpNet,
    first: u128,
    last: u128,
    reserved: BTreeSet<u128>,
    used: BTreeSet<u128>,
    next: u128,
}

impl Pool {
    /// A pool for one `IPAM.Config` entry: addresses come from the ip-range
    /// (or the whole subnet) minus the network and broadcast addresses,
    /// the gateway and the aux addresses.
    pub fn new(cfg: &IpamConfig) -> Self {
        let range = cfg.ip_range.unwrap_or(cfg.subnet);
        let v6 = cfg.subnet.addr().is_ipv6();
        let net = to_u128(cfg.subnet.network());
        let bcast = to_u128(cfg.subnet.broadcast());
        let mut first = to_u128(range.network());
        let mut last = to_u128(range.broadcast());
        // The network address (and, in IPv4, the broadcast) never go to a
        // container; /31 and /32 are point-to-point and keep both.
        if cfg.subnet.prefix_len() < cfg.subnet.max_prefix_len() - 1 {
            first = first.max(net + 1);
            if !v6 {
                last = last.min(bcast - 1);
            }
        }
        let mut reserved: BTreeSet<u128> = cfg.aux_addresses.values().map(|a| to_u128(*a)).collect();
        if let Some(gw) = cfg.gateway {
            reserved.insert(to_u128(gw));
        }
        Self {
            subnet: cfg.subnet,
            first,
            last,
            reserved,
            used: BTreeSet::new(),
            next: first,
        }
    }

    fn v6(&self) -> bool {
        self.subnet.addr().is_ipv6()
    }

    /// True when `ip` is in this pool's subnet.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.subnet.contains(&ip)
    }

    /// Hands out the next free address after the last one handed out,
    /// wrapping around, so a released address is not reused at once.
    pub fn allocate(&mut self) -> Result<IpNet> {
        if self.first > self.last {
            return Err(self.exhausted());
        }
        let span = self.last - self.first + 1;
        let mut cand = self.next.clamp(self.first, self.last);
        // Bounded by the span, and by a generous cap: an IPv6 /64 is never
        // full in practice, and a /16 has 65534 candidates at most.
        for _ in 0..span.min(1 << 20) {
            if !self.used.contains(&cand) && !self.reserved.contains(&cand) {
                self.used.insert(cand);
                self.next = if cand == self.last { self.first } else { cand + 1 };
                return Ok(self.net(cand));
            }
            cand = if cand == self.last { self.first } else { cand + 1 };
        }
        Err(self.exhausted())
    }

    /// True when no address is left to hand out (counting every reserved
    /// address as one of the range's: it may say full a little early).
    pub fn is_full(&self) -> bool {
        self.first > self.last || (self.used.len() + self.reserved.len()) as u128 > self.last - self.first
    }

    fn exhausted(&self) -> Error {
        Error::SubnetFull {
            subnet: self.subnet,
            size: if self.first > self.last {
                0
            } else {
                self.last - self.first + 1
            },
        }
    }

    fn net(&self, n: u128) -> IpNet {
        IpNet::new(from_u128(self.v6(), n), self.subnet.prefix_len())
            .expect("prefix length of our own subnet")
    }

    /// Takes a specific address (`--ip`). `owner` names who holds an
    /// address that is already taken, for the error message.
    pub fn take(&mut self, ip: IpAddr, owner: impl Fn(IpAddr) -> Option<String>) -> Result<IpNet> {
        let n = to_u128(ip);
        if !self.subnet.contains(&ip) {
            return Err(Error::AddressOutsideSubnet {
                ip,
                subnet: self.subnet,
            });
        }
        if self.reserved.contains(&n) {
            return Err(Error::AddressReserved { ip });
        }
        if n < to_u128(self.subnet.network()) + 1
            && self.subnet.prefix_len() < self.subnet.max_prefix_len() - 1
        {
            return Err(Error::SpecialAddress {
                what: "address",
                ip,
                role: AddressRole::Network,
                subnet: self.subnet,
            });
        }
        if !self.v6() && n == to_u128(self.subnet.broadcast()) && self.subnet.prefix_len() < 31 {
            return Err(Error::SpecialAddress {
                what: "address",
                ip,
                role: AddressRole::Broadcast,
                subnet: self.subnet,
            });
        }
        if !self.used.insert(n) {
            return Err(Error::AddressInUse {
                ip,
                container: owner(ip),
            });
        }
        Ok(self.net(n))
    }

    /// Marks an address as in use (when restoring state). Returns false if
    /// it already was.
    pub fn mark(&mut self, ip: IpAddr) -> bool {
        self.used.insert(to_u128(ip))
    }

    /// Marks an address a container of another host has, and moves the
    /// next allocation past it: the hosts of a cluster then hand out
    /// addresses in one order, and an address freed by a host that went
    /// away is not the next one given out (that host may come back with
    /// its container still holding it). Returns false if it already was.
    pub fn mark_remote(&mut self, ip: IpAddr) -> bool {
        let n = to_u128(ip);
        if (self.next..=self.last).contains(&n) {
            self.next = if n == self.last { self.first } else { n + 1 };
        }
        self.used.insert(n)
    }

    /// Gives an address back. Idempotent.
    pub fn release(&mut self, ip: IpAddr) {
        self.used.remove(&to_u128(ip));
    }

    /// How many addresses are in use.
    pub fn in_use(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn cfg(subnet: &str, gw: Option<&str>, range: Option<&str>) -> IpamConfig {
        IpamConfig {
            subnet: subnet.parse().unwrap(),
            gateway: gw.map(|g| g.parse().unwrap()),
            ip_range: range.map(|r| r.parse().unwrap()),
            aux_addresses: BTreeMap::new(),
        }
    }

    #[test]
    fn given_pools_replace_the_defaults_and_go_in_order() {
        let pool = |b: &str, s| AddressPool::new(b.parse().unwrap(), s).unwrap();
        let pools = [pool("10.10.0.0/23", 24), pool("10.20.0.0/16", 16)];
        assert_eq!(pools[0].to_string(), "base=10.10.0.0/23,size=24");
        assert_eq!(pick_subnet(&[], &pools).unwrap().to_string(), "10.10.0.0/24");
        let taken: Vec<IpNet> = vec!["10.10.0.0/25".parse().unwrap()];
        assert_eq!(pick_subnet(&taken, &pools).unwrap().to_string(), "10.10.1.0/24");
        let taken: Vec<IpNet> = vec!["10.10.0.0/23".parse().unwrap()];
        assert_eq!(pick_subnet(&taken, &pools).unwrap().to_string(), "10.20.0.0/16");
        let taken: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let e = pick_subnet(&taken, &pools).unwrap_err().to_string();
        assert!(
            e.contains("(base=10.10.0.0/23,size=24; base=10.20.0.0/16,size=16)"),
            "{e}"
        );
        assert!(AddressPool::new("10.0.0.0/16".parse().unwrap(), 8).is_none());
        assert!(AddressPool::new("10.0.0.0/16".parse().unwrap(), 31).is_none());
    }

    #[test]
    fn pools_come_in_dockers_order_and_skip_what_is_taken() {
        assert_eq!(pick_subnet(&[], &[]).unwrap().to_string(), "172.17.0.0/16");
        let taken: Vec<IpNet> = vec!["172.17.0.0/16".parse().unwrap(), "172.18.5.0/24".parse().unwrap()];
        assert_eq!(pick_subnet(&taken, &[]).unwrap().to_string(), "172.19.0.0/16");
        let all16: Vec<IpNet> = vec!["172.16.0.0/12".parse().unwrap()];
        assert_eq!(pick_subnet(&all16, &[]).unwrap().to_string(), "192.168.0.0/20");
        let everything: Vec<IpNet> = vec!["0.0.0.0/1".parse().unwrap(), "128.0.0.0/1".parse().unwrap()];
        assert!(
            pick_subnet(&everything, &[])
                .unwrap_err()
                .to_string()
                .contains("give --subnet")
        );
    }

    #[test]
    fn a_pool_is_full_when_nothing_is_left_to_hand_out() {
        // .1 is the gateway: .2 to .6 go to containers.
        let mut p = Pool::new(&cfg("10.9.0.0/29", Some("10.9.0.1"), None));
        let mut got = Vec::new();
        for _ in 0..5 {
            assert!(!p.is_full());
            got.push(p.allocate().unwrap());
        }
        assert!(p.is_full());
        p.release(got[2].addr());
        assert!(!p.is_full());
    }

    #[test]
    fn global_pools_are_24s_of_10_8() {
        assert_eq!(pick_global_subnet(&[]).unwrap().to_string(), "10.0.0.0/24");
        let taken: Vec<IpNet> = vec!["10.0.0.0/24".parse().unwrap(), "10.0.1.128/25".parse().unwrap()];
        assert_eq!(pick_global_subnet(&taken).unwrap().to_string(), "10.0.2.0/24");
        let all: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert!(pick_global_subnet(&all).is_err());
    }

    #[test]
    fn allocation_skips_gateway_network_and_broadcast() {
        let mut p = Pool::new(&cfg("10.1.0.0/30", Some("10.1.0.1"), None));
        assert_eq!(p.allocate().unwrap().to_string(), "10.1.0.2/30");
        let e = p.allocate().unwrap_err().to_string();
        assert!(e.contains("no free addresses left in subnet 10.1.0.0/30"), "{e}");
        p.release("10.1.0.2".parse().unwrap());
        assert_eq!(p.allocate().unwrap().to_string(), "10.1.0.2/30");
    }

    #[test]
    fn allocation_stays_in_the_ip_range_and_moves_on() {
        let mut p = Pool::new(&cfg("10.2.0.0/16", Some("10.2.0.1"), Some("10.2.5.0/30")));
        let a = p.allocate().unwrap();
        let b = p.allocate().unwrap();
        assert_eq!(
            (a.to_string(), b.to_string()),
            ("10.2.5.0/16".into(), "10.2.5.1/16".into())
        );
        p.release(a.addr());
        // The next allocations do not reuse the address just released
        // until the range wraps around.
        assert_eq!(p.allocate().unwrap().to_string(), "10.2.5.2/16");
        assert_eq!(p.allocate().unwrap().to_string(), "10.2.5.3/16");
        assert_eq!(p.allocate().unwrap().to_string(), "10.2.5.0/16");
        assert!(p.allocate().is_err());
    }

    #[test]
    fn addresses_of_other_hosts_are_passed_over_for_good() {
        let mut p = Pool::new(&cfg("10.4.0.0/24", Some("10.4.0.1"), None));
        assert_eq!(p.allocate().unwrap().to_string(), "10.4.0.2/24");
        // Another host's container took .3 and .4; its host goes away.
        p.mark_remote("10.4.0.3".parse().unwrap());
        p.mark_remote("10.4.0.4".parse().unwrap());
        p.release("10.4.0.3".parse().unwrap());
        p.release("10.4.0.4".parse().unwrap());
        assert_eq!(p.allocate().unwrap().to_string(), "10.4.0.5/24");
    }

    #[test]
    fn static_addresses_are_checked() {
        let mut p = Pool::new(&cfg("10.3.0.0/24", Some("10.3.0.1"), None));
        assert_eq!(
            p.take("10.3.0.9".parse().unwrap(), |_| None).unwrap().to_string(),
            "10.3.0.9/24"
        );
        let owner = |_| Some("c1".to_string());
        for (ip, want) in [
            ("10.3.0.9", "already in use by container c1"),
            ("10.3.0.1", "reserved"),
            ("10.4.0.1", "not in subnet 10.3.0.0/24"),
            ("10.3.0.255", "broadcast"),
            ("10.3.0.0", "network address"),
        ] {
            let e = p.take(ip.parse().unwrap(), owner).unwrap_err().to_string();
            assert!(e.contains(want), "{ip}: {e}");
        }
    }

    #[test]
    fn ipv6_pools_work() {
        let mut p = Pool::new(&cfg("fd00:1::/64", Some("fd00:1::1"), None));
        assert_eq!(p.allocate().unwrap().to_string(), "fd00:1::2/64");
        assert!(ula_for(&"ab".repeat(32)).to_string().starts_with("fdab:"));
    }
}
