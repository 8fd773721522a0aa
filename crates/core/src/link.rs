//! Links, addresses and routes over rtnetlink: the few `ip` commands every
//! driver needs, each idempotent where its doc says so.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd};

use futures_util::{Stream, TryStreamExt};
use ipnet::IpNet;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoBridgePort, InfoData, InfoPortData, InfoPortKind,
    InfoVeth, LinkAttribute, LinkMessage,
};
use rtnetlink::packet_route::route::{RouteMessage, RouteScope};
use rtnetlink::{
    Handle, LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

use crate::error::is_errno;
use crate::netns::Netns;
use crate::{Error, IfName, Mac, Result, Vanish};

/// A link as `ip link show` would summarise it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// `IFLA_IFALIAS`, which berth uses to mark what it made.
    pub alias: Option<String>,
    /// The bridge (or other master) it is enslaved to.
    pub master: Option<u32>,
    /// The link kind (`bridge`, `veth`, …), if it has one.
    pub kind: Option<String>,
    /// Its MTU.
    pub mtu: u32,
    /// It is up (`IFF_UP`).
    pub up: bool,
    /// Its MAC address, when it has an Ethernet one.
    pub mac: Option<Mac>,
}

impl Link {
    fn from_message(msg: &LinkMessage) -> Self {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            alias: None,
            master: None,
            kind: None,
            mtu: 0,
            up: msg
                .header
                .flags
                .contains(rtnetlink::packet_route::link::LinkFlags::Up),
            mac: None,
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::Address(a) => {
                    link.mac = <[u8; 6]>::try_from(a.as_slice()).ok().map(Mac);
                }
                LinkAttribute::IfName(n) => link.name = n.clone(),
                LinkAttribute::IfAlias(a) => link.alias = Some(a.clone()),
                LinkAttribute::Controller(m) => link.master = Some(*m),
                LinkAttribute::Mtu(m) => link.mtu = *m,
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        if let rtnetlink::packet_route::link::LinkInfo::Kind(k) = info {
                            link.kind = Some(k.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }
}

/// Collects a netlink dump, waiting while another one runs on the same
/// socket. The kernel runs one dump per netlink socket at a time and refuses
/// a second with `EBUSY` (`netlink_dump_start` in net/netlink/af_netlink.c),
/// and a [`Handle`]'s socket is shared by every task that holds the handle:
/// fifty `network create` at once each list the host's routes on the same
/// one. `request` builds the request anew for each try; the wait is bounded
/// (about 5 s), after which `EBUSY` is the error.
pub async fn dump<T, S>(what: &'static str, mut request: impl FnMut() -> S) -> Result<Vec<T>>
where
    S: Stream<Item = std::result::Result<T, rtnetlink::Error>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut pause = std::time::Duration::from_micros(100);
    loop {
        match request().try_collect().await {
            Err(e) if is_errno(&e, libc::EBUSY) && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_millis(10));
            }
            r => return r.map_err(|e| Error::netlink(what, e)),
        }
    }
}

/// Looks a link up by name, like `ip link show NAME`; `None` when there is
/// no such link.
pub async fn get(handle: &Handle, name: &str) -> Result<Option<Link>> {
    let mut req = handle.link().get().match_name(name.to_owned()).execute();
    match req.try_next().await {
        Ok(Some(msg)) => Ok(Some(Link::from_message(&msg))),
        Ok(None) => Ok(None),
        Err(e) if is_errno(&e, libc::ENODEV) => Ok(None),
        Err(e) => Err(Error::netlink(format!("looking up link {name}"), e)),
    }
}

/// Every link in the handle's namespace, like `ip link show`.
pub async fn list(handle: &Handle) -> Result<Vec<Link>> {
    let msgs: Vec<LinkMessage> = dump("listing links", || handle.link().get().execute()).await?;
    Ok(msgs.iter().map(Link::from_message).collect())
}

