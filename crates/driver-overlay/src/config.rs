use berth_core::{Error, Network, Result, check_options, option_pair, parse_mtu};

/// Every option the overlay driver accepts: berth's names and Docker's.
pub const OPTIONS: &[&str] = &[
    "vxlan.id",
    "com.docker.network.driver.overlay.vxlanid_list",
    "mtu",
    "com.docker.network.driver.mtu",
];

/// VNIs a network may be given (`-o vxlan.id=`): 24 bits, without 0.
pub const VNI_RANGE: (u32, u32) = (1, 16_777_215);

/// VNIs the cluster hands out when none is asked for, from 4096 up (as
/// Docker's swarm does).
pub const VNI_POOL: (u32, u32) = (4096, 16_777_215);

/// An overlay network's options, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The VNI: asked for, or (once the network exists) the one the cluster
    /// gave it, recorded as `vxlan.id`.
    pub vni: Option<u32>,
    /// The MTU of its devices; the underlay's minus 50 when unset.
    pub mtu: Option<u32>,
}

impl Config {
    /// Parses and checks `net.options`.
    pub fn parse(net: &Network) -> Result<Self> {
        check_options("overlay", &net.options, OPTIONS)?;
        let vni = match option_pair(&net.options, OPTIONS[0], OPTIONS[1])? {
            Some((key, v)) => Some(
                v.parse::<u32>()
                    .ok()
                    .filter(|n| (VNI_RANGE.0..=VNI_RANGE.1).contains(n))
                    .ok_or_else(|| Error::BadOptionValue {
                        key: key.to_owned(),
                        value: v.to_owned(),
                        accepted: "1 to 16777215",
                    })?,
            ),
            None => None,
        };
        let mtu = match option_pair(&net.options, OPTIONS[2], OPTIONS[3])? {
            Some((key, v)) => Some(parse_mtu(key, v)?),
            None => None,
        };
        Ok(Self { vni, mtu })
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn net(opts: &[(&str, &str)]) -> Network {
        Network::with_options(&"ab".repeat(32), "o", "overlay", opts)
    }

    #[test]
    fn options_parse_and_bad_ones_say_what_is_accepted() {
        assert_eq!(Config::parse(&net(&[])).unwrap(), Config { vni: None, mtu: None });
        assert_eq!(
            Config::parse(&net(&[("vxlan.id", "5000"), ("mtu", "1400")])).unwrap(),
            Config {
                vni: Some(5000),
                mtu: Some(1400)
            }
        );
        assert_eq!(
            Config::parse(&net(&[("com.docker.network.driver.overlay.vxlanid_list", "7")]))
                .unwrap()
                .vni,
            Some(7)
        );
        for (opts, want) in [
            (
                vec![("vxlan.id", "0")],
                "invalid value \"0\" for option vxlan.id (accepted: 1 to 16777215)",
            ),
            (vec![("vxlan.id", "16777216")], "(accepted: 1 to 16777215)"),
            (vec![("vxlan.id", "x")], "(accepted: 1 to 16777215)"),
            (vec![("mtu", "9")], "accepted: 68 to 65535"),
            (
                vec![("colour", "red")],
                "unknown option \"colour\" for driver overlay",
            ),
            (
                vec![
                    ("vxlan.id", "5"),
                    ("com.docker.network.driver.overlay.vxlanid_list", "6"),
                ],
                "same option",
            ),
        ] {
            let e = Config::parse(&net(&opts)).unwrap_err().to_string();
            assert!(e.contains(want), "{opts:?}: {e}");
        }
    }
}
