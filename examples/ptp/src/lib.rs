//! `ptp`: a point-to-point network mode, as a berth shared-library plugin
//! (like CNI's `ptp` plugin), and the template for third-party drivers.
//!
//! Each container gets a veth pair and no bridge: the peer is born inside
//! the sandbox as `eth0` with the container's address as a `/32`, a
//! link-scoped route to the network's gateway address, the network's
//! subnet and (when this network carries it) the default route via that
//! gateway. The host end, `ptp` and 11 hex digits of the endpoint id, holds
//! the gateway address (as a `/32` on every host end, like CNI's ptp) and a
//! route to the container's `/32`. So two containers of a network reach
//! each other through the host by routing:
//!
//! ```text
//! a (10.1.0.2/32) --veth-- host: ptpA 10.1.0.1/32, 10.1.0.2 dev ptpA
//!                                ptpB 10.1.0.1/32, 10.1.0.3 dev ptpB --veth-- b (10.1.0.3/32)
//! ```
//!
//! A table of its own, `ip berth_ptp`, keeps networks apart: forwarded
//! traffic between two ptp host ends passes only when source and
//! destination are in one network's subnet (a set of `subnet . subnet`
//! elements), nothing from outside comes in unless it is a reply or
//! DNAT'ed, `--internal` networks send nothing out, and other networks are
//! masqueraded on their way out. The table exists while there is a ptp
//! network; its rules are fixed and networks are set elements.
//!
//! IPv4 only. Options: `mtu`. Everything a driver needs comes from
//! `berth-core`; [`berth_core::export_driver!`] turns it into a plugin.
#![deny(missing_docs)]

use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use berth_core::ipnet::{IpNet, Ipv4Net};
use berth_core::rtnetlink::packet_route::route::RouteScope;
use berth_core::rtnetlink::{Handle, RouteMessageBuilder};
use berth_core::{
    Attachment, Capabilities, Context, Endpoint, Error, Kind, Network, NetworkDriver, NetworkHandle, Result,
    Vanish, async_trait, check_options, link, netlink_io,
};

berth_core::export_driver!(Ptp);

/// The options `-o` accepts.
pub const OPTIONS: &[&str] = &["mtu"];

/// The nftables table that keeps ptp networks apart.
const TABLE: &str = "berth_ptp";

/// The table's fixed part; see the crate docs. `ptp*` matches every host
/// end of every ptp network.
const SKELETON: &str = r#"table ip berth_ptp {
	comment "managed by berth's ptp plugin: changes are overwritten"
	set same { type ipv4_addr . ipv4_addr; flags interval; }
	set internal { type ipv4_addr; flags interval; }
	set masq { type ipv4_addr; flags interval; }
	chain forward {
		type filter hook forward priority filter; policy accept;
		ct state established,related accept
		iifname "ptp*" oifname "ptp*" ip saddr . ip daddr @same accept
		iifname "ptp*" ip saddr @internal drop
		oifname "ptp*" ct status dnat accept
		oifname "ptp*" drop
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "ptp*" return
		ip saddr @masq masquerade
	}
}
"#;

/// One writer of the table at a time (the engine may create two networks
/// at once).
static NFT: Mutex<()> = Mutex::new(());

/// The `ptp` network mode.
#[derive(Debug, Default)]
pub struct Ptp;

/// A network's settings, from its options and address plan.
#[derive(Debug, PartialEq)]
struct Config {
    mtu: Option<u32>,
}

impl Config {
    /// Checks the options and the address plan as the engine has it before
    /// its IPAM ran (subnets may still be missing).
    fn parse(net: &Network) -> Result<Self> {
        check_options("ptp", &net.options, OPTIONS)?;
        if net.ipv6 {
            return Err(Error::plugin(
                Kind::Invalid,
                "driver ptp routes IPv4 only: --ipv6 is not accepted",
            ));
        }
        if net.ipam.iter().filter(|c| c.subnet.addr().is_ipv4()).count() > 1 {
            return Err(Error::plugin(Kind::Invalid, "driver ptp takes one IPv4 subnet"));
        }
        let mtu = match net.options.get("mtu") {
            None => None,
            Some(v) => Some(
                v.parse::<u32>()
                    .ok()
                    .filter(|m| (68..=65535).contains(m))
                    .ok_or_else(|| Error::BadOptionValue {
                        key: "mtu".into(),
                        value: v.clone(),
                        accepted: "68 to 65535",
                    })?,
            ),
        };
        Ok(Self { mtu })
    }
}

/// The network's subnet and gateway, which every host end carries.
fn plan(net: &Network) -> Result<(Ipv4Net, Ipv4Addr)> {
    net.ipam
        .iter()
        .find_map(|c| match (c.subnet, c.gateway) {
            (IpNet::V4(s), Some(IpAddr::V4(g))) => Some((s.trunc(), g)),
            _ => None,
        })
        .ok_or_else(|| {
            Error::plugin(
                Kind::Invalid,
                format!("network {} has no IPv4 subnet with a gateway", net.name),
            )
        })
}