/// Creates a bridge with a fixed MAC, like `ip link add NAME address MAC
/// mtu MTU type bridge && ip link set NAME alias ALIAS up`. A fixed MAC
/// keeps the bridge from taking a port's, which would flush its neighbour
/// entries when that port leaves. Returns the new index.
pub async fn add_bridge(
    handle: &Handle,
    name: &IfName,
    mac: Mac,
    mtu: Option<u32>,
    alias: &str,
) -> Result<u32> {
    let mut msg = LinkBridge::new(name.as_str())
        .address(mac.octets().to_vec())
        .mcast_snooping(false);
    if let Some(mtu) = mtu {
        msg = msg.mtu(mtu);
    }
    handle
        .link()
        .add(msg.build())
        .execute()
        .await
        .map_err(|e| Error::netlink(format!("creating bridge {name}"), e))?;
    let link = get(handle, name.as_str()).await?.ok_or_else(|| Error::Vanished {
        link: format!("bridge {name}"),
        when: Vanish::AfterCreate,
    })?;
    // The alias cannot ride on RTM_NEWLINK: the kernel only applies it on change.
    if let Err(e) = set_alias(handle, link.index, alias).await {
        let _ = del(handle, link.index).await;
        return Err(e);
    }
    Ok(link.index)
}

/// Sets a link's alias (`IFLA_IFALIAS`), like `ip link set INDEX alias
/// ALIAS`. berth marks the links it makes this way.
pub async fn set_alias(handle: &Handle, index: u32, alias: &str) -> Result<()> {
    handle
        .link()
        .set(alias_msg(index, alias))
        .execute()
        .await
        .map_err(|e| Error::netlink(format!("labelling link {index}"), e))
}

/// Creates a veth pair whose host end `name` stays down in the handle's
/// namespace and whose peer is born inside `peer_ns` as `peer` with `mac`,
/// like `ip link add NAME type veth peer name PEER netns NS address MAC`.
/// Creating the peer in place costs about 1 ms; creating it in the host and
/// moving it costs 10-25 ms. Both ends stay down: asking for the peer up in
/// the same message fails with `ENOTCONN` (the kernel opens it before the
/// pair is linked). [`configure`] brings the peer up; [`attach_port`] then
/// brings the host end up on its bridge.
pub async fn add_veth_into(
    handle: &Handle,
    name: &str,
    mtu: Option<u32>,
    peer_ns: &Netns,
    peer: &IfName,
    mac: Mac,
) -> Result<()> {
    let mut peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
        .name(peer.as_str())
        .address(mac.octets().to_vec())
        .append_extra_attribute(LinkAttribute::NetNsFd(peer_ns.as_raw_fd()));
    let mut msg = LinkVeth::new(name, peer.as_str());
    if let Some(mtu) = mtu {
        msg = msg.mtu(mtu);
        peer_msg = peer_msg.mtu(mtu);
    }
    let msg = msg
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg.build())))
        .build();
    handle
        .link()
        .add(msg)
        .execute()
        .await
        .map_err(|e| Error::netlink(format!("creating veth {name} with peer {peer} in the sandbox"), e))
}

/// Enslaves the link `name` to `master` (if any) and brings it up without
/// IPv6 addresses, like `ip link set NAME master BR addrgenmode none &&
/// ip link set NAME up`. A bridge port needs no address of its own;
/// without one it sends no IPv6 duplicate-address or multicast-listener
/// traffic, which the bridge would copy to every other port, and adds no
/// route to the host's IPv6 tables, which the kernel walks at every link
/// change: attaching would slow down as containers pile up.
pub async fn attach_port(handle: &Handle, name: &str, master: Option<u32>) -> Result<()> {
    let mut msg = LinkUnspec::new_with_name(name).append_extra_attribute(no_ipv6_addresses());
    if let Some(master) = master {
        msg = msg.controller(master);
    }
    handle
        .link()
        .set(msg.build())
        .execute()
        .await
        .map_err(|e| Error::netlink(format!("attaching {name} to its bridge"), e))?;
    set_up_by_name(handle, name).await
}

/// Like [`attach_port`], but the port is `isolated` (`bridge link set dev
/// NAME isolated on`) before it comes up: isolated ports reach only
/// non-isolated ones (the bridge itself), which is how `icc=false` keeps
/// containers of one network apart.
pub async fn enslave_isolated(handle: &Handle, name: &str, master: u32) -> Result<()> {
    let msg = LinkUnspec::new_with_name(name)
        .controller(master)
        .append_extra_attribute(no_ipv6_addresses());
    handle
        .link()
        .set(msg.build())
        .execute()
        .await
        .map_err(|e| Error::netlink(format!("attaching {name} to its bridge"), e))?;
    // Isolated and up in one message: the kernel applies a port's settings
    // before the link's flags.
    let msg = LinkUnspec::new_with_name(name)
        .set_port_kind(InfoPortKind::Bridge)
        .set_port_data(InfoPortData::BridgePort(vec![InfoBridgePort::Isolated(true)]))
        .up()
        .build();
    handle
        .link()
        .set_port(msg)
        .execute()
        .await
        .map_err(|e| Error::netlink(format!("isolating {name} on its bridge and bringing it up"), e))
}

