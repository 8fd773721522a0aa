//! A container's membership in one network: planning the endpoint
//! (interface name, addresses from the pools, MAC, default route) under the
//! state lock, and having the network's handle wire it in, undo it, check it.

use std::net::IpAddr;

use ipnet::IpNet;

use berth_core::{Endpoint, IfName, Mac, Ports, Sandbox, SandboxKind};

use crate::engine::{Engine, State};
use crate::networks::parse_ip;
use crate::store::model::{EndpointRecord, NetworkRecord};
use crate::{Error, NoPublish, Result, util};

/// Checks that ports can be published on `net`, whose driver says what
/// `-p` can do there.
pub(super) fn publishable(net: &NetworkRecord, ports: Ports) -> Result<()> {
    let (network, driver) = (net.net.name.clone(), net.net.driver.clone());
    let why = match ports {
        Ports::Forwarded | Ports::ViaGateway if net.net.internal => NoPublish::Internal { network },
        Ports::Forwarded | Ports::ViaGateway => return Ok(()),
        Ports::Shared => NoPublish::HostNetwork,
        Ports::NoInterface => NoPublish::NoInterface,
        Ports::OwnAddress => NoPublish::OwnAddress { network, driver },
        Ports::Unsupported => NoPublish::Unsupported { network, driver },
    };
    Err(Error::CannotPublish(why))
}

/// Optional addresses from the request strings.
pub(super) fn parse_static(v4: &str, v6: &str) -> Result<Vec<IpAddr>> {
    let mut out = Vec::new();
    if !v4.is_empty() {
        let ip = parse_ip("--ip address", v4)?;
        if !ip.is_ipv4() {
            return Err(Error::WrongFamily { ip });
        }
        out.push(ip);
    }
    if !v6.is_empty() {
        let ip = parse_ip("--ip6 address", v6)?;
        if !ip.is_ipv6() {
            return Err(Error::WrongFamily { ip });
        }
        out.push(ip);
    }
    Ok(out)
}

/// The driver's view of an endpoint record. An endpoint planned before its
/// interface name was chosen is `eth0`.
pub(crate) fn driver_view<'a>(
    ep: &'a EndpointRecord,
    sb: Option<&'a Sandbox>,
    gateways: &'a [IpAddr],
) -> Endpoint<'a> {
    static ETH0: std::sync::LazyLock<IfName> =
        std::sync::LazyLock::new(|| IfName::new("eth0").expect("eth0 is a valid interface name"));
    Endpoint {
        id: &ep.id,
        sandbox: sb,
        ifname: ep.ifname.as_ref().unwrap_or(&ETH0),
        mac: ep.mac,
        addresses: &ep.addresses,
        gateways,
        state: ep.driver_state.as_ref(),
    }
}