/// The host end of an endpoint's veth: `ptp` and 11 hex digits of its id.
pub fn host_ifname(endpoint_id: &str) -> String {
    format!("ptp{}", &endpoint_id[..endpoint_id.len().min(11)])
}

/// Runs `nft` with `args` (and `script` on stdin) in the host's namespace;
/// returns whether it succeeded and what it printed.
fn nft(ctx: &Context, args: &[&str], script: &str) -> Result<(bool, String)> {
    let out = ctx.host.run(|| {
        let mut child = Command::new("nft")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            std::io::Write::write_all(&mut stdin, script.as_bytes())?;
        }
        child.wait_with_output()
    })?;
    let text = if out.status.success() {
        out.stdout
    } else {
        out.stderr
    };
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&text).trim().to_owned(),
    ))
}

/// The table's elements for a network: `(set, element)` pairs.
fn elements(net: &Network, subnet: Ipv4Net) -> Vec<(&'static str, String)> {
    let mut v = vec![("same", format!("{subnet} . {subnet}"))];
    v.push(if net.internal {
        ("internal", subnet.to_string())
    } else {
        ("masq", subnet.to_string())
    });
    v
}

/// Like `ip route add DST [via GW] dev INDEX [scope link]`; a route that
/// is already there is success.
async fn add_route(h: &Handle, dst: Ipv4Net, via: Option<Ipv4Addr>, index: u32) -> Result<()> {
    let mut msg = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(dst.addr(), dst.prefix_len())
        .output_interface(index);
    msg = match via {
        Some(gw) => msg.gateway(gw),
        None => msg.scope(RouteScope::Link),
    };
    match h.route().add(msg.build()).execute().await {
        Ok(()) => Ok(()),
        Err(e) => match netlink_io(e) {
            io if io.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            io => Err(Error::Netlink {
                what: format!("adding route to {dst}"),
                source: io,
            }),
        },
    }
}

async fn index(h: &Handle, name: &str) -> Result<u32> {
    link::get(h, name)
        .await?
        .map(|l| l.index)
        .ok_or_else(|| Error::Vanished {
            link: name.to_owned(),
            when: Vanish::Meanwhile,
        })
}

#[async_trait]
impl NetworkDriver for Ptp {
    fn name(&self) -> &str {
        "ptp"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            options: OPTIONS,
            ..Capabilities::own_sandbox()
        }
    }

    /// Checks the options once; the engine keeps the network opened.
    async fn open(&self, net: &Network) -> Result<Arc<dyn NetworkHandle>> {
        Ok(Arc::new(PtpNet {
            cfg: Config::parse(net)?,
            // Before the engine's IPAM ran, the subnet may still be missing.
            plan: plan(net),
            net: net.clone(),
        }))
    }
}

/// A ptp network, opened: its settings and address plan.
struct PtpNet {
    net: Network,
    cfg: Config,
    plan: Result<(Ipv4Net, Ipv4Addr)>,
}

impl PtpNet {
    /// The network's subnet and gateway.
    fn plan(&self) -> Result<(Ipv4Net, Ipv4Addr)> {
        match &self.plan {
            Ok(p) => Ok(*p),
            Err(_) => plan(&self.net),
        }
    }
}

#[async_trait]
impl NetworkHandle for PtpNet {
    fn network(&self) -> &Network {
        &self.net
    }

    async fn create(&self, ctx: &Context) -> Result<()> {
        let net = &self.net;
        let (subnet, _) = self.plan()?;
        ctx.host.sysctl("net/ipv4/ip_forward", "1")?;
        let _one = NFT.lock().unwrap_or_else(|p| p.into_inner());
        if !nft(ctx, &["list", "table", "ip", TABLE], "")?.0 {
            let (ok, err) = nft(ctx, &["-f", "-"], SKELETON)?;
            if !ok {
                return Err(Error::plugin(
                    Kind::Internal,
                    format!("nft refused the ptp table: {err}"),
                ));
            }
        }
        let script: String = elements(net, subnet)
            .iter()
            .map(|(set, e)| format!("add element ip {TABLE} {set} {{ {e} }}\n"))
            .collect();
        match nft(ctx, &["-f", "-"], &script)? {
            (true, _) => Ok(()),
            (false, err) => Err(Error::plugin(
                Kind::Internal,
                format!("nft refused the elements of network {}: {err}", net.name),
            )),
        }
    }

