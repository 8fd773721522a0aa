//! The parent link of macvlan and ipvlan networks, which both drivers
//! share: an existing interface (`-o parent=eth0`), an 802.1q
//! sub-interface berth makes when it is missing (`-o parent=eth0.10`), or,
//! with no parent, a dummy link of the network's own (`dm-<id>`), as
//! Docker does.
//!
//! The kernel keeps one ipvlan mode per parent, refuses macvlan and ipvlan
//! on one parent (EBUSY) and gives a macvlan passthru child its parent
//! alone; [`check_conflicts`] refuses such plans up front, naming the
//! network in the way.
//!
//! [`ParentNet`] is what an opened macvlan or ipvlan network is besides
//! its mode: the parent, its creation and release, and the sub-interface
//! of each endpoint, born inside the sandbox.

use rtnetlink::packet_route::link::LinkMessage;
use rtnetlink::{LinkDummy, LinkVlan};

use crate::link::{self, Link};
use crate::{
    Attachment, Claim, Context, Endpoint, Error, Feature, Features, IfName, Master, Network, NetworkHandle,
    ParentUse, Place, Result, SubLink, Vanish, async_trait,
};

/// Where a network's sub-interfaces hang.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parent {
    /// An interface that exists and is not berth's.
    Existing(IfName),
    /// An 802.1q sub-interface `BASE.ID`, made by berth when missing.
    Vlan {
        /// `eth0.10`.
        name: IfName,
        /// `eth0`.
        base: IfName,
        /// 1 to 4094.
        id: u16,
    },
    /// A dummy link of the network's own, for an internal network.
    Dummy(IfName),
}

/// The option that names the parent.
pub const OPTION: &str = "parent";