impl Engine {
    /// Plans one endpoint under the state lock: interface name, addresses
    /// (static or from the pools), MAC, whether it carries the default
    /// route. Counts it as pending on the network until
    /// [`Engine::settle`].
    pub(super) fn plan_endpoint(
        &self,
        st: &mut State,
        net: &NetworkRecord,
        existing: &[EndpointRecord],
        wanted: &[IpAddr],
        mac: Option<Mac>,
    ) -> Result<EndpointRecord> {
        if st.removing.contains(&net.net.id) {
            return Err(Error::NetworkBeingRemoved {
                network: net.net.name.clone(),
            });
        }
        self.release_unlinked(st);
        let caps = self.driven(st, net)?.caps;
        if mac.is_some() && caps.sandbox != SandboxKind::Own {
            return Err(Error::MacWithoutInterface {
                network: net.net.name.clone(),
            });
        }
        if !wanted.is_empty() && net.builtin && caps.ipam {
            return Err(Error::StaticOnPredefined {
                network: net.net.name.clone(),
            });
        }
        if !wanted.is_empty() && !caps.ipam {
            return Err(Error::StaticWithoutAddresses {
                network: net.net.name.clone(),
                driver: net.net.driver.clone(),
            });
        }
        let ifname = (0..)
            .map(|i| format!("eth{i}"))
            .find(|n| {
                !existing
                    .iter()
                    .any(|e| e.ifname.as_ref().is_some_and(|i| i.as_str() == n))
            })
            .and_then(|n| IfName::new(&n).ok());
        let mut addresses = Vec::new();
        if caps.ipam {
            let State {
                pools, containers, ..
            } = st;
            let pools = pools.entry(net.net.id.clone()).or_default();
            let owner = |ip: IpAddr| {
                containers
                    .values()
                    .find(|c| {
                        c.endpoint(&net.net.id)
                            .is_some_and(|e| e.addresses.iter().any(|a| a.addr() == ip))
                    })
                    .map(|c| c.name.clone())
            };
            let planned = (|| -> Result<()> {
                for v6 in [false, true] {
                    let want = wanted.iter().find(|a| a.is_ipv6() == v6);
                    if v6 && !net.net.ipv6 {
                        if let Some(ip) = want {
                            return Err(Error::NoIpv6 {
                                ip: *ip,
                                network: net.net.name.clone(),
                            });
                        }
                        continue;
                    }
                    let mut fam = pools
                        .iter_mut()
                        .filter(|p| p.subnet.addr().is_ipv6() == v6)
                        .peekable();
                    if let Some(ip) = want {
                        let pool = fam
                            .find(|p| p.contains(*ip))
                            .ok_or_else(|| Error::OutsideNetwork {
                                ip: *ip,
                                network: net.net.name.clone(),
                                subnets: net.net.ipam.iter().map(|c| c.subnet).collect(),
                            })?;
                        addresses.push(pool.take(*ip, owner)?);
                    } else if fam.peek().is_some() {
                        let mut last = None;
                        for pool in fam {
                            match pool.allocate() {
                                Ok(a) => {
                                    addresses.push(a);
                                    last = None;
                                    break;
                                }
                                Err(e) => last = Some(e),
                            }
                        }
                        if let Some(e) = last {
                            return Err(e);
                        }
                    }
                }
                Ok(())
            })();
            if let Err(e) = planned {
                for a in &addresses {
                    if let Some(p) = pools.iter_mut().find(|p| p.contains(a.addr())) {
                        p.release(a.addr());
                    }
                }
                return Err(e);
            }
        }
        // A network whose way out is the gateway bridge has no gateway of
        // its own.
        let gateways: Vec<IpAddr> = if caps.ipam && !caps.egress {
            [false, true]
                .iter()
                .filter_map(|v6| net.net.gateway(*v6))
                .filter(|g| net.net.ipv6 || g.is_ipv4())
                .collect()
        } else {
            Vec::new()
        };
        let default_route = caps.sandbox == SandboxKind::Own
            && !net.net.internal
            && !gateways.is_empty()
            && !existing.iter().any(|e| e.default_route);
        *st.pending.entry(net.net.id.clone()).or_default() += 1;
        Ok(EndpointRecord {
            id: util::new_id(),
            network_id: net.net.id.clone(),
            mac: if caps.sandbox == SandboxKind::Own {
                mac.unwrap_or_else(|| Mac::for_ipv4(addresses.iter().map(|a| a.addr()).find(IpAddr::is_ipv4)))
            } else {
                Mac::ZERO
            },
            ifname: if caps.sandbox == SandboxKind::Own {
                ifname
            } else {
                None
            },
            addresses,
            gateways,
            default_route,
            host_ifname: None,
            static_ip: wanted.to_vec(),
            mac_asked: mac.is_some() && caps.sandbox == SandboxKind::Own,
            aliases: Vec::new(),
            driver_state: None,
        })
    }

    /// Ends a planned endpoint's pending state; on failure gives its
    /// addresses back.
    pub(super) fn settle(st: &mut State, ep: &EndpointRecord, ok: bool) {
        if let Some(n) = st.pending.get_mut(&ep.network_id) {
            *n = n.saturating_sub(1);
        }
        if !ok {
            Self::release(st, ep);
        }
    }

    /// Marks `taken` used in network `net`'s pools for good (another
    /// host's container has it) and hands out the next free address of
    /// its subnet instead.
    pub(crate) fn replan(st: &mut State, net: &str, taken: IpNet) -> Result<IpNet> {
        let pool = st
            .pools
            .get_mut(net)
            .and_then(|pools| pools.iter_mut().find(|p| p.contains(taken.addr())))
            .ok_or_else(|| Error::NetworkNotFound { key: net.to_owned() })?;
        pool.mark(taken.addr());
        pool.allocate()
    }

