//! Reading a plugin's answers: every way one can be wrong is one line of
//! error naming the plugin and the method, and never a panic.

use std::sync::Mutex;

use berth_core::{Capabilities, Error, Kind, Ports, Result, SandboxKind, Scope};
use berth_plugin::abi::ErrorAnswer;
use berth_plugin::protocol::{
    CapabilitiesResponse, CreateEndpointResponse, ErrorResponse, JoinResponse, method,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::plugins::one_line;

/// Option lists, leaked once per distinct list: `Capabilities` wants
/// `'static` strings, and reloads must not leak again.
fn intern(options: &[String]) -> &'static [&'static str] {
    static SEEN: Mutex<Vec<&'static [&'static str]>> = Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(s) = seen
        .iter()
        .find(|s| s.iter().copied().eq(options.iter().map(String::as_str)))
    {
        return s;
    }
    let list: Vec<&'static str> = options
        .iter()
        .map(|o| &*Box::leak(o.clone().into_boxed_str()))
        .collect();
    let list: &'static [&'static str] = Box::leak(list.into_boxed_slice());
    seen.push(list);
    list
}

/// What is wrong with a plugin's declared capabilities.
#[derive(Debug, thiserror::Error)]
pub(super) enum BadCapabilities {
    /// A scope other than `local` and `global`.
    #[error("unknown scope {0:?} in its capabilities (accepted: local, global)")]
    Scope(String),
    /// No `Berth` member: not a berth plugin.
    #[error("its capabilities have no Berth member (sandbox, IPAM, options)")]
    NoBerthMember,
    /// A sandbox kind berth does not have.
    #[error("unknown sandbox kind {0:?} in its capabilities (accepted: own, host, isolated)")]
    Sandbox(String),
}

/// A plugin's declared capabilities as the engine's.
pub(super) fn capabilities(c: &CapabilitiesResponse) -> std::result::Result<Capabilities, BadCapabilities> {
    let scope = match c.scope.as_str() {
        "local" | "" => Scope::Local,
        "global" => Scope::Global,
        other => return Err(BadCapabilities::Scope(other.to_owned())),
    };
    let b = c.berth.as_ref().ok_or(BadCapabilities::NoBerthMember)?;
    let sandbox = match b.sandbox.as_str() {
        "own" => SandboxKind::Own,
        "host" => SandboxKind::Host,
        "isolated" => SandboxKind::Isolated,
        other => return Err(BadCapabilities::Sandbox(other.to_owned())),
    };
    Ok(Capabilities {
        scope,
        sandbox,
        ipam: b.ipam,
        options: intern(&b.options),
        multi_network: b.multi_network,
        ports: b.ports.unwrap_or(Ports::Unsupported),
        dns: b.dns.unwrap_or(sandbox == SandboxKind::Own),
        parent: b.parent,
        aliases: &[],
        egress: false,
    })
}

/// An error answer as an [`Error::Plugin`] of the kind the plugin named
/// (kernel errors lose their errno on the way: it is in the message).
fn error_of(answer: &ErrorAnswer, msg: String) -> Error {
    Error::plugin(Kind::from_berth_kind(answer.kind.as_deref()), msg)
}

