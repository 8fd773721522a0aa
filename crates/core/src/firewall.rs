//! The `inet berth` nftables table.
//!
//! Its rules are fixed; everything that varies per network lives in sets,
//! so creating a network or attaching a container changes elements, never
//! rules. The skeleton (with the current elements) is loaded atomically
//! with `nft -f -` when the daemon starts; after that every change is a
//! netlink batch of element additions or deletions (microseconds).
//!
//! | set | type | holds |
//! |---|---|---|
//! | `bridges` | ifname | every berth bridge |
//! | `internal` | ifname | bridges of `--internal` networks |
//! | `icc` | ifname . ifname | `(br, br)` for networks whose containers may talk to each other |
//! | `masq4`, `masq6` | interval | subnets whose outbound traffic is masqueraded |

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use ipnet::IpNet;

use crate::netns::Netns;
use crate::nft::{self, Batch, Element, Family};
use crate::{Error, IfName, Result};

/// The table's name, in family `inet`.
pub const TABLE: &str = "berth";

/// The fixed part of the table. Ordering matters: established flows pass
/// first; same-network traffic (seen here because br_netfilter hands
/// bridged packets to the inet hooks) passes only for icc networks;
/// anything else between two berth bridges is dropped (isolation); internal
/// networks neither send nor receive routed traffic; containers may go out;
/// only DNAT'ed (published) flows come in.
const SKELETON: &str = r#"table inet berth {
	comment "managed by berth: changes are overwritten"
	set bridges { type ifname; }
	set internal { type ifname; }
	set icc { type ifname . ifname; }
	set masq4 { type ipv4_addr; flags interval; }
	set masq6 { type ipv6_addr; flags interval; }
	chain forward {
		type filter hook forward priority filter; policy accept;
		ct state established,related accept
		iifname . oifname @icc accept
		iifname @bridges oifname @bridges drop
		iifname @internal drop
		oifname @internal drop
		iifname @bridges accept
		oifname @bridges ct status dnat accept
		oifname @bridges drop
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname @bridges return
		ip saddr @masq4 masquerade
		ip6 saddr @masq6 masquerade
	}
}
"#;

/// What the firewall knows of one bridge network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FwNetwork {
    /// The bridge.
    pub bridge: IfName,
    /// Subnets to masquerade when leaving the host (empty: none).
    pub masquerade: Vec<IpNet>,
    /// `--internal`: no traffic in or out.
    pub internal: bool,
    /// Containers on this network may reach each other.
    pub icc: bool,
}

impl FwNetwork {
    fn elements(&self) -> Vec<(&'static str, Vec<Element>)> {
        let br = nft::key::ifname(self.bridge.as_str());
        let mut sets = vec![("bridges", vec![Element::new(br.clone())])];
        if self.internal {
            sets.push(("internal", vec![Element::new(br.clone())]));
        }
        if self.icc {
            sets.push(("icc", vec![Element::new(nft::key::concat(&[&br, &br]))]));
        }
        for (set, v6) in [("masq4", false), ("masq6", true)] {
            let elems: Vec<Element> = self
                .masquerade
                .iter()
                .filter(|n| n.addr().is_ipv6() == v6)
                .flat_map(|n| nft::prefix_elements(n.trunc()))
                .collect();
            if !elems.is_empty() {
                sets.push((set, elems));
            }
        }
        sets
    }

    fn text(&self, out: &mut Elements) {
        let br = format!("\"{}\"", self.bridge);
        out.bridges.push(br.clone());
        if self.internal {
            out.internal.push(br.clone());
        }
        if self.icc {
            out.icc.push(format!("{br} . {br}"));
        }
        for n in &self.masquerade {
            if n.addr().is_ipv6() {
                out.masq6.push(n.trunc().to_string());
            } else {
                out.masq4.push(n.trunc().to_string());
            }
        }
    }
}