impl Parent {
    /// Reads `-o parent=` of `net`: `None` means a dummy parent.
    pub fn of(net: &Network) -> Result<Self> {
        let Some(value) = net.options.get(OPTION) else {
            return Ok(Parent::Dummy(IfName::new(&format!("dm-{}", net.short_id()))?));
        };
        let name = IfName::for_option(OPTION, value)?;
        match value.rsplit_once('.') {
            Some((base, id))
                if !base.is_empty() && !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()) =>
            {
                let id: u16 = id
                    .parse()
                    .ok()
                    .filter(|id| (1..=4094).contains(id))
                    .ok_or_else(|| Error::BadVlanId {
                        id: id.to_owned(),
                        parent: value.clone(),
                    })?;
                Ok(Parent::Vlan {
                    name,
                    base: IfName::new(base)?,
                    id,
                })
            }
            _ => Ok(Parent::Existing(name)),
        }
    }

    /// The parent's interface name.
    pub fn name(&self) -> &IfName {
        match self {
            Parent::Existing(n) | Parent::Dummy(n) => n,
            Parent::Vlan { name, .. } => name,
        }
    }

    /// Whether the kernel can make this parent.
    pub fn supported(&self, f: &Features) -> Result<()> {
        match self {
            Parent::Vlan { .. } => f.require(Feature::Vlan),
            Parent::Dummy(_) if !f.dummy => Err(Error::NoKernelSupport {
                feature: Feature::Dummy,
                needed_by: Some("a network without -o parent"),
            }),
            _ => Ok(()),
        }
    }

    /// `--subnet` is needed, the subnet of the LAN behind the parent,
    /// unless berth makes the parent (a dummy link of the network's own).
    pub fn check_subnet(&self, driver: &str, net: &Network) -> Result<()> {
        if !matches!(self, Parent::Dummy(_)) && !net.ipam.iter().any(|c| c.subnet.addr().is_ipv4()) {
            return Err(Error::NeedsSubnet {
                driver: driver.to_owned(),
                parent: self.name().to_string(),
            });
        }
        Ok(())
    }

    /// A network's creation on this parent: the kernel can make the
    /// parent, the network (using it as `me`) does not conflict with the
    /// others on it ([`check_conflicts`]), and the parent exists
    /// ([`Parent::ensure`]).
    pub async fn create(&self, ctx: &Context, net: &Network, me: &ParentUse) -> Result<()> {
        self.supported(&ctx.features)?;
        let others: Vec<ParentUse> = ctx
            .networks
            .get()
            .iter()
            .filter(|n| n.network().id != net.id)
            .filter_map(|n| n.parent())
            .collect();
        check_conflicts(me, &others)?;
        self.ensure(ctx, net).await.map(drop)
    }

    /// The parent link an attach puts a sub-interface on.
    pub async fn find(&self, ctx: &Context, net: &Network) -> Result<Link> {
        link::get(&ctx.handle, self.name().as_str())
            .await?
            .ok_or_else(|| Error::LinkMissing {
                role: "parent",
                link: self.name().to_string(),
                network: net.name.clone(),
            })
    }

    fn alias(net: &Network) -> String {
        format!("berth:{}", net.id)
    }

    /// Makes sure the parent exists and may carry sub-interfaces: creates
    /// a missing VLAN or dummy link (marked as berth's), refuses a parent
    /// that is a bridge port or itself a macvlan or ipvlan interface.
    /// Returns its index. Leaves nothing behind on error.
    pub async fn ensure(&self, ctx: &Context, net: &Network) -> Result<u32> {
        let h = &ctx.handle;
        if let Some(l) = link::get(h, self.name().as_str()).await? {
            usable(ctx, &l, self.name().as_str()).await?;
            return Ok(l.index);
        }
        let msg = match self {
            Parent::Existing(n) => {
                return Err(Error::NoSuchParent {
                    parent: n.to_string(),
                });
            }
            Parent::Vlan { name, base, id } => {
                let b = link::get(h, base.as_str())
                    .await?
                    .ok_or_else(|| Error::NoSuchVlanBase {
                        parent: name.to_string(),
                        base: base.to_string(),
                    })?;
                usable(ctx, &b, base.as_str()).await?;
                LinkVlan::new(name.as_str(), b.index, *id).up().build()
            }
            Parent::Dummy(name) => LinkDummy::new(name.as_str()).up().build(),
        };
        h.link()
            .add(msg)
            .execute()
            .await
            .map_err(|e| Error::netlink(format!("creating parent {}", self.name()), e))?;
        let l = link::get(h, self.name().as_str())
            .await?
            .ok_or_else(|| Error::Vanished {
                link: self.name().to_string(),
                when: Vanish::AfterCreate,
            })?;
        if let Err(e) = link::set_alias(h, l.index, &Self::alias(net)).await {
            let _ = link::del(h, l.index).await;
            return Err(e);
        }
        Ok(l.index)
    }

    /// Removes a parent berth made for this network, unless another network
    /// still uses it (which then inherits it). Idempotent.
    pub async fn release(&self, ctx: &Context, net: &Network) -> Result<()> {
        let h = &ctx.handle;
        let Some(l) = link::get(h, self.name().as_str()).await? else {
            return Ok(());
        };
        if l.alias.as_deref() != Some(Self::alias(net).as_str()) {
            return Ok(()); // not ours, or not made for this network
        }
        let heir = ctx
            .networks
            .sharing(&net.id, self.name().as_str())
            .first()
            .map(|n| n.network().clone());
        match heir {
            Some(n) => link::set_alias(h, l.index, &Self::alias(&n)).await,
            None => link::del(h, l.index).await,
        }
    }
}

