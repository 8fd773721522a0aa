//! A bare VXLAN pair between host A and host B ([`BarePair`]): the lane
//! next to the underlay and each subject's overlay that shows what any
//! VXLAN overlay between the two can carry at most. The iperf3 runs
//! themselves are `bench/iperf.rs`'s.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{Result, ensure};
use berth_testkit::run_in;

use crate::bench::iperf::mtu;

/// The bare pair's device, VNI, port and addresses (`.1` on host A).
const BARE_DEV: &str = "vxbare";
const BARE_VNI: u32 = 4242;
const VXLAN_PORT: u16 = 4789;
const BARE_PREFIX: &str = "10.215.0";
/// VXLAN's headers, which a device's MTU leaves room for.
pub const VXLAN_OVERHEAD: u32 = 50;

/// A VXLAN device in each of two host namespaces, with an address on it
/// and the other host as its remote: no bridge, no container, nothing
/// learned. What any VXLAN overlay between the two can carry at most.
pub struct BarePair {
    hosts: [PathBuf; 2],
}

impl BarePair {
    /// Makes it between `hosts` (namespace, underlay address), with the
    /// MTU of the underlay's `eth0` minus [`VXLAN_OVERHEAD`].
    pub fn new(hosts: [(&Path, Ipv4Addr); 2]) -> Result<Self> {
        let pair = Self {
            hosts: hosts.map(|(ns, _)| ns.to_owned()),
        };
        for (i, (ns, local)) in hosts.iter().enumerate() {
            let remote = hosts[1 - i].1;
            let mtu = mtu(ns, "eth0")? - VXLAN_OVERHEAD;
            let script = format!(
                "ip link add {BARE_DEV} mtu {mtu} type vxlan id {BARE_VNI} local {local} remote {remote} \
                 dstport {VXLAN_PORT} dev eth0 && ip addr add {}/24 dev {BARE_DEV} && ip link set {BARE_DEV} up",
                Self::address(i)
            );
            let r = run_in(ns, "sh", &["-c", &script]);
            ensure!(r.code == 0, "making the bare VXLAN pair: {}", r.stderr.trim());
        }
        Ok(pair)
    }

    /// The address of host `i`'s end.
    pub fn address(i: usize) -> Ipv4Addr {
        format!("{BARE_PREFIX}.{}", i + 1)
            .parse()
            .unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    /// The MTU of its devices.
    pub fn mtu(&self) -> Result<u32> {
        mtu(&self.hosts[0], BARE_DEV)
    }
}

impl Drop for BarePair {
    fn drop(&mut self) {
        for ns in &self.hosts {
            // Gone with its namespace anyway; "not found" is fine.
            let _ = run_in(ns, "ip", &["link", "del", BARE_DEV]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pair_has_an_address_per_host() {
        assert_eq!(BarePair::address(0), Ipv4Addr::new(10, 215, 0, 1));
        assert_eq!(BarePair::address(1), Ipv4Addr::new(10, 215, 0, 2));
        assert!(BARE_DEV.len() <= 15);
    }
}