/// Decodes a plugin's answer to `method`: nothing, bytes that are not
/// JSON, `{"Err": "…"}` and JSON of another shape are each one line of
/// error naming the plugin and the method. Never panics.
pub fn decode<T: DeserializeOwned>(plugin: &str, method: &str, answer: Option<&[u8]>) -> Result<T> {
    let bytes = match answer {
        None | Some([]) => {
            return Err(Error::plugin(
                Kind::Internal,
                format!("plugin {plugin}: {method} answered nothing"),
            ));
        }
        Some(b) => b,
    };
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        let start = String::from_utf8_lossy(&bytes[..bytes.len().min(40)]).into_owned();
        Error::plugin(
            Kind::Internal,
            format!(
                "plugin {plugin}: {method} answered with something that is not JSON: {e} (it begins {:?})",
                one_line(&start)
            ),
        )
    })?;
    let not_shaped = |e: String| {
        Error::plugin(
            Kind::Internal,
            format!(
                "plugin {plugin}: {method} answered JSON that is not a {method} answer: {}",
                one_line(&e)
            ),
        )
    };
    if let Some(err) = v.get("Err") {
        match err {
            Value::String(s) if !s.is_empty() => {
                let kind = v.get("BerthKind").and_then(Value::as_str).map(str::to_owned);
                let answer = ErrorAnswer {
                    err: String::new(),
                    kind,
                };
                let msg = one_line(s);
                // The driver's verdict on the user's options reads as a
                // built-in driver's would; everything else names the plugin.
                let msg = if method == method::VALIDATE && answer.kind.as_deref() == Some("invalid") {
                    msg
                } else {
                    format!("plugin {plugin}: {method} failed: {msg}")
                };
                return Err(error_of(&answer, msg));
            }
            Value::String(_) | Value::Null => {}
            _ => return Err(not_shaped("\"Err\" is not a string".into())),
        }
    }
    T::deserialize(v).map_err(|e| not_shaped(e.to_string()))
}

/// Decodes an answer to `method` the way the engine does, with the checks
/// that follow decoding (capabilities). For the fuzzer and the tests:
/// whatever the bytes, it returns and never panics.
pub fn decode_answer(method: &str, answer: &[u8]) -> Result<()> {
    let a = Some(answer);
    match method {
        method::GET_CAPABILITIES => {
            let c: CapabilitiesResponse = decode("fuzz", method, a)?;
            capabilities(&c)
                .map(drop)
                .map_err(|e| Error::plugin(Kind::Internal, e.to_string()))
        }
        method::CREATE_ENDPOINT => decode::<CreateEndpointResponse>("fuzz", method, a).map(drop),
        method::JOIN => decode::<JoinResponse>("fuzz", method, a).map(drop),
        _ => decode::<ErrorResponse>("fuzz", method, a).map(drop),
    }
}

/// Decodes the answers of an attach's calls: `Join`'s is kept.
pub(super) fn attach_answer(
    plugin: &str,
    m: &'static str,
    answer: Option<&[u8]>,
) -> Result<Option<JoinResponse>> {
    if m == method::JOIN {
        decode(plugin, m, answer).map(Some)
    } else {
        decode::<CreateEndpointResponse>(plugin, m, answer).map(|_| None)
    }
}

/// Decodes an answer that says only whether the call worked.
pub(super) fn plain_answer(plugin: &str, m: &'static str, answer: Option<&[u8]>) -> Result<Option<()>> {
    decode::<ErrorResponse>(plugin, m, answer).map(|_| None)
}

#[cfg(test)]
mod tests {
    use berth_plugin::protocol::BerthCapabilities;

    use super::*;