/// Refuses parents the kernel would refuse or misuse.
async fn usable(ctx: &Context, l: &Link, name: &str) -> Result<()> {
    if let Some(kind) = l.kind.as_deref()
        && ["macvlan", "ipvlan", "macvtap", "ipvtap"].contains(&kind)
    {
        return Err(Error::ParentIsSublink {
            parent: name.to_owned(),
            kind: kind.to_owned(),
        });
    }
    if let Some(master) = l.master {
        let master = match link::list(&ctx.handle)
            .await?
            .into_iter()
            .find(|m| m.index == master)
        {
            Some(m) if m.kind.as_deref() == Some("bridge") => Master::Bridge(m.name),
            Some(m) => Master::Link(m.name),
            None => Master::Unknown,
        };
        return Err(Error::ParentIsPort {
            parent: name.to_owned(),
            master,
        });
    }
    Ok(())
}

/// Refuses a network whose parent another network uses in a way the kernel
/// cannot combine with it.
pub fn check_conflicts(this: &ParentUse, others: &[ParentUse]) -> Result<()> {
    for o in others
        .iter()
        .filter(|o| o.parent == this.parent && o.network != this.network)
    {
        if o.kind != this.kind {
            return Err(Error::ParentShared {
                parent: this.parent.clone(),
                kind: o.kind,
                network: o.network.clone(),
            });
        }
        if this.kind == SubLink::Ipvlan && o.mode != this.mode {
            return Err(Error::IpvlanModeTaken {
                parent: this.parent.clone(),
                network: o.network.clone(),
                mode: o.mode.clone(),
            });
        }
        if this.kind == SubLink::Macvlan && (this.mode == "passthru" || o.mode == "passthru") {
            return Err(Error::PassthruShared {
                parent: this.parent.clone(),
                network: o.network.clone(),
            });
        }
    }
    Ok(())
}

/// What a network hangs on its parent, beyond the parent itself: how an
/// endpoint's sub-interface is made (macvlan in its mode; ipvlan in its
/// mode, with its flag).
pub trait SubLinks: Send + Sync + 'static {
    /// The message that makes `ep`'s sub-interface on the parent whose
    /// index is `parent`.
    fn build(&self, ep: &Endpoint<'_>, parent: u32) -> LinkMessage;

    /// Every destination is on-link: the parent routes (ipvlan l3, l3s),
    /// so the default route goes through the device itself.
    fn on_link(&self) -> bool {
        false
    }
}

/// An opened macvlan or ipvlan network: the parent link, how the network
/// uses it, and `K`, what its sub-interfaces are. It is the network's
/// handle: both drivers' networks are made, wired and removed here.
#[derive(Clone, Debug)]
pub struct ParentNet<K> {
    net: Network,
    parent: Parent,
    usage: ParentUse,
    links: K,
}

impl<K: SubLinks> ParentNet<K> {
    /// Reads `-o parent=` of `net`, a network of `kind` sub-interfaces in
    /// `mode` made as `links` says, and checks that it has the subnet of
    /// the parent's LAN ([`Parent::check_subnet`]).
    pub fn open(net: &Network, kind: SubLink, mode: &str, links: K) -> Result<Self> {
        let parent = Parent::of(net)?;
        parent.check_subnet(kind.as_str(), net)?;
        let usage = ParentUse {
            network: net.name.clone(),
            kind,
            parent: parent.name().to_string(),
            mode: mode.to_owned(),
        };
        Ok(Self {
            net: net.clone(),
            parent,
            usage,
            links,
        })
    }

    /// The parent link.
    pub fn parent_link(&self) -> &Parent {
        &self.parent
    }

    /// What its sub-interfaces are.
    pub fn links(&self) -> &K {
        &self.links
    }
}

#[async_trait]
impl<K: SubLinks> NetworkHandle for ParentNet<K> {
    fn network(&self) -> &Network {
        &self.net
    }

    /// Without `-o parent=` the network gets a dummy link of its own and
    /// has no way out.
    fn forces_internal(&self) -> bool {
        matches!(self.parent, Parent::Dummy(_))
    }

    fn parent(&self) -> Option<ParentUse> {
        Some(self.usage.clone())
    }

    fn shared_links(&self) -> Vec<String> {
        vec![self.parent.name().to_string()]
    }

