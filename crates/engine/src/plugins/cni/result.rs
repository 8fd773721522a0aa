//! What CNI plugins print: results (`ADD`'s output) and error objects.
//!
//! Plugins are outside programs, so their output is checked field by field
//! and nothing they print can panic the daemon (`cargo xtask fuzz
//! cni_result` feeds [`decode_result`] arbitrary bytes).

use std::fmt;
use std::net::IpAddr;

use berth_core::Mac;
use ipnet::IpNet;
use serde_json::{Map, Value};

/// A decoded CNI result. Spec 1.0.0's shape; 0.3.x and 0.4.0 results have
/// the same one (with a `version` on each address, which is ignored), and
/// 0.1.0/0.2.0 results (`ip4`, `ip6`) are converted to it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CniResult {
    /// `cniVersion`.
    pub cni_version: String,
    /// `interfaces`: host-side ones have no sandbox.
    pub interfaces: Vec<Interface>,
    /// `ips`.
    pub ips: Vec<IpConfig>,
    /// `routes`.
    pub routes: Vec<Route>,
    /// `dns`.
    pub dns: Dns,
}

/// One entry of a result's `interfaces`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Interface {
    /// `name`.
    pub name: String,
    /// `mac`, lowercased.
    pub mac: Option<String>,
    /// `sandbox`: the namespace path of a container's interface; `None` for
    /// host-side interfaces.
    pub sandbox: Option<String>,
}

/// One entry of a result's `ips`.
#[derive(Clone, Debug, PartialEq)]
pub struct IpConfig {
    /// `address`, with its prefix length (`10.88.0.2/16`).
    pub address: IpNet,
    /// `gateway`.
    pub gateway: Option<IpAddr>,
    /// `interface`: an index into [`CniResult::interfaces`].
    pub interface: Option<usize>,
}

/// One entry of a result's `routes`.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    /// `dst`.
    pub dst: IpNet,
    /// `gw`.
    pub gw: Option<IpAddr>,
}

/// A result's `dns`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dns {
    /// `nameservers`.
    pub nameservers: Vec<String>,
    /// `domain`.
    pub domain: Option<String>,
    /// `search`.
    pub search: Vec<String>,
    /// `options`.
    pub options: Vec<String>,
}

/// Why a plugin's output is not a CNI result; says which field is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

fn bad(msg: impl Into<String>) -> DecodeError {
    DecodeError(msg.into())
}

/// Decodes a plugin's `ADD` output. Checks every field it reads: addresses
/// must be addresses, interface indexes must point at an interface.
pub fn decode_result(out: &[u8]) -> Result<CniResult, DecodeError> {
    let v: Value = serde_json::from_slice(out).map_err(|e| bad(format!("not JSON ({e})")))?;
    decode_value(&v)
}

/// Like [`decode_result`], for output already parsed as JSON.
pub fn decode_value(v: &Value) -> Result<CniResult, DecodeError> {
    let obj = v.as_object().ok_or_else(|| bad("not a JSON object"))?;
    let cni_version = match obj.get("cniVersion") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(bad("cniVersion is not a string")),
        None => return Err(bad("it has no cniVersion")),
    };
    let mut r = CniResult {
        cni_version,
        ..Default::default()
    };
    if obj.contains_key("ip4") || obj.contains_key("ip6") {
        legacy(obj, &mut r)?;
    } else {
        for (i, item) in array(obj, "interfaces")?.iter().enumerate() {
            let at = format!("interfaces[{i}]");
            let o = object(item, &at)?;
            r.interfaces.push(Interface {
                name: string(o, "name", &at)?.ok_or_else(|| bad(format!("{at} has no name")))?,
                mac: string(o, "mac", &at)?
                    .filter(|m| !m.is_empty())
                    .map(|m| m.to_lowercase()),
                sandbox: string(o, "sandbox", &at)?.filter(|s| !s.is_empty()),
            });
        }
        for (i, item) in array(obj, "ips")?.iter().enumerate() {
            let at = format!("ips[{i}]");
            let o = object(item, &at)?;
            let interface = match o.get("interface") {
                None | Some(Value::Null) => None,
                Some(n) => {
                    let idx = n
                        .as_u64()
                        .ok_or_else(|| bad(format!("{at}.interface is not an index")))?;
                    if idx >= r.interfaces.len() as u64 {
                        return Err(bad(format!(
                            "{at}.interface {idx} points past the {} interfaces",
                            r.interfaces.len()
                        )));
                    }
                    Some(idx as usize)
                }
            };
            r.ips.push(IpConfig {
                address: cidr(o, "address", &at)?.ok_or_else(|| bad(format!("{at} has no address")))?,
                gateway: ip(o, "gateway", &at)?,
                interface,
            });
        }
        routes(obj, "routes", "", &mut r.routes)?;
    }
    if let Some(d) = obj.get("dns").filter(|d| !d.is_null()) {
        let o = object(d, "dns")?;
        r.dns = Dns {
            nameservers: strings(o, "nameservers", "dns")?,
            domain: string(o, "domain", "dns")?,
            search: strings(o, "search", "dns")?,
            options: strings(o, "options", "dns")?,
        };
    }
    Ok(r)
}