    fn err(r: Result<()>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn bad_answers_are_one_line_naming_plugin_and_method() {
        let e = err(decode_answer("CreateEndpoint", b"<html>\n</html>"));
        assert!(
            e.starts_with("plugin fuzz: CreateEndpoint answered with something that is not JSON: "),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
        assert_eq!(
            err(decode_answer("Join", b"")),
            "plugin fuzz: Join answered nothing"
        );
        let e = err(decode_answer("Join", br#"{"Err": "no\nway"}"#));
        assert_eq!(e, "plugin fuzz: Join failed: no way");
        let e = err(decode_answer("Join", b"[1,2]"));
        assert!(e.contains("answered JSON that is not a Join answer"), "{e}");
        let e = err(decode_answer("Join", br#"{"Err": 3}"#));
        assert!(e.contains("\"Err\" is not a string"), "{e}");
        assert!(decode_answer("Leave", br#"{"Err": ""}"#).is_ok());
        assert!(decode_answer("Join", br#"{"Berth": {"HostIfname": null}}"#).is_ok());
        let long = format!(r#"{{"Err": "{}"}}"#, "x".repeat(5000));
        assert!(err(decode_answer("Leave", long.as_bytes())).len() < crate::plugins::MAX_TEXT + 100);
    }

    #[test]
    fn error_kinds_survive_the_boundary() {
        let r: Result<ErrorResponse> = decode(
            "p",
            "Validate",
            Some(br#"{"Err": "bad option", "BerthKind": "invalid"}"#),
        );
        match r {
            Err(Error::Plugin {
                kind: Kind::Invalid,
                message: m,
            }) => assert_eq!(m, "bad option"),
            other => panic!("{other:?}"),
        }
        let r: Result<ErrorResponse> =
            decode("p", "Join", Some(br#"{"Err": "busy", "BerthKind": "conflict"}"#));
        assert!(
            matches!(r, Err(Error::Plugin { kind: Kind::Conflict, message: m }) if m == "plugin p: Join failed: busy")
        );
    }

    #[test]
    fn capabilities_are_checked() {
        let mut c = CapabilitiesResponse {
            scope: "local".into(),
            connectivity_scope: "local".into(),
            berth: Some(BerthCapabilities {
                sandbox: "own".into(),
                ipam: true,
                options: vec!["mtu".into()],
                multi_network: true,
                ports: None,
                dns: None,
                parent: false,
            }),
        };
        let caps = capabilities(&c).unwrap();
        assert_eq!(caps.options, ["mtu"]);
        // What a plugin does not say: no ports, the resolver for its own
        // sandboxes.
        assert_eq!(caps.ports, Ports::Unsupported);
        assert!(caps.dns);
        // The same list is leaked once.
        assert!(std::ptr::eq(caps.options, capabilities(&c).unwrap().options));
        c.scope = "galactic".into();
        assert!(capabilities(&c).unwrap_err().to_string().contains("galactic"));
        c.scope = "local".into();
        c.berth = None;
        assert!(
            capabilities(&c)
                .unwrap_err()
                .to_string()
                .contains("no Berth member")
        );
    }

    /// Seeded and bounded, like the DNS one: random bytes and mutations of
    /// real answers never make decoding panic.
    #[test]
    fn random_and_mutated_answers_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(0xbe27_0001);
        let seeds: Vec<Vec<u8>> = [
            r#"{"Scope":"local","ConnectivityScope":"local","Berth":{"Sandbox":"own","Ipam":true,"Options":["mtu"],"MultiNetwork":true}}"#,
            r#"{"Interface":{"Address":"10.0.0.2/24","AddressIPv6":"","MacAddress":"02:42:0a:00:00:02"}}"#,
            r#"{"InterfaceName":null,"Gateway":"","GatewayIPv6":"","StaticRoutes":[],"DisableGatewayService":false,"Berth":{"host_ifname":"ptp0123456789a","addresses":["10.0.0.2/32"],"gateways":["10.0.0.1"],"mac":"02:42:0a:00:00:02"}}"#,
            r#"{"Err":"","BerthKind":"invalid"}"#,
            r#"{"Err":"unknown option \"x\"","BerthKind":"invalid"}"#,
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        let methods = ["GetCapabilities", "CreateEndpoint", "Join", "Leave", "Validate"];
        for i in 0..30_000 {
            let mut p = if i % 4 == 0 {
                let len = rng.random_range(0..300);
                (0..len).map(|_| rng.random()).collect()
            } else {
                seeds[i % seeds.len()].clone()
            };
            for _ in 0..rng.random_range(0..6) {
                if p.is_empty() {
                    break;
                }
                let at = rng.random_range(0..p.len());
                match rng.random_range(0..4) {
                    0 => p[at] = rng.random(),
                    1 => p.truncate(at),
                    2 => {
                        let tokens = b"{}[]\":,0e-";
                        p.insert(at, tokens[rng.random_range(0..tokens.len())])
                    }
                    _ => p.insert(at, rng.random()),
                }
            }
            let _ = decode_answer(methods[i % methods.len()], &p);
        }
    }
}
