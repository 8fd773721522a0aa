//! VXLAN devices and what a tunnel endpoint forwards where: the `ip link
//! add … type vxlan`, `ip neigh replace … nud permanent` and `bridge fdb
//! replace … self permanent` that an overlay network is made of.
//!
//! berth's VXLAN devices learn nothing (`nolearning`, no miss handlers):
//! every remote container is two entries programmed from the cluster
//! store, its IP→MAC neighbour entry on the device (which answers ARP
//! locally: `proxy`) and its MAC→tunnel-endpoint FDB entry. Both are
//! written with `replace` (idempotent) and deleted with "already gone" as
//! success.

use std::net::IpAddr;
use std::os::fd::AsRawFd;

use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::{Handle, LinkBridgePort, LinkVxlan};

use crate::error::is_errno;
use crate::netns::Netns;
use crate::{Error, Mac, Result};

/// The IANA port for VXLAN.
pub const PORT: u16 = 4789;

/// What VXLAN adds to every frame (outer IPv4 + UDP + VXLAN headers and
/// the inner Ethernet header): an overlay's MTU is its underlay's minus
/// this.
pub const OVERHEAD: u32 = 50;

/// A VXLAN device to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vxlan {
    /// Its name.
    pub name: String,
    /// The VNI.
    pub vni: u32,
    /// This host's tunnel endpoint (`--advertise-addr`).
    pub local: IpAddr,
    /// Its MTU.
    pub mtu: u32,
}

/// Makes `vx` inside `ns` from the host's netlink socket `host`, like `ip
/// link add NAME netns NS type vxlan id VNI dstport 4789 local IP
/// nolearning proxy mtu MTU`: the device lives in `ns` while its UDP
/// socket stays in the host's namespace, where the underlay is.
pub async fn add_into(host: &Handle, vx: &Vxlan, ns: &Netns) -> Result<()> {
    let b = LinkVxlan::new(&vx.name, vx.vni)
        .port(PORT)
        .learning(false)
        .proxy(true)
        .mtu(vx.mtu);
    let b = match vx.local {
        IpAddr::V4(a) => b.local(a),
        IpAddr::V6(a) => b.local6(a),
    };
    let mut msg: LinkMessage = b.build();
    msg.attributes.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
    host.link()
        .add(msg)
        .execute()
        .await
        .map_err(|e| Error::netlink(format!("creating VXLAN device {} (VNI {})", vx.name, vx.vni), e))
}

/// Turns learning off on a bridge port, like `bridge link set dev PORT
/// learning off`: the bridge must not learn remote MACs behind the VXLAN
/// device either.
pub async fn no_learning(handle: &Handle, index: u32) -> Result<()> {
    handle
        .link()
        .set_port(LinkBridgePort::new(index).learning(false).build())
        .execute()
        .await
        .map_err(|e| Error::netlink(format!("turning learning off on port {index}"), e))
}

/// `ip neigh replace IP lladdr MAC dev INDEX nud permanent`.
pub async fn replace_neighbour(handle: &Handle, index: u32, ip: IpAddr, mac: Mac) -> Result<()> {
    handle
        .neighbours()
        .add(index, ip)
        .link_layer_address(&mac.octets())
        .state(NeighbourState::Permanent)
        .replace()
        .execute()
        .await
        .map_err(|e| Error::netlink(format!("adding the neighbour entry {ip} → {mac}"), e))
}

/// `bridge fdb replace MAC dev INDEX dst VTEP self permanent`.
pub async fn replace_fdb(handle: &Handle, index: u32, mac: Mac, vtep: IpAddr) -> Result<()> {
    handle
        .neighbours()
        .add_bridge(index, &mac.octets())
        .flags(NeighbourFlags::Own)
        .state(NeighbourState::Permanent)
        .destination(vtep)
        .replace()
        .execute()
        .await
        .map_err(|e| Error::netlink(format!("adding the forwarding entry {mac} → {vtep}"), e))
}

/// Deleting an entry that is already gone is success.
fn gone_ok(r: std::result::Result<(), rtnetlink::Error>, what: String) -> Result<()> {
    match r {
        Err(e) if is_errno(&e, libc::ENOENT) || is_errno(&e, libc::ENODEV) => Ok(()),
        r => r.map_err(|e| Error::netlink(what, e)),
    }
}

/// `ip neigh del IP dev INDEX`. Idempotent.
pub async fn del_neighbour(handle: &Handle, index: u32, ip: IpAddr) -> Result<()> {
    let mut m = NeighbourMessage::default();
    m.header.family = match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    m.header.ifindex = index;
    m.attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::from(ip)));
    gone_ok(
        handle.neighbours().del(m).execute().await,
        format!("deleting the neighbour entry of {ip}"),
    )
}

/// `bridge fdb del MAC dev INDEX self`. Idempotent.
pub async fn del_fdb(handle: &Handle, index: u32, mac: Mac) -> Result<()> {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Bridge;
    m.header.ifindex = index;
    m.header.state = NeighbourState::Permanent;
    m.header.flags = NeighbourFlags::Own;
    m.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.octets().to_vec()));
    gone_ok(
        handle.neighbours().del(m).execute().await,
        format!("deleting the forwarding entry of {mac}"),
    )
}

/// An address the kernel sent as raw bytes (netlink-packet-route 0.34
/// reads an FDB entry's `NDA_DST` that way).
fn address(a: &NeighbourAddress) -> Option<IpAddr> {
    match a {
        NeighbourAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        NeighbourAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        NeighbourAddress::Other(b) if b.len() == 4 => Some(IpAddr::from(<[u8; 4]>::try_from(&b[..]).ok()?)),
        NeighbourAddress::Other(b) if b.len() == 16 => Some(IpAddr::from(<[u8; 16]>::try_from(&b[..]).ok()?)),
        _ => None,
    }
}

fn mac_of(attrs: &[NeighbourAttribute]) -> Option<Mac> {
    attrs.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(l) => <[u8; 6]>::try_from(&l[..]).ok().map(Mac),
        _ => None,
    })
}

fn destination(attrs: &[NeighbourAttribute]) -> Option<IpAddr> {
    attrs.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(d) => address(d),
        _ => None,
    })
}

async fn dump(handle: &Handle, family: AddressFamily) -> Result<Vec<NeighbourMessage>> {
    crate::link::dump("listing neighbour and forwarding entries", || {
        handle.neighbours().get().set_address_family(family).execute()
    })
    .await
}

/// The permanent neighbour entries of the device `index`: IP → MAC.
pub async fn neighbours(handle: &Handle, index: u32) -> Result<Vec<(IpAddr, Mac)>> {
    let mut out = Vec::new();
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        for m in dump(handle, family).await? {
            if m.header.ifindex == index
                && m.header.state == NeighbourState::Permanent
                && let (Some(ip), Some(mac)) = (destination(&m.attributes), mac_of(&m.attributes))
            {
                out.push((ip, mac));
            }
        }
    }
    Ok(out)
}

/// The device's own (`self`) forwarding entries that lead to a tunnel
/// endpoint: MAC → VTEP.
pub async fn forwarding(handle: &Handle, index: u32) -> Result<Vec<(Mac, IpAddr)>> {
    Ok(dump(handle, AddressFamily::Bridge)
        .await?
        .iter()
        .filter(|m| m.header.ifindex == index && m.header.flags.contains(NeighbourFlags::Own))
        .filter_map(|m| Some((mac_of(&m.attributes)?, destination(&m.attributes)?)))
        .collect())
}