    async fn delete(&self, ctx: &Context) -> Result<()> {
        let Ok((subnet, _)) = self.plan() else {
            return Ok(());
        };
        let _one = NFT.lock().unwrap_or_else(|p| p.into_inner());
        if !nft(ctx, &["list", "table", "ip", TABLE], "")?.0 {
            return Ok(()); // already gone
        }
        for (set, e) in elements(&self.net, subnet) {
            // One at a time: an element that is already gone fails alone.
            let (ok, err) = nft(
                ctx,
                &["-f", "-"],
                &format!("delete element ip {TABLE} {set} {{ {e} }}\n"),
            )?;
            if !ok && !err.contains("No such file or directory") {
                return Err(Error::plugin(
                    Kind::Internal,
                    format!("nft: removing {e} from {set}: {err}"),
                ));
            }
        }
        // The last network takes the table with it.
        let (ok, set) = nft(ctx, &["list", "set", "ip", TABLE, "same"], "")?;
        if ok && !set.contains("elements") {
            nft(ctx, &["delete", "table", "ip", TABLE], "")?;
        }
        Ok(())
    }

    async fn attach(&self, ctx: &Context, ep: &Endpoint<'_>) -> Result<Attachment> {
        let (subnet, gateway) = self.plan()?;
        let sandbox = ep.sandbox.ok_or(Error::NoSandbox { driver: None })?;
        let addr = ep
            .addresses
            .iter()
            .find_map(|a| match a.addr() {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            })
            .ok_or_else(|| {
                Error::plugin(Kind::Invalid, "driver ptp needs an IPv4 address for the endpoint")
            })?;
        let host_if = host_ifname(ep.id);
        link::add_veth_into(
            &ctx.handle,
            &host_if,
            self.cfg.mtu,
            &sandbox.ns,
            ep.ifname,
            ep.mac,
        )
        .await?;
        let rest = async {
            // The sandbox side: up (without IPv6 addresses), the /32, the
            // gateway on-link, the subnet and the default route via it.
            let h = &sandbox.handle;
            link::configure(h, ep.ifname, &[], &[]).await?;
            let inside = index(h, ep.ifname.as_str()).await?;
            link::add_address(h, inside, IpNet::V4(Ipv4Net::from(addr))).await?;
            add_route(h, Ipv4Net::from(gateway), None, inside).await?;
            add_route(h, subnet, Some(gateway), inside).await?;
            for gw in ep.gateways.iter().filter(|g| g.is_ipv4()) {
                link::add_default_route(h, *gw).await?;
            }
            // The host side: up, the gateway address, the route back.
            link::attach_port(&ctx.handle, &host_if, None).await?;
            let outside = index(&ctx.handle, &host_if).await?;
            link::add_address(&ctx.handle, outside, IpNet::V4(Ipv4Net::from(gateway))).await?;
            add_route(&ctx.handle, Ipv4Net::from(addr), None, outside).await
        };
        if let Err(e) = rest.await {
            let _ = link::del_by_name(&ctx.handle, &host_if).await;
            return Err(e);
        }
        Ok(Attachment {
            host_ifname: Some(host_if),
            ..Default::default()
        })
    }

    async fn detach(&self, ctx: &Context, ep: &Endpoint<'_>) -> Result<()> {
        // Deleting the host end deletes its peer, its address and routes.
        link::del_by_name(&ctx.handle, &host_ifname(ep.id)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(opts: &[(&str, &str)], ipv6: bool) -> Network {
        Network {
            id: "ab".repeat(32),
            name: "p".into(),
            driver: "ptp".into(),
            options: opts.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
            ipam: vec![berth_core::IpamConfig {
                subnet: "10.1.0.0/24".parse().unwrap(),
                gateway: Some("10.1.0.1".parse().unwrap()),
                ip_range: None,
                aux_addresses: Default::default(),
            }],
            ipv6,
            internal: false,
        }
    }

    #[test]
    fn options_are_checked_and_name_what_is_accepted() {
        assert_eq!(
            Config::parse(&net(&[("mtu", "1400")], false)).unwrap(),
            Config { mtu: Some(1400) }
        );
        let e = Config::parse(&net(&[("bogus.option", "1")], false))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus.option") && e.contains("accepted: mtu"), "{e}");
        let e = Config::parse(&net(&[("mtu", "9")], false))
            .unwrap_err()
            .to_string();
        assert!(e.contains("68 to 65535"), "{e}");
        assert!(
            Config::parse(&net(&[], true))
                .unwrap_err()
                .to_string()
                .contains("IPv4 only")
        );
    }

    #[test]
    fn networks_become_set_elements() {
        let n = net(&[], false);
        let (subnet, gw) = plan(&n).unwrap();
        assert_eq!(gw, Ipv4Addr::new(10, 1, 0, 1));
        assert_eq!(
            elements(&n, subnet),
            [
                ("same", "10.1.0.0/24 . 10.1.0.0/24".to_owned()),
                ("masq", "10.1.0.0/24".to_owned())
            ]
        );
        assert_eq!(host_ifname(&"ab".repeat(32)), "ptpabababababa");
    }
}