async fn set_up_by_name(handle: &Handle, name: &str) -> Result<()> {
    handle
        .link()
        .set(LinkUnspec::new_with_name(name).up().build())
        .execute()
        .await
        .map_err(|e| Error::netlink(format!("bringing {name} up"), e))
}

/// `addrgenmode none`: the link makes no IPv6 addresses of its own. Must
/// be sent before the message that brings the link up: in the same message
/// the kernel applies the flags first and makes the link-local address.
fn no_ipv6_addresses() -> LinkAttribute {
    LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(
        In6AddrGenMode::None,
    )])])
}

/// Sets a bridge port's `isolated` flag, like `bridge link set dev NAME
/// isolated on`: isolated ports reach only non-isolated ones (the bridge).
pub async fn set_port_isolated(handle: &Handle, index: u32, isolated: bool) -> Result<()> {
    let msg = LinkBridgePort::new(index)
        .append_info_data(InfoBridgePort::Isolated(isolated))
        .build();
    handle
        .link()
        .set_port(msg)
        .execute()
        .await
        .map_err(|e| Error::netlink("setting bridge port isolation", e))
}

/// Sets a link up, like `ip link set dev INDEX up`.
pub async fn set_up(handle: &Handle, index: u32) -> Result<()> {
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(|e| Error::netlink(format!("setting link {index} up"), e))
}

/// Deletes a link, like `ip link del INDEX`. Idempotent.
pub async fn del(handle: &Handle, index: u32) -> Result<()> {
    match handle.link().del(index).execute().await {
        Err(e) if is_errno(&e, libc::ENODEV) => Ok(()), // already gone
        r => r.map_err(|e| Error::netlink(format!("deleting link {index}"), e)),
    }
}

/// Deletes a link by name, like `ip link del NAME`. Idempotent.
pub async fn del_by_name(handle: &Handle, name: &str) -> Result<()> {
    match get(handle, name).await? {
        Some(link) => del(handle, link.index).await,
        None => Ok(()),
    }
}

/// Deletes a link of `ns` by name, as [`del_by_name`] does, but returns
/// once the kernel has unlisted it: the rest of the deletion goes on in
/// the background, counted by `lingering` ([`crate::linger::delete`]).
/// `handle` must live in `ns`. Idempotent.
pub async fn del_by_name_early(
    handle: &Handle,
    ns: &Netns,
    lingering: &std::sync::Arc<crate::Lingering>,
    name: &str,
) -> Result<()> {
    match get(handle, name).await? {
        Some(link) => crate::linger::delete(ns, lingering, link.index).await,
        None => Ok(()),
    }
}