#[derive(Default)]
struct Elements {
    bridges: Vec<String>,
    internal: Vec<String>,
    icc: Vec<String>,
    masq4: Vec<String>,
    masq6: Vec<String>,
}

/// The `inet berth` table in the host namespace.
pub struct Firewall {
    host: Arc<Netns>,
    socket: nft::Socket,
    /// While the daemon restores its state, networks are collected here and
    /// installed in one transaction with the skeleton.
    staged: Mutex<Option<Vec<FwNetwork>>>,
}

impl Firewall {
    /// Opens an nfnetlink socket in `host`. Checks nothing else yet.
    pub fn new(host: Arc<Netns>) -> Result<Self> {
        let socket = host.run(nft::Socket::open)?;
        Ok(Self {
            host,
            socket,
            staged: Mutex::new(None),
        })
    }

    /// Starts collecting networks instead of writing them, until
    /// [`Firewall::install`].
    pub fn stage(&self) {
        *self.staged.lock().unwrap_or_else(|p| p.into_inner()) = Some(Vec::new());
    }

    /// Replaces the table, atomically, with the skeleton plus the elements
    /// of every network staged since [`Firewall::stage`]. Other tables are
    /// not touched.
    pub fn install(&self) -> Result<()> {
        let staged = self
            .staged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_default();
        let mut elems = Elements::default();
        for n in &staged {
            n.text(&mut elems);
        }
        let mut script = String::from("table inet berth {}\ndelete table inet berth\n");
        script.push_str(SKELETON);
        for (set, items) in [
            ("bridges", &elems.bridges),
            ("internal", &elems.internal),
            ("icc", &elems.icc),
            ("masq4", &elems.masq4),
            ("masq6", &elems.masq6),
        ] {
            if !items.is_empty() {
                script.push_str(&format!(
                    "add element inet berth {set} {{ {} }}\n",
                    items.join(", ")
                ));
            }
        }
        self.nft(&script)
    }

    /// Removes the whole table (used when the last berth daemon of a test
    /// host goes away for good). Idempotent.
    pub fn remove(&self) -> Result<()> {
        self.nft("table inet berth {}\ndelete table inet berth\n")
    }

    fn nft(&self, script: &str) -> Result<()> {
        let out = self.host.run(|| {
            let mut child = Command::new("nft")
                .args(["-f", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()?;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(script.as_bytes())?;
            }
            child.wait_with_output()
        });
        let out = match out {
            Ok(out) => out,
            Err(Error::Kernel(_, e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Unsupported(
                    "the nft program is missing: install the nftables package".into(),
                ));
            }
            Err(e) => return Err(e),
        };
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::Internal(format!(
                "nft -f refused berth's table: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    /// Adds a network's elements in one netlink batch (or stages them).
    pub fn add_network(&self, net: &FwNetwork) -> Result<()> {
        if let Some(staged) = self.staged.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            staged.retain(|n| n.bridge != net.bridge);
            staged.push(net.clone());
            return Ok(());
        }
        let mut batch = Batch::new();
        for (set, elems) in net.elements() {
            batch.add(Family::Inet, TABLE, set, elems);
        }
        self.socket.apply(&batch).map_err(|e| {
            Error::kernel(
                format!("adding firewall elements for bridge {}", net.bridge),
                e.into(),
            )
        })
    }

    /// Removes a network's elements. Idempotent: missing elements are fine.
    pub fn remove_network(&self, net: &FwNetwork) -> Result<()> {
        if let Some(staged) = self.staged.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            staged.retain(|n| n.bridge != net.bridge);
            return Ok(());
        }
        let mut batch = Batch::new();
        for (set, elems) in net.elements() {
            batch.delete(Family::Inet, TABLE, set, elems);
        }
        self.socket.apply_idempotent(&batch).map_err(|e| {
            Error::kernel(
                format!("removing firewall elements for bridge {}", net.bridge),
                e.into(),
            )
        })
    }
}
