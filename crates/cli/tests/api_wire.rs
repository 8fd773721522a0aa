//! The API on the wire, as Docker clients use it: `/_ping`'s headers, the
//! version prefix, explicit nulls, both filter encodings, and every error
//! as `{"message": ...}` with Docker's status.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use berth_testkit::TestHost;
use serde_json::{Value, json};

fn host() -> TestHost {
    TestHost::new(Path::new(env!("CARGO_BIN_EXE_berth")))
}

/// One answer: status, headers (names lowercased), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: not JSON: {:?}", self.body))
    }

    /// The `message` of an error answer, which must be JSON and one line.
    fn message(&self) -> String {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{}",
            self.body
        );
        let m = self.json()["message"].as_str().unwrap_or_default().to_owned();
        assert!(!m.is_empty() && !m.contains('\n'), "{:?}", self.body);
        m
    }
}

fn http(h: &TestHost, method: &str, path: &str, body: Option<&str>) -> Answer {
    let mut s = UnixStream::connect(&h.socket).expect("connecting to berth");
    let body = body.unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked { dechunk(rest) } else { rest.to_owned() };
    Answer {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

#[test]
fn ping_and_version_speak_dockers_headers_and_range() {
    let h = host();
    for method in ["GET", "HEAD"] {
        for path in ["/_ping", "/v1.41/_ping"] {
            let a = http(&h, method, path, None);
            assert_eq!(a.status, 200, "{method} {path}");
            assert_eq!(a.header("api-version"), Some("1.47"), "{method} {path}");
            assert_eq!(a.header("ostype"), Some("linux"));
            assert_eq!(a.header("docker-experimental"), Some("false"));
            assert!(a.header("server").is_some_and(|s| s.starts_with("berth/")));
            assert_eq!(a.body, if method == "GET" { "OK" } else { "" });
        }
    }
    for path in ["/version", "/v1.24/version", "/v1.41/version", "/v1.47/version"] {
        let a = http(&h, "GET", path, None);
        assert_eq!(a.status, 200, "{path}");
        let v = a.json();
        assert_eq!(v["ApiVersion"], "1.47");
        assert_eq!(v["MinAPIVersion"], "1.24");
        assert_eq!(v["Version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(v["Os"], "linux");
        assert!(!v["KernelVersion"].as_str().unwrap().is_empty());
        assert_eq!(v["Components"][0]["Name"], "Engine");
        assert_eq!(v["Components"][0]["Details"]["ApiVersion"], "1.47");
    }
    for (path, want) in [
        (
            "/v1.48/version",
            "client version 1.48 is too new. Maximum supported API version is 1.47",
        ),
        (
            "/v1.23/networks",
            "client version 1.23 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version",
        ),
        ("/v1.2.3/networks", "invalid API version \"1.2.3\""),
    ] {
        let a = http(&h, "GET", path, None);
        assert_eq!(a.status, 400, "{path}");
        assert!(a.message().starts_with(want), "{path}: {}", a.body);
        assert_eq!(a.header("api-version"), Some("1.47"));
    }
    let a = http(&h, "GET", "/v1.41/nowhere", None);
    assert_eq!(a.status, 404);
    assert_eq!(a.message(), "no such endpoint: /nowhere");
    let a = http(&h, "PUT", "/v1.41/networks", None);
    assert_eq!(a.status, 405);
    assert_eq!(a.message(), "method PUT is not allowed on /networks");
}

#[test]
fn explicit_nulls_are_absent_values_and_bad_bodies_are_400() {
    let h = host();
    // What docker 20.10 sends for `docker network create wire`.
    let go = r#"{"Name":"wire","CheckDuplicate":true,"Driver":"bridge","Scope":"","EnableIPv6":false,
        "IPAM":{"Driver":"default","Options":null,"Config":null},"Internal":false,"Attachable":false,
        "Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":null,"Labels":null}"#;
    let a = http(&h, "POST", "/v1.41/networks/create", Some(go));
    assert_eq!(a.status, 201, "{}", a.body);
    let id = a.json()["Id"].as_str().unwrap().to_owned();
    assert_eq!(a.json(), json!({"Id": id, "Warning": ""}));
    let n = http(&h, "GET", "/v1.41/networks/wire", None).json();
    assert_eq!(
        n["IPAM"]["Config"][0]["Subnet"]
            .as_str()
            .map(|s| s.ends_with("/16")),
        Some(true)
    );
    assert_eq!(n["Options"], json!({}));
    assert_eq!(n["ConfigFrom"], json!({"Network": ""}));

    // Bodies that do not decode: 400, naming the field.
    for (body, want) in [
        (
            r#"{"Name":5}"#,
            "invalid request body: Name: invalid type: integer `5`, expected a string",
        ),
        (
            r#"{"Name":"x","IPAM":{"Config":[{"Subnet":["10.0.0.0/8"]}]}}"#,
            "invalid request body: IPAM.Config[0].Subnet: invalid type: sequence, expected a string",
        ),
        (r#"{"Name":"x","#, "invalid request body: EOF while parsing"),
        ("", "invalid request body: it is empty (expected a JSON object)"),
    ] {
        let a = http(&h, "POST", "/v1.41/networks/create", Some(body));
        assert_eq!(a.status, 400, "{body}: {}", a.body);
        assert!(a.message().starts_with(want), "{body}: {}", a.body);
    }
    // What berth cannot do is refused by flag.
    for (body, want) in [
        (r#"{"Name":"x","Ingress":true}"#, "--ingress is not supported"),
        (r#"{"Name":"x","ConfigOnly":true}"#, "--config-only"),
        (
            r#"{"Name":"x","ConfigFrom":{"Network":"y"}}"#,
            "--config-from y is not supported",
        ),
        (r#"{"Name":"x","Scope":"swarm"}"#, "invalid scope \"swarm\""),
        (r#"{"Name":"x","EnableIPv4":false}"#, "--ipv4=false"),
        (r#"{"Name":"x","IPAM":{"Options":{"a":"b"}}}"#, "--ipam-opt"),
    ] {
        let a = http(&h, "POST", "/networks/create", Some(body));
        assert_eq!(a.status, 400, "{body}: {}", a.body);
        assert!(a.message().contains(want), "{body}: {}", a.body);
    }
    // Docker's statuses.
    let a = http(&h, "POST", "/networks/create", Some(r#"{"Name":"wire"}"#));
    assert_eq!(
        (a.status, a.message()),
        (409, "network with name wire already exists".into())
    );
    let a = http(&h, "DELETE", "/v1.41/networks/bridge", None);
    assert_eq!(
        (a.status, a.message()),
        (
            403,
            "bridge is a pre-defined network and cannot be removed".into()
        )
    );
    let a = http(&h, "GET", "/v1.41/networks/nope", None);
    assert_eq!((a.status, a.message()), (404, "network nope not found".into()));

    // Connect and disconnect with a Go client's body, nulls and all.
    h.ok(&["run", "-d", "--name", "c1", "--", "sleep", "600"]);
    let connect = r#"{"Container":"c1","EndpointConfig":{"IPAMConfig":null,"Links":null,"Aliases":null,
        "NetworkID":"","EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"",
        "GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"MacAddress":"","DriverOpts":null}}"#;
    let a = http(&h, "POST", "/v1.41/networks/wire/connect", Some(connect));
    assert_eq!(a.status, 200, "{}", a.body);
    let n = http(&h, "GET", "/networks/wire", None).json();
    assert_eq!(n["Containers"].as_object().map(|m| m.len()), Some(1), "{n:#}");
    let a = http(
        &h,
        "POST",
        "/networks/wire/connect",
        Some(r#"{"Container":"c1","EndpointConfig":{"Links":["x:y"]}}"#),
    );
    assert_eq!(a.status, 400);
    assert!(a.message().contains("--link on network connect is not supported"));
    let a = http(
        &h,
        "POST",
        "/networks/wire/disconnect",
        Some(r#"{"Container":"c1","Force":null}"#),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let a = http(&h, "POST", "/networks/wire/disconnect", Some(r#"{"Force":true}"#));
    assert_eq!(
        (a.status, a.message()),
        (400, "no container given (\"Container\" is empty)".into())
    );

    // A Docker client's run asks for an image: refused, nothing made.
    let a = http(
        &h,
        "POST",
        "/v1.41/containers/create",
        Some(r#"{"Image":"busybox","Cmd":["true"]}"#),
    );
    assert_eq!(a.status, 400);
    assert!(a.message().starts_with("berth runs no images"), "{}", a.body);
    assert_eq!(h.ok(&["ps", "-a", "-q"]).lines().count(), 1);
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn filters_read_both_encodings() {
    let h = host();
    h.ok(&["network", "create", "--label", "team=a", "alpha"]);
    h.ok(&["network", "create", "--label", "team=b", "beta"]);
    let names = |filters: &str| -> Vec<String> {
        let a = http(
            &h,
            "GET",
            &format!("/v1.41/networks?filters={}", enc(filters)),
            None,
        );
        assert_eq!(a.status, 200, "{filters}: {}", a.body);
        a.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["Name"].as_str().unwrap().to_owned())
            .collect()
    };
    for (go, py, want) in [
        (r#"{"name":{"alp":true}}"#, r#"{"name":["alp"]}"#, vec!["alpha"]),
        (
            r#"{"label":{"team=b":true}}"#,
            r#"{"label":["team=b"]}"#,
            vec!["beta"],
        ),
        (
            r#"{"label":{"team":true},"name":{"a":true}}"#,
            r#"{"label":["team"],"name":["a"]}"#,
            vec!["alpha", "beta"],
        ),
        (
            r#"{"type":{"builtin":true}}"#,
            r#"{"type":["builtin"]}"#,
            vec!["bridge", "host", "none"],
        ),
    ] {
        assert_eq!(names(go), want, "{go}");
        assert_eq!(names(py), want, "{py}");
    }
    assert_eq!(names(""), ["alpha", "beta", "bridge", "host", "none"]);
    for (filters, want) in [
        (r#"{"name":"alpha"}"#, "invalid filters"),
        ("not json", "invalid filters \"not json\""),
        (
            r#"{"driver":{"bridge":true},"colour":["red"]}"#,
            "invalid filter \"colour\" (accepted:",
        ),
    ] {
        let a = http(&h, "GET", &format!("/networks?filters={}", enc(filters)), None);
        assert_eq!(a.status, 400, "{filters}");
        assert!(a.message().contains(want), "{filters}: {}", a.body);
    }
    // Prune: label and label!, in both encodings.
    let a = http(
        &h,
        "POST",
        &format!(
            "/v1.41/networks/prune?filters={}",
            enc(r#"{"label!":{"team=a":true}}"#)
        ),
        None,
    );
    assert_eq!(a.json(), json!({"NetworksDeleted": ["beta"]}));
    let a = http(
        &h,
        "POST",
        &format!("/networks/prune?filters={}", enc(r#"{"label":["team=a"]}"#)),
        None,
    );
    assert_eq!(a.json(), json!({"NetworksDeleted": ["alpha"]}));
}