/// Spec 0.1.0/0.2.0: `{"ip4": {"ip", "gateway", "routes"}, "ip6": …}`.
fn legacy(obj: &Map<String, Value>, r: &mut CniResult) -> Result<(), DecodeError> {
    for key in ["ip4", "ip6"] {
        let Some(v) = obj.get(key).filter(|v| !v.is_null()) else {
            continue;
        };
        let o = object(v, key)?;
        r.ips.push(IpConfig {
            address: cidr(o, "ip", key)?.ok_or_else(|| bad(format!("{key} has no ip")))?,
            gateway: ip(o, "gateway", key)?,
            interface: None,
        });
        routes(o, "routes", &format!("{key}."), &mut r.routes)?;
    }
    Ok(())
}

fn routes(o: &Map<String, Value>, key: &str, prefix: &str, out: &mut Vec<Route>) -> Result<(), DecodeError> {
    for (i, item) in array(o, key)?.iter().enumerate() {
        let at = format!("{prefix}{key}[{i}]");
        let ro = object(item, &at)?;
        out.push(Route {
            dst: cidr(ro, "dst", &at)?.ok_or_else(|| bad(format!("{at} has no dst")))?,
            gw: ip(ro, "gw", &at)?,
        });
    }
    Ok(())
}

fn object<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, DecodeError> {
    v.as_object().ok_or_else(|| bad(format!("{at} is not an object")))
}

fn array<'a>(o: &'a Map<String, Value>, key: &str) -> Result<&'a [Value], DecodeError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(bad(format!("{key} is not a list"))),
    }
}

fn string(o: &Map<String, Value>, key: &str, at: &str) -> Result<Option<String>, DecodeError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(format!("{at}.{key} is not a string"))),
    }
}

fn strings(o: &Map<String, Value>, key: &str, at: &str) -> Result<Vec<String>, DecodeError> {
    array(o, key)?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| bad(format!("{at}.{key} holds something that is not a string")))
        })
        .collect()
}

fn cidr(o: &Map<String, Value>, key: &str, at: &str) -> Result<Option<IpNet>, DecodeError> {
    string(o, key, at)?
        .map(|s| {
            s.parse::<IpNet>()
                .map_err(|_| bad(format!("{at}.{key} {s:?} is not an address with a prefix length")))
        })
        .transpose()
}

fn ip(o: &Map<String, Value>, key: &str, at: &str) -> Result<Option<IpAddr>, DecodeError> {
    string(o, key, at)?
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpAddr>()
                .map_err(|_| bad(format!("{at}.{key} {s:?} is not an IP address")))
        })
        .transpose()
}