/// Adds an address, like `ip addr add ADDR dev INDEX nodad`. An address
/// that is already there is success. IPv6 addresses skip duplicate address
/// detection: the engine's IPAM already guarantees uniqueness, and DAD
/// would keep the address unusable for a second or more.
pub async fn add_address(handle: &Handle, index: u32, addr: IpNet) -> Result<()> {
    let mut req = handle.address().add(index, addr.addr(), addr.prefix_len());
    if addr.addr().is_ipv6() {
        req.message_mut()
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    match req.execute().await {
        Err(e) if is_errno(&e, libc::EEXIST) => Ok(()),
        r => r.map_err(|e| Error::netlink(format!("adding address {addr}"), e)),
    }
}

const RT_TABLE_MAIN: u8 = 254;

fn default_route(gateway: IpAddr) -> RouteMessage {
    match gateway {
        IpAddr::V4(gw) => RouteMessageBuilder::<std::net::Ipv4Addr>::new()
            .gateway(gw)
            .build(),
        IpAddr::V6(gw) => RouteMessageBuilder::<std::net::Ipv6Addr>::new()
            .gateway(gw)
            .build(),
    }
}

/// Adds a default route through `gateway`, like `ip route add default via
/// GW`. An existing default route of the same family is replaced.
pub async fn add_default_route(handle: &Handle, gateway: IpAddr) -> Result<()> {
    handle
        .route()
        .add(default_route(gateway))
        .replace()
        .execute()
        .await
        .map_err(|e| Error::netlink(format!("adding default route via {gateway}"), e))
}

/// Deletes the default route through `gateway`. Idempotent.
pub async fn del_default_route(handle: &Handle, gateway: IpAddr) -> Result<()> {
    match handle.route().del(default_route(gateway)).execute().await {
        Err(e) if is_errno(&e, libc::ESRCH) || is_errno(&e, libc::ENOENT) => Ok(()),
        r => r.map_err(|e| Error::netlink(format!("deleting default route via {gateway}"), e)),
    }
}

/// Brings the interface `ifname` of a sandbox up and puts addresses and
/// default routes on it: the part of an attach that every driver with an
/// interface in the sandbox shares. Without an IPv6 address among
/// `addresses` the interface gets no IPv6 link-local address either (as
/// Docker does on IPv4-only networks): it then sends no IPv6 duplicate
/// address or multicast-listener traffic, which a bridge would copy to all
/// its ports and every other container would have to process.
pub async fn configure(
    handle: &Handle,
    ifname: &IfName,
    addresses: &[IpNet],
    gateways: &[IpAddr],
) -> Result<()> {
    let link = get(handle, ifname.as_str())
        .await?
        .ok_or_else(|| Error::NotInSandbox {
            ifname: ifname.to_string(),
        })?;
    if !addresses.iter().any(|a| a.addr().is_ipv6()) {
        let msg = LinkUnspec::new_with_index(link.index).append_extra_attribute(no_ipv6_addresses());
        handle
            .link()
            .set(msg.build())
            .execute()
            .await
            .map_err(|e| Error::netlink(format!("turning off IPv6 addresses on {ifname}"), e))?;
    }
    set_up(handle, link.index).await?;
    for addr in addresses {
        add_address(handle, link.index, *addr).await?;
    }
    for gw in gateways {
        add_default_route(handle, *gw).await?;
    }
    Ok(())
}

/// Every address of the handle's namespace with the index of its link,
/// like `ip addr show`.
pub async fn addresses(handle: &Handle) -> Result<Vec<(u32, IpNet)>> {
    let msgs: Vec<rtnetlink::packet_route::address::AddressMessage> =
        dump("listing addresses", || handle.address().get().execute()).await?;
    Ok(msgs
        .iter()
        .filter_map(|m| {
            let ip = m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })?;
            Some((m.header.index, IpNet::new(ip, m.header.prefix_len).ok()?))
        })
        .collect())
}

/// The IPv4 and IPv6 routes of the handle's namespace (main table), as
/// prefixes, like `ip route show` plus `ip -6 route show`.
pub async fn routes(handle: &Handle) -> Result<Vec<IpNet>> {
    let mut out = Vec::new();
    for msg in [
        RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
        RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
    ] {
        let msgs: Vec<RouteMessage> =
            dump("listing routes", || handle.route().get(msg.clone()).execute()).await?;
        for m in msgs {
            if m.header.table != RT_TABLE_MAIN {
                continue;
            }
            let len = m.header.destination_prefix_length;
            let dst = m.attributes.iter().find_map(|a| match a {
                rtnetlink::packet_route::route::RouteAttribute::Destination(d) => match d {
                    rtnetlink::packet_route::route::RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
                    rtnetlink::packet_route::route::RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
                    _ => None,
                },
                _ => None,
            });
            if let Some(dst) = dst
                && let Ok(net) = IpNet::new(dst, len)
            {
                out.push(net.trunc());
            }
        }
    }
    Ok(out)
}

/// Brings `lo` up in a fresh namespace, like `ip link set lo up`.
pub async fn loopback_up(handle: &Handle) -> Result<()> {
    set_up(handle, 1).await
}