    /// Makes the parent if berth makes it; refuses conflicting uses.
    async fn create(&self, ctx: &Context) -> Result<()> {
        self.parent.create(ctx, &self.net, &self.usage).await
    }

    /// Lets go of the parent (see [`Parent::release`]).
    async fn delete(&self, ctx: &Context) -> Result<()> {
        self.parent.release(ctx, &self.net).await
    }

    /// Makes the endpoint's sub-interface inside the sandbox with its
    /// final name, and gives it its addresses and routes: through the
    /// gateways, or, [`on_link`](SubLinks::on_link), a default route
    /// through the device itself for each family it has an address of.
    /// Leaves nothing behind on error.
    async fn attach(&self, ctx: &Context, ep: &Endpoint<'_>) -> Result<Attachment> {
        let sandbox = ep.sandbox.ok_or(Error::NoSandbox { driver: None })?;
        let parent = self.parent.find(ctx, &self.net).await?;
        link::add_sublink_into(
            &ctx.handle,
            self.links.build(ep, parent.index),
            &sandbox.ns,
            &format!("{} {} on {}", self.usage.kind.as_str(), ep.ifname, parent.name),
        )
        .await?;
        let configured = async {
            if !self.links.on_link() {
                return link::configure(&sandbox.handle, ep.ifname, ep.addresses, ep.gateways).await;
            }
            link::configure(&sandbox.handle, ep.ifname, ep.addresses, &[]).await?;
            if !ep.gateways.is_empty() {
                let index = link::get(&sandbox.handle, ep.ifname.as_str())
                    .await?
                    .ok_or_else(|| Error::Vanished {
                        link: ep.ifname.to_string(),
                        when: Vanish::Meanwhile,
                    })?
                    .index;
                for v6 in [false, true] {
                    if ep.addresses.iter().any(|a| a.addr().is_ipv6() == v6) {
                        link::add_default_route_dev(&sandbox.handle, index, v6).await?;
                    }
                }
            }
            Ok(())
        };
        if let Err(e) = configured.await {
            let _ = link::del_by_name(&sandbox.handle, ep.ifname.as_str()).await;
            return Err(e);
        }
        Ok(Attachment::default())
    }

    /// An endpoint whose sub-interface is gone (its parent was deleted and
    /// made again) is attached again; one that is there is brought up.
    async fn repair(&self, ctx: &Context, ep: &Endpoint<'_>) -> Result<()> {
        let sandbox = ep.sandbox.ok_or(Error::NoSandbox { driver: None })?;
        match link::get(&sandbox.handle, ep.ifname.as_str()).await? {
            Some(l) if l.up => Ok(()),
            Some(l) => link::set_up(&sandbox.handle, l.index).await,
            None => self.attach(ctx, ep).await.map(drop),
        }
    }

    /// Deletes the endpoint's sub-interface; with the sandbox gone it went
    /// with it.
    /// Answers once the interface can no longer be seen in the sandbox;
    /// the kernel's slow part of the deletion goes on after, in
    /// `ctx.lingering` (its address is given out again only once it is
    /// done).
    async fn detach(&self, ctx: &Context, ep: &Endpoint<'_>) -> Result<()> {
        match ep.sandbox {
            Some(sb) => link::del_by_name_early(&sb.handle, &sb.ns, &ctx.lingering, ep.ifname.as_str()).await,
            None => Ok(()),
        }
    }
}