impl CniResult {
    /// The addresses, gateways and MAC of the interface `ifname` inside the
    /// sandbox, as the engine records them. Addresses that name no interface
    /// count as the sandbox interface's when it has none of its own (IPAM
    /// results, single-interface plugins).
    /// A MAC that is not an Ethernet one (InfiniBand's are longer) is left
    /// out.
    pub fn sandbox_view(&self, ifname: &str) -> (Vec<IpNet>, Vec<IpAddr>, Option<Mac>) {
        let idx = self
            .interfaces
            .iter()
            .position(|i| i.name == ifname && i.sandbox.is_some());
        let mut ips: Vec<&IpConfig> = self
            .ips
            .iter()
            .filter(|c| idx.is_some() && c.interface == idx)
            .collect();
        if ips.is_empty() {
            ips = self.ips.iter().filter(|c| c.interface.is_none()).collect();
        }
        let mut gateways: Vec<IpAddr> = Vec::new();
        for g in ips.iter().filter_map(|c| c.gateway) {
            if !gateways.contains(&g) {
                gateways.push(g);
            }
        }
        (
            ips.iter().map(|c| c.address).collect(),
            gateways,
            idx.and_then(|i| self.interfaces[i].mac.as_deref()?.parse().ok()),
        )
    }
}

/// A CNI error object: `{"cniVersion", "code", "msg", "details"}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginError {
    /// `code`: 1-99 are the spec's (7: invalid configuration, 11: try
    /// again later), 100 and up the plugin's own.
    pub code: u64,
    /// `msg`.
    pub msg: String,
    /// `details`.
    pub details: String,
}

impl PluginError {
    /// `1`: incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u64 = 1;
    /// `2`: unsupported field in the network configuration.
    pub const UNSUPPORTED_FIELD: u64 = 2;
    /// `3`: container unknown or does not exist.
    pub const UNKNOWN_CONTAINER: u64 = 3;
    /// `4`: invalid necessary environment variables.
    pub const INVALID_ENVIRONMENT: u64 = 4;
    /// `5`: I/O failure.
    pub const IO_FAILURE: u64 = 5;
    /// `6`: failed to decode content.
    pub const DECODING_FAILURE: u64 = 6;
    /// `7`: invalid network configuration.
    pub const INVALID_NETWORK_CONFIG: u64 = 7;
    /// `11`: try again later.
    pub const TRY_AGAIN_LATER: u64 = 11;
    /// `50`: the plugin is not available (`STATUS`).
    pub const NOT_AVAILABLE: u64 = 50;
    /// `51`: not available, and existing containers may have limited
    /// connectivity (`STATUS`).
    pub const NOT_AVAILABLE_LIMITED: u64 = 51;

    /// An error object with `code`, `msg` and `details`.
    pub fn new(code: u64, msg: impl Into<String>, details: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// The error object as a plugin prints it.
    pub fn to_value(&self, cni_version: &str) -> Value {
        serde_json::json!({
            "cniVersion": cni_version,
            "code": self.code,
            "msg": self.msg,
            "details": self.details,
        })
    }
}

impl CniResult {
    /// The result as a plugin prints it, in the shape of its `cniVersion`:
    /// 0.3.x and 0.4.0 give each address its `version`; 0.1.0 and 0.2.0
    /// results (`ip4`, `ip6`) are not written.
    pub fn to_value(&self) -> Value {
        use serde_json::json;
        let versioned = matches!(self.cni_version.as_str(), "0.3.0" | "0.3.1" | "0.4.0");
        let interfaces: Vec<Value> = self
            .interfaces
            .iter()
            .map(|i| {
                let mut o = Map::new();
                o.insert("name".into(), json!(i.name));
                if let Some(m) = &i.mac {
                    o.insert("mac".into(), json!(m));
                }
                if let Some(s) = &i.sandbox {
                    o.insert("sandbox".into(), json!(s));
                }
                Value::Object(o)
            })
            .collect();
        let ips: Vec<Value> = self
            .ips
            .iter()
            .map(|c| {
                let mut o = Map::new();
                if versioned {
                    o.insert(
                        "version".into(),
                        json!(if c.address.addr().is_ipv4() { "4" } else { "6" }),
                    );
                }
                o.insert("address".into(), json!(c.address.to_string()));
                if let Some(g) = c.gateway {
                    o.insert("gateway".into(), json!(g.to_string()));
                }
                if let Some(i) = c.interface {
                    o.insert("interface".into(), json!(i));
                }
                Value::Object(o)
            })
            .collect();
        let routes: Vec<Value> = self
            .routes
            .iter()
            .map(|r| match r.gw {
                Some(gw) => json!({"dst": r.dst.to_string(), "gw": gw.to_string()}),
                None => json!({"dst": r.dst.to_string()}),
            })
            .collect();
        let mut dns = Map::new();
        if !self.dns.nameservers.is_empty() {
            dns.insert("nameservers".into(), json!(self.dns.nameservers));
        }
        if let Some(d) = &self.dns.domain {
            dns.insert("domain".into(), json!(d));
        }
        if !self.dns.search.is_empty() {
            dns.insert("search".into(), json!(self.dns.search));
        }
        if !self.dns.options.is_empty() {
            dns.insert("options".into(), json!(self.dns.options));
        }
        json!({
            "cniVersion": self.cni_version,
            "interfaces": interfaces,
            "ips": ips,
            "routes": routes,
            "dns": dns,
        })
    }
}

/// Reads a CNI error object from a failed plugin's output; `None` when the
/// output is not one.
pub fn decode_error(out: &[u8]) -> Option<PluginError> {
    let v: Value = serde_json::from_slice(out).ok()?;
    let o = v.as_object()?;
    let code = o.get("code")?.as_u64()?;
    let msg = o
        .get("msg")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let details = o
        .get("details")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Some(PluginError { code, msg, details })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BRIDGE: &str = r#"{
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": "cnibr1", "mac": "EA:F4:6C:36:5F:13"},
            {"name": "vethc0d1476f", "mac": "32:64:ba:2f:8c:3f"},
            {"name": "eth0", "mac": "0e:ea:3f:80:81:0f", "sandbox": "/run/berth/netns/x"}
        ],
        "ips": [{"interface": 2, "address": "10.89.2.2/24", "gateway": "10.89.2.1"}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.89.2.1"}],
        "dns": {}
    }"#;

