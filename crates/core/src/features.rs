use std::fmt;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{IpVlanMode, MacVlanMode};
use rtnetlink::{LinkDummy, LinkIpVlan, LinkMacVlan, LinkVeth, LinkVlan, LinkVxlan};

use crate::netns::Netns;
use crate::{Result, is_errno};

/// The link kinds the running kernel has, found by creating one of each in
/// a throwaway namespace when the engine starts (which also loads their
/// modules where the kernel can).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// `macvlan` (CONFIG_MACVLAN).
    pub macvlan: bool,
    /// `ipvlan` (CONFIG_IPVLAN).
    pub ipvlan: bool,
    /// 802.1q `vlan` sub-interfaces (CONFIG_VLAN_8021Q).
    pub vlan: bool,
    /// `dummy` links (CONFIG_DUMMY).
    pub dummy: bool,
    /// `vxlan` (CONFIG_VXLAN).
    pub vxlan: bool,
}

impl fmt::Display for Features {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut has: Vec<&str> = Vec::new();
        for (on, name) in [
            (self.macvlan, "macvlan"),
            (self.ipvlan, "ipvlan"),
            (self.vlan, "802.1q"),
            (self.dummy, "dummy"),
            (self.vxlan, "vxlan"),
        ] {
            if on {
                has.push(name);
            }
        }
        f.write_str(&has.join(", "))
    }
}

/// One link kind a kernel may lack, as [`Error::NoKernelSupport`]
/// names it.
///
/// [`Error::NoKernelSupport`]: crate::Error::NoKernelSupport
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Feature {
    /// `macvlan` (CONFIG_MACVLAN).
    Macvlan,
    /// `ipvlan` (CONFIG_IPVLAN).
    Ipvlan,
    /// 802.1q `vlan` sub-interfaces (CONFIG_VLAN_8021Q).
    Vlan,
    /// `dummy` links (CONFIG_DUMMY).
    Dummy,
    /// `vxlan` (CONFIG_VXLAN).
    Vxlan,
}

impl Feature {
    /// The kernel option that builds it in.
    pub fn config(self) -> &'static str {
        match self {
            Feature::Macvlan => "CONFIG_MACVLAN",
            Feature::Ipvlan => "CONFIG_IPVLAN",
            Feature::Vlan => "CONFIG_VLAN_8021Q",
            Feature::Dummy => "CONFIG_DUMMY",
            Feature::Vxlan => "CONFIG_VXLAN",
        }
    }
}

impl fmt::Display for Feature {
    /// As "this kernel has no … support" names it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Feature::Macvlan => "macvlan",
            Feature::Ipvlan => "ipvlan",
            Feature::Vlan => "802.1q VLAN",
            Feature::Dummy => "dummy link",
            Feature::Vxlan => "vxlan",
        })
    }
}

impl Features {
    /// Whether the kernel has `feature`.
    pub fn has(&self, feature: Feature) -> bool {
        match feature {
            Feature::Macvlan => self.macvlan,
            Feature::Ipvlan => self.ipvlan,
            Feature::Vlan => self.vlan,
            Feature::Dummy => self.dummy,
            Feature::Vxlan => self.vxlan,
        }
    }

    /// `Ok` when the kernel has `feature`, else the
    /// [`Error::NoKernelSupport`](crate::Error::NoKernelSupport) naming it.
    pub fn require(&self, feature: Feature) -> Result<()> {
        if self.has(feature) {
            Ok(())
        } else {
            Err(crate::Error::NoKernelSupport {
                feature,
                needed_by: None,
            })
        }
    }

    /// Every feature on (for tests of drivers that do not depend on them).
    pub fn all() -> Self {
        Self {
            macvlan: true,
            ipvlan: true,
            vlan: true,
            dummy: true,
            vxlan: true,
        }
    }

    /// Probes the running kernel. Must run inside a tokio runtime.
    pub async fn probe() -> Result<Self> {
        let ns = Netns::run_in_new(|| Ok(()))?;
        let h = ns.connect()?;
        // A veth pair as the parent of the sub-interfaces.
        h.link()
            .add(LinkVeth::new("probe0", "probe1").build())
            .execute()
            .await
            .map_err(|e| crate::Error::netlink("probing the kernel: creating a veth pair", e))?;
        let parent = h
            .link()
            .get()
            .match_name("probe0".to_owned())
            .execute()
            .try_next()
            .await
            .ok()
            .flatten()
            .map(|m| m.header.index)
            .unwrap_or(0);
        let works = |r: std::result::Result<(), rtnetlink::Error>| match r {
            Ok(()) => true,
            // The kernel does not know the kind: no such support.
            Err(e) => !is_errno(&e, libc::EOPNOTSUPP),
        };
        let macvlan = works(
            h.link()
                .add(LinkMacVlan::new("pmv", parent, MacVlanMode::Bridge).build())
                .execute()
                .await,
        );
        let _ = h
            .link()
            .del_with_message(rtnetlink::LinkUnspec::new_with_name("pmv").build())
            .execute()
            .await;
        let ipvlan = works(
            h.link()
                .add(LinkIpVlan::new("piv", parent, IpVlanMode::L2).build())
                .execute()
                .await,
        );
        let vlan = works(
            h.link()
                .add(LinkVlan::new("pvl", parent, 10).build())
                .execute()
                .await,
        );
        let dummy = works(h.link().add(LinkDummy::new("pdm").build()).execute().await);
        let vxlan = works(
            h.link()
                .add(LinkVxlan::new("pvx", 42).port(4789).build())
                .execute()
                .await,
        );
        // Dropping the namespace's last fd and handle frees it and every link in it.
        Ok(Self {
            macvlan,
            ipvlan,
            vlan,
            dummy,
            vxlan,
        })
    }
}