/// What a macvlan or ipvlan driver made: in the host, the VLAN and dummy
/// parents it marked as made for a network; in a sandbox, its `kind`
/// sub-interfaces.
pub fn claim(kind: SubLink, place: Place, links: &[Link]) -> Vec<(u32, Claim)> {
    links
        .iter()
        .filter_map(|l| {
            let claim = match place {
                Place::Host => {
                    if !matches!(l.kind.as_deref(), Some("vlan" | "dummy")) {
                        return None;
                    }
                    Claim::Network(l.alias.as_deref()?.strip_prefix("berth:")?.to_owned())
                }
                Place::Sandbox if l.kind.as_deref() == Some(kind.as_str()) => Claim::Interface,
                Place::Sandbox => return None,
            };
            Some((l.index, claim))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Sub-interfaces that are never made: these tests only plan.
    struct Nothing;

    impl SubLinks for Nothing {
        fn build(&self, _: &Endpoint<'_>, _: u32) -> LinkMessage {
            unreachable!("the tests make no link")
        }
    }

    fn net(name: &str, driver: &str, opts: &[(&str, &str)]) -> Network {
        Network::with_options(&format!("{name:0<64}"), name, driver, opts)
    }

    #[test]
    fn parents_parse() {
        assert_eq!(
            Parent::of(&net("a", "macvlan", &[("parent", "eth0")])).unwrap(),
            Parent::Existing(IfName::new("eth0").unwrap())
        );
        assert_eq!(
            Parent::of(&net("a", "macvlan", &[("parent", "eth0.10")])).unwrap(),
            Parent::Vlan {
                name: IfName::new("eth0.10").unwrap(),
                base: IfName::new("eth0").unwrap(),
                id: 10
            }
        );
        assert_eq!(
            Parent::of(&net("abc", "macvlan", &[])).unwrap().name().as_str(),
            "dm-abc000000000"
        );
        for bad in ["eth0.0", "eth0.4095", "eth0.99999"] {
            let e = Parent::of(&net("a", "macvlan", &[("parent", bad)]))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("invalid VLAN ID") && e.contains("accepted: 1-4094"),
                "{bad}: {e}"
            );
        }
        let e = Parent::of(&net("a", "macvlan", &[("parent", "much-too-long-name0")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("option parent"), "{e}");
    }

    #[test]
    fn conflicts_are_named() {
        let u = |n: &str, d: &str, o: &[(&str, &str)]| {
            let (kind, key, default) = match d {
                "macvlan" => (SubLink::Macvlan, "macvlan_mode", "bridge"),
                _ => (SubLink::Ipvlan, "ipvlan_mode", "l2"),
            };
            let mut net = net(n, d, o);
            net.ipam.push(crate::IpamConfig {
                subnet: "10.1.0.0/24".parse().unwrap(),
                gateway: None,
                ip_range: None,
                aux_addresses: BTreeMap::new(),
            });
            let mode = net.options.get(key).cloned().unwrap_or_else(|| default.into());
            ParentNet::open(&net, kind, &mode, Nothing)
                .unwrap()
                .parent()
                .unwrap()
        };
        let mv = u("m1", "macvlan", &[("parent", "eth0")]);
        let iv = u("i1", "ipvlan", &[("parent", "eth0")]);
        let e = check_conflicts(&iv, std::slice::from_ref(&mv))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("macvlan and ipvlan cannot share a parent") && e.contains("m1"),
            "{e}"
        );
        let l3 = u("i2", "ipvlan", &[("parent", "eth0"), ("ipvlan_mode", "l3")]);
        let e = check_conflicts(&l3, std::slice::from_ref(&iv))
            .unwrap_err()
            .to_string();
        assert!(e.contains("in mode l2") && e.contains("one ipvlan mode"), "{e}");
        assert!(
            check_conflicts(
                &u("i3", "ipvlan", &[("parent", "eth0")]),
                std::slice::from_ref(&iv)
            )
            .is_ok()
        );
        let pt = u(
            "m2",
            "macvlan",
            &[("parent", "eth0"), ("macvlan_mode", "passthru")],
        );
        let e = check_conflicts(&pt, std::slice::from_ref(&mv))
            .unwrap_err()
            .to_string();
        assert!(e.contains("passthru needs its parent alone"), "{e}");
        assert!(check_conflicts(&u("m3", "macvlan", &[("parent", "eth1")]), &[mv, iv]).is_ok());
    }
}