    /// Gives a detached endpoint's addresses back to their pools once
    /// the kernel no longer has a link that held them: at once when no
    /// link deletion is under way, else when those under way now are
    /// done ([`Engine::release_unlinked`]).
    pub(crate) fn release_detached(&self, st: &mut State, ep: &EndpointRecord) {
        if self.ctx.lingering.pending() == 0 {
            Self::release(st, ep);
        } else {
            st.unlinking.push((self.ctx.lingering.mark(), ep.clone()));
        }
    }

    /// Gives back the addresses of detached endpoints whose links are
    /// now gone from the kernel.
    pub(crate) fn release_unlinked(&self, st: &mut State) {
        if st.unlinking.is_empty() {
            return;
        }
        let lingering = &self.ctx.lingering;
        let (gone, still): (Vec<_>, Vec<_>) = std::mem::take(&mut st.unlinking)
            .into_iter()
            .partition(|(mark, _)| lingering.done_before(*mark));
        st.unlinking = still;
        for (_, ep) in &gone {
            Self::release(st, ep);
        }
    }

    /// Before planning an endpoint on network `net_key`: when addresses
    /// held by links still being deleted are what the plan needs (a
    /// static address, or a pool with nothing else left), waits for those
    /// deletions (10–40 ms) so that the plan gets them back.
    pub(crate) async fn await_unlinked(&self, net_key: &str, wanted: &[IpAddr]) {
        let wait = {
            let mut st = self.state();
            self.release_unlinked(&mut st);
            let Ok(net) = crate::networks::find_network(&st, net_key) else {
                return;
            };
            let id = net.net.id.clone();
            st.unlinking.iter().any(|(_, ep)| ep.network_id == id)
                && (!wanted.is_empty() || st.pools.get(&id).is_some_and(|ps| ps.iter().any(|p| p.is_full())))
        };
        if wait {
            self.ctx.lingering.settled().await;
        }
    }

    /// Gives an endpoint's addresses back to their pools.
    pub(crate) fn release(st: &mut State, ep: &EndpointRecord) {
        if let Some(pools) = st.pools.get_mut(&ep.network_id) {
            for a in &ep.addresses {
                if let Some(p) = pools.iter_mut().find(|p| p.contains(a.addr())) {
                    p.release(a.addr());
                }
            }
        }
    }

    /// Has the network's driver wire `ep` into `sb`; records the host-side
    /// interface it made.
    pub(crate) async fn attach(
        &self,
        net: &NetworkRecord,
        sb: &Sandbox,
        ep: &mut EndpointRecord,
    ) -> Result<()> {
        let handle = self.driven(&self.state(), net)?.handle;
        let gateways = if ep.default_route { &ep.gateways[..] } else { &[] };
        let att = handle
            .attach(&self.ctx, &driver_view(ep, Some(sb), gateways))
            .await?;
        ep.host_ifname = att.host_ifname;
        ep.driver_state = att.state;
        // Drivers that address their interfaces themselves (CNI) say how.
        if !att.addresses.is_empty() {
            ep.addresses = att.addresses;
        }
        if !att.gateways.is_empty() {
            ep.gateways = att.gateways;
        }
        if let Some(mac) = att.mac {
            ep.mac = mac;
        }
        Ok(())
    }

    /// Has the driver undo `attach`. Idempotent.
    pub(crate) async fn detach(
        &self,
        net: &NetworkRecord,
        sb: Option<&Sandbox>,
        ep: &EndpointRecord,
    ) -> Result<()> {
        let handle = self.driven(&self.state(), net)?.handle;
        Ok(handle.detach(&self.ctx, &driver_view(ep, sb, &[])).await?)
    }

    /// Has the driver check that `ep` is still wired as it left it.
    pub(crate) async fn check(
        &self,
        net: &NetworkRecord,
        sb: Option<&Sandbox>,
        ep: &EndpointRecord,
    ) -> Result<()> {
        let handle = self.driven(&self.state(), net)?.handle;
        Ok(handle
            .check(&self.ctx, &driver_view(ep, sb, &ep.gateways))
            .await?)
    }
}

/// `--mac-address`: none when empty, else a unicast address other than
/// all zeros.
pub(super) fn parse_mac(value: &str) -> Result<Option<Mac>> {
    if value.is_empty() {
        return Ok(None);
    }
    match value.parse::<Mac>() {
        Ok(m) if !m.is_multicast() && !m.is_zero() => Ok(Some(m)),
        _ => Err(Error::BadFlag {
            flag: "--mac-address",
            value: value.to_owned(),
            accepted: "a unicast MAC address such as 02:42:ac:11:00:05",
        }),
    }
}