/// Brings `lo` up in the calling thread's namespace, synchronously (one
/// ioctl), for code that runs on a thread inside a new namespace and binds
/// loopback addresses next: a socket bound to 127.0.0.11 while `lo` is down
/// answers from 127.0.0.1, which resolvers reject.
pub fn loopback_up_here() -> std::io::Result<()> {
    // SAFETY: plain socket, ioctl on a zeroed ifreq naming "lo", close.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = std::os::fd::OwnedFd::from_raw_fd(fd);
        let mut req: libc::ifreq = std::mem::zeroed();
        for (d, s) in req.ifr_name.iter_mut().zip(b"lo") {
            *d = *s as libc::c_char;
        }
        if libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(fd.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Adds a default route through a device, with no gateway, like `ip route
/// add default dev INDEX` (ipvlan l3 and l3s, where every address is
/// on-link). An existing default route of the same family is replaced.
pub async fn add_default_route_dev(handle: &Handle, index: u32, v6: bool) -> Result<()> {
    let msg = if v6 {
        RouteMessageBuilder::<std::net::Ipv6Addr>::new()
            .output_interface(index)
            .build()
    } else {
        RouteMessageBuilder::<std::net::Ipv4Addr>::new()
            .output_interface(index)
            .build()
    };
    handle
        .route()
        .add(msg)
        .replace()
        .execute()
        .await
        .map_err(|e| Error::netlink("adding a default route through the device", e))
}

/// Adds or replaces a route through the interface `index`, like `ip route
/// replace DST [via HOP] dev IF`: through `via`, or on-link (scope link)
/// without one. `what` names the route in the error.
pub async fn replace_route(
    handle: &Handle,
    index: u32,
    destination: IpNet,
    via: Option<IpAddr>,
    what: &str,
) -> Result<()> {
    let msg = match destination {
        IpNet::V4(d) => {
            let b = RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                .destination_prefix(d.addr(), d.prefix_len())
                .output_interface(index);
            match via {
                Some(IpAddr::V4(hop)) => b.gateway(hop),
                _ => b.scope(RouteScope::Link),
            }
            .build()
        }
        IpNet::V6(d) => {
            let b = RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                .destination_prefix(d.addr(), d.prefix_len())
                .output_interface(index);
            match via {
                Some(IpAddr::V6(hop)) => b.gateway(hop),
                _ => b.scope(RouteScope::Link),
            }
            .build()
        }
    };
    handle
        .route()
        .add(msg)
        .replace()
        .execute()
        .await
        .map_err(|e| Error::netlink(format!("adding {what} to {destination}"), e))
}

/// Creates a sub-interface (macvlan, ipvlan) of a parent in the handle's
/// namespace directly inside `ns` under its final name, from a prepared
/// link message, like `ip link add NAME netns NS link PARENT type …`. A
/// busy parent (`EBUSY`: another kind of sub-interface, or a passthru
/// child) is reported as such.
pub async fn add_sublink_into(handle: &Handle, mut msg: LinkMessage, ns: &Netns, what: &str) -> Result<()> {
    msg.attributes.push(LinkAttribute::NetNsFd(ns.as_raw_fd()));
    match handle.link().add(msg).execute().await {
        Err(e) if is_errno(&e, libc::EBUSY) => Err(Error::ParentBusy {
            what: what.to_owned(),
        }),
        r => r.map_err(|e| Error::netlink(format!("creating {what}"), e)),
    }
}

/// Moves the link `name` of the handle's namespace into `ns` and renames it
/// `new_name` there, in one `RTM_SETLINK`, like `ip link set NAME netns NS
/// name NEW`. Docker network plugins hand the engine an interface made in
/// the host this way. Fails with `ENODEV` when there is no such link and
/// `EEXIST` when `ns` already has a link called `new_name`; on failure the
/// link stays where it was. Needs `CAP_NET_ADMIN` over both namespaces.
pub async fn move_link(handle: &Handle, name: &str, ns: &Netns, new_name: &IfName) -> Result<()> {
    let what = || format!("moving {name} into the sandbox as {new_name}");
    let link = get(handle, name).await?.ok_or_else(|| Error::Netlink {
        what: what(),
        source: std::io::Error::from_raw_os_error(libc::ENODEV),
    })?;
    let msg = LinkUnspec::new_with_index(link.index)
        .setns_by_fd(ns.as_raw_fd())
        .name(new_name.as_str())
        .build();
    handle
        .link()
        .set(msg)
        .execute()
        .await
        .map_err(|e| Error::netlink(what(), e))
}

/// Sets a link's MAC address, like `ip link set dev INDEX address MAC`.
/// Some kinds (veth among them) take it only while the link is down.
pub async fn set_mac(handle: &Handle, index: u32, mac: Mac) -> Result<()> {
    handle
        .link()
        .set(
            LinkUnspec::new_with_index(index)
                .address(mac.octets().to_vec())
                .build(),
        )
        .execute()
        .await
        .map_err(|e| Error::netlink(format!("setting the MAC address of link {index}"), e))
}

/// Sets a link's alias, like `ip link set INDEX alias ALIAS`.
fn alias_msg(index: u32, alias: &str) -> rtnetlink::packet_route::link::LinkMessage {
    rtnetlink::LinkUnspec::new_with_index(index)
        .append_extra_attribute(rtnetlink::packet_route::link::LinkAttribute::IfAlias(
            alias.to_owned(),
        ))
        .build()
}
