use berth_core::{IfName, Network, Result, check_options, option_pair, parse_bool, parse_mtu};

/// The value of the option known by `long` or `short`.
fn option<'a>(net: &'a Network, long: &'a str, short: &'a str) -> Result<Option<(&'a str, &'a str)>> {
    option_pair(&net.options, long, short)
}

/// Every option the bridge driver accepts: Docker's long names and
/// berth's short ones.
pub const OPTIONS: &[&str] = &[
    "com.docker.network.bridge.name",
    "bridge.name",
    "com.docker.network.driver.mtu",
    "mtu",
    "com.docker.network.bridge.enable_icc",
    "icc",
    "com.docker.network.bridge.enable_ip_masquerade",
    "masquerade",
];

/// A bridge network's options, parsed: it cannot hold a bad value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The Linux bridge (`br-` and 12 hex digits of the id by default).
    pub name: IfName,
    /// MTU of the bridge and its veths; the kernel's default when unset.
    pub mtu: Option<u32>,
    /// Containers on the network may reach each other.
    pub icc: bool,
    /// Outbound traffic is masqueraded.
    pub masquerade: bool,
}

impl Config {
    /// Parses and checks `net.options`.
    pub fn parse(net: &Network) -> Result<Self> {
        check_options("bridge", &net.options, OPTIONS)?;
        let name = match option(net, OPTIONS[0], OPTIONS[1])? {
            Some((key, v)) => IfName::for_option(key, v)?,
            None => IfName::new(&format!("br-{}", net.short_id()))?,
        };
        let mtu = match option(net, OPTIONS[2], OPTIONS[3])? {
            Some((key, v)) => Some(parse_mtu(key, v)?),
            None => None,
        };
        let icc = match option(net, OPTIONS[4], OPTIONS[5])? {
            Some((key, v)) => parse_bool(key, v)?,
            None => true,
        };
        let masquerade = match option(net, OPTIONS[6], OPTIONS[7])? {
            Some((key, v)) => parse_bool(key, v)?,
            None => true,
        };
        Ok(Self {
            name,
            mtu,
            icc,
            masquerade,
        })
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn net(opts: &[(&str, &str)]) -> Network {
        Network::with_options(&"0123456789abcdef".repeat(4), "n", "bridge", opts)
    }

    #[test]
    fn defaults_follow_docker() {
        let c = Config::parse(&net(&[])).unwrap();
        assert_eq!(c.name.as_str(), "br-0123456789ab");
        assert_eq!((c.mtu, c.icc, c.masquerade), (None, true, true));
    }

    #[test]
    fn long_and_short_names_both_work() {
        let c = Config::parse(&net(&[
            ("bridge.name", "mybr"),
            ("com.docker.network.bridge.enable_icc", "false"),
        ]))
        .unwrap();
        assert_eq!(c.name.as_str(), "mybr");
        assert!(!c.icc);
        let c = Config::parse(&net(&[("mtu", "9000"), ("masquerade", "false")])).unwrap();
        assert_eq!((c.mtu, c.masquerade), (Some(9000), false));
    }

    #[test]
    fn bad_values_name_the_option_and_what_is_accepted() {
        for (opts, want) in [
            (
                vec![("bridge.name", "0123456789abcdef")],
                "option bridge.name: invalid interface name",
            ),
            (vec![("bridge.name", "a/b")], "contains '/'"),
            (vec![("bridge.name", "a:b")], "contains ':'"),
            (vec![("bridge.name", "a b")], "contains ' '"),
            (vec![("mtu", "12")], "accepted: 68 to 65535"),
            (vec![("icc", "maybe")], "accepted: true or false"),
            (
                vec![("colour", "red")],
                "unknown option \"colour\" for driver bridge (accepted: com.docker",
            ),
            (
                vec![("mtu", "1500"), ("com.docker.network.driver.mtu", "9000")],
                "same option",
            ),
        ] {
            let err = Config::parse(&net(&opts)).unwrap_err().to_string();
            assert!(err.contains(want), "{opts:?}: {err}");
        }
    }
}