    #[test]
    fn a_bridge_result_names_the_sandbox_interface() {
        let r = decode_result(BRIDGE.as_bytes()).unwrap();
        assert_eq!(r.interfaces[0].mac.as_deref(), Some("ea:f4:6c:36:5f:13"));
        assert_eq!(r.routes[0].dst, "0.0.0.0/0".parse::<IpNet>().unwrap());
        let (addrs, gws, mac) = r.sandbox_view("eth0");
        assert_eq!(addrs, vec!["10.89.2.2/24".parse::<IpNet>().unwrap()]);
        assert_eq!(gws, vec!["10.89.2.1".parse::<IpAddr>().unwrap()]);
        assert_eq!(mac.map(|m| m.to_string()).as_deref(), Some("0e:ea:3f:80:81:0f"));
        // Another interface name has no addresses of its own.
        assert_eq!(r.sandbox_view("eth1").0, Vec::<IpNet>::new());
    }

    #[test]
    fn old_results_are_converted() {
        let r = decode_result(
            br#"{"cniVersion":"0.2.0","ip4":{"ip":"10.1.0.5/16","gateway":"10.1.0.1","routes":[{"dst":"0.0.0.0/0"}]},"dns":{"nameservers":["10.1.0.1"]}}"#,
        )
        .unwrap();
        assert_eq!(r.ips[0].address.to_string(), "10.1.0.5/16");
        assert_eq!(r.routes.len(), 1);
        assert_eq!(r.dns.nameservers, vec!["10.1.0.1"]);
        let (addrs, _, mac) = r.sandbox_view("eth0");
        assert_eq!(addrs.len(), 1);
        assert_eq!(mac, None);
        let r = decode_result(br#"{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.1.0.5/16"}]}"#)
            .unwrap();
        assert_eq!(r.sandbox_view("eth0").0.len(), 1);
    }

    #[test]
    fn wrong_fields_are_named() {
        for (out, want) in [
            ("", "not JSON"),
            ("hello", "not JSON"),
            ("[]", "not a JSON object"),
            ("{}", "no cniVersion"),
            (r#"{"cniVersion":1}"#, "cniVersion is not a string"),
            (r#"{"cniVersion":"1.0.0","ips":{}}"#, "ips is not a list"),
            (
                r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.1"}]}"#,
                "ips[0].address \"10.0.0.1\"",
            ),
            (
                r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.1/8","interface":0}]}"#,
                "points past",
            ),
            (
                r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.1/8","interface":-1}]}"#,
                "not an index",
            ),
            (
                r#"{"cniVersion":"1.0.0","interfaces":[{}]}"#,
                "interfaces[0] has no name",
            ),
            (
                r#"{"cniVersion":"1.0.0","routes":[{"dst":"x"}]}"#,
                "routes[0].dst",
            ),
            (
                r#"{"cniVersion":"1.0.0","dns":{"nameservers":[1]}}"#,
                "dns.nameservers",
            ),
            (
                r#"{"cniVersion":"0.2.0","ip4":{"gateway":"1.2.3.4"}}"#,
                "ip4 has no ip",
            ),
        ] {
            let e = decode_result(out.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(want), "{out}: {e}");
        }
    }

    #[test]
    fn results_and_errors_read_back_as_written() {
        let r = decode_result(BRIDGE.as_bytes()).unwrap();
        assert_eq!(decode_value(&r.to_value()).unwrap(), r);
        let old = CniResult {
            cni_version: "0.4.0".into(),
            ..r.clone()
        };
        let v = old.to_value();
        assert_eq!(v["ips"][0]["version"], "4");
        assert_eq!(decode_value(&v).unwrap(), old);
        let e = PluginError::new(PluginError::INVALID_NETWORK_CONFIG, "bad", "worse");
        let out = serde_json::to_vec(&e.to_value("1.0.0")).unwrap();
        assert_eq!(decode_error(&out), Some(e));
    }

    #[test]
    fn error_objects_are_read() {
        let e =
            decode_error(br#"{"cniVersion":"1.0.0","code":11,"msg":"try later","details":"busy"}"#).unwrap();
        assert_eq!(
            (e.code, e.msg.as_str(), e.details.as_str()),
            (11, "try later", "busy")
        );
        assert_eq!(decode_error(b"{\"code\":999,\"msg\":\"x\"}").unwrap().details, "");
        assert!(decode_error(b"{\"msg\":\"x\"}").is_none());
        assert!(decode_error(b"garbage").is_none());
    }

    /// A small xorshift generator: the same inputs on every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Seeded, bounded random inputs (the fuzz target explores further):
    /// mutations of real results and random JSON-ish bytes never panic, and
    /// whatever decodes has interface indexes that point at interfaces.
    #[test]
    fn random_output_never_panics() {
        let mut rng = Rng(0x5eed_cafe_f00d_d00d);
        let seeds: Vec<&[u8]> = vec![
            BRIDGE.as_bytes(),
            br#"{"cniVersion":"0.2.0","ip4":{"ip":"10.1.0.5/16","routes":[{"dst":"0.0.0.0/0","gw":"10.1.0.1"}]},"ip6":{"ip":"fd00::5/64"}}"#,
            br#"{"cniVersion":"1.0.0","code":7,"msg":"bad","details":"worse"}"#,
        ];
        let alphabet = br#"{}[]":,0123456789./abcdefxyz-ifnamesaddressgwdstcniVersion "#;
        let fragments: [&[u8]; 8] = [
            b"\"interface\":",
            b"\"address\":\"",
            b"null",
            b"18446744073709551615",
            b"-1",
            b"[[[[",
            b"\"ips\":[",
            b"\"ip4\":{",
        ];
        let mut decoded = 0;
        for _ in 0..20_000 {
            let mut input: Vec<u8> = if rng.below(4) == 0 {
                (0..rng.below(64))
                    .map(|_| alphabet[rng.below(alphabet.len())])
                    .collect()
            } else {
                seeds[rng.below(seeds.len())].to_vec()
            };
            for _ in 0..rng.below(4) {
                if input.is_empty() {
                    break;
                }
                let at = rng.below(input.len());
                match rng.below(4) {
                    0 => input[at] = alphabet[rng.below(alphabet.len())],
                    1 => input.truncate(at),
                    2 => {
                        input.remove(at);
                    }
                    _ => {
                        let f = fragments[rng.below(fragments.len())];
                        input.splice(at..at, f.iter().copied());
                    }
                }
            }
            let _ = decode_error(&input);
            if let Ok(r) = decode_result(&input) {
                decoded += 1;
                for c in &r.ips {
                    assert!(c.interface.is_none_or(|i| i < r.interfaces.len()));
                }
                let _ = r.sandbox_view("eth0");
            }
        }
        assert!(
            decoded > 100,
            "the mutations should keep some results valid ({decoded})"
        );
    }
}
