//! docker-py (Debian's `python3-docker`, run by `/usr/bin/python3`)
//! pointed at berth's socket: the networks API as a Python program uses
//! it, bad input included. The script below reports what it saw as one
//! JSON object; the test checks it, and checks berth's own view.

use std::path::Path;
use std::process::{Command, Stdio};

use berth_testkit::{TestHost, in_netns};
use serde_json::{Value, json};

/// Debian's Python, which has Debian's docker-py (the `python3` on PATH
/// may be another one without it).
const PYTHON: &str = "/usr/bin/python3";

const SCRIPT: &str = r#"
import json, os, sys
import docker
from docker.errors import APIError, NotFound
from docker.types import IPAMConfig, IPAMPool

base = "unix://" + os.environ["BERTH_SOCK"]
out = {"docker_py": docker.__version__}

def err(f):
    try:
        f()
    except APIError as e:
        return [e.status_code, type(e).__name__, e.explanation]
    return None

# version="auto" asks /version which API version to speak.
client = docker.DockerClient(base_url=base, version="auto")
out["api_version"] = client.api.api_version
out["server"] = client.version()["Components"][0]["Name"]

ipam = IPAMConfig(pool_configs=[IPAMPool(subnet="10.71.0.0/16", gateway="10.71.0.254")])
net = client.networks.create(
    "pynet", driver="bridge", ipam=ipam, internal=True,
    labels={"team": "py"}, options={"com.docker.network.driver.mtu": "1400"},
)
out["created"] = {
    "id": net.id, "name": net.name, "internal": net.attrs["Internal"],
    "subnet": net.attrs["IPAM"]["Config"][0]["Subnet"],
    "gateway": net.attrs["IPAM"]["Config"][0]["Gateway"],
    "labels": net.attrs["Labels"], "options": net.attrs["Options"],
}
out["by_name"] = [n.name for n in client.networks.list(names=["pynet"])]
out["by_label"] = [n.name for n in client.networks.list(filters={"label": "team=py"})]
out["by_driver"] = sorted(n.name for n in client.networks.list(filters={"driver": "bridge"}))
out["dangling"] = sorted(n.name for n in client.networks.list(filters={"dangling": True}))
out["get_prefix"] = client.networks.get(net.id[:12]).name

net.connect("c1", ipv4_address="10.71.0.10", aliases=["pyalias"])
net.reload()
out["members"] = {v["Name"]: v["IPv4Address"] for v in net.attrs["Containers"].values()}
out["member_names"] = [c.name for c in net.containers]
net.disconnect("c1")
net.reload()
out["members_after"] = list(net.attrs["Containers"])

out["errors"] = {
    "duplicate": err(lambda: client.networks.create("pynet")),
    "remove_bridge": err(lambda: client.networks.get("bridge").remove()),
    "missing": err(lambda: client.networks.get("nope")),
    "bad_subnet": err(lambda: client.networks.create(
        "bad", ipam=IPAMConfig(pool_configs=[IPAMPool(subnet="10.1.0.0/33")]))),
    "connect_missing": err(lambda: net.connect("nope")),
    "bad_filter": err(lambda: client.networks.list(filters={"colour": "red"})),
    "prune_until": err(lambda: client.networks.prune(filters={"until": "1h"})),
    "too_new": err(lambda: docker.APIClient(base_url=base, version="1.99").networks()),
}

client.networks.create("tmp1", labels={"temp": "1"})
client.networks.create("tmp2")
out["prune"] = client.networks.prune(filters={"label": "temp=1"})
net.remove()
out["left"] = sorted(n.name for n in client.networks.list())
print(json.dumps(out))
"#;

#[test]
fn docker_py_drives_berth_networks() {
    assert!(
        Path::new(PYTHON).exists(),
        "{PYTHON} is missing: install Debian's python3-docker (apt-get install python3-docker; .ci/run does)"
    );
    let h = TestHost::new(Path::new(env!("CARGO_BIN_EXE_berth")));
    h.ok(&["run", "-d", "--name", "c1", "--", "sleep", "600"]);
    let script = h.root.join("docker_py_test.py");
    std::fs::write(&script, SCRIPT).expect("writing the script");
    let mut cmd = Command::new(PYTHON);
    cmd.arg(&script)
        .env("BERTH_SOCK", &h.socket)
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CONFIG")
        .stdin(Stdio::null());
    in_netns(&mut cmd, &h.ns).expect("opening the host namespace");
    let o = cmd.output().expect("running python3");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success(),
        "the docker-py script failed:\n{stdout}\n{stderr}"
    );
    let v: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    eprintln!("docker-py {} said: {v:#}", v["docker_py"]);

    assert_eq!(v["api_version"], "1.47", "version=auto read /version");
    assert_eq!(v["server"], "Engine");
    let c = &v["created"];
    assert_eq!(c["name"], "pynet");
    assert_eq!(c["internal"], true);
    assert_eq!(c["subnet"], "10.71.0.0/16");
    assert_eq!(c["gateway"], "10.71.0.254");
    assert_eq!(c["labels"], json!({"team": "py"}));
    assert_eq!(c["options"], json!({"com.docker.network.driver.mtu": "1400"}));
    assert_eq!(v["by_name"], json!(["pynet"]));
    assert_eq!(v["by_label"], json!(["pynet"]));
    assert_eq!(v["by_driver"], json!(["bridge", "pynet"]));
    assert_eq!(v["dangling"], json!(["pynet"]));
    assert_eq!(v["get_prefix"], "pynet");
    assert_eq!(v["members"], json!({"c1": "10.71.0.10/16"}));
    assert_eq!(v["member_names"], json!(["c1"]));
    assert_eq!(v["members_after"], json!([]));

    let e = &v["errors"];
    let says = |k: &str, status: u16, class: &str, want: &str| {
        assert_eq!(e[k][0], status, "{k}: {}", e[k]);
        assert_eq!(e[k][1], class, "{k}: {}", e[k]);
        let msg = e[k][2].as_str().unwrap_or_default();
        assert!(msg.contains(want), "{k}: {msg:?} does not say {want:?}");
        assert!(!msg.contains('\n'), "{k}: one line: {msg:?}");
    };
    says(
        "duplicate",
        409,
        "APIError",
        "network with name pynet already exists",
    );
    says(
        "remove_bridge",
        403,
        "APIError",
        "bridge is a pre-defined network and cannot be removed",
    );
    says("missing", 404, "NotFound", "network nope not found");
    says("bad_subnet", 400, "APIError", "invalid subnet \"10.1.0.0/33\"");
    says("connect_missing", 404, "NotFound", "no such container: nope");
    says(
        "bad_filter",
        400,
        "APIError",
        "invalid filter \"colour\" (accepted: dangling, driver, id, label, name, scope, type)",
    );
    says(
        "prune_until",
        400,
        "APIError",
        "filter \"until\" is not supported",
    );
    says(
        "too_new",
        400,
        "APIError",
        "client version 1.99 is too new. Maximum supported API version is 1.47",
    );
    assert_eq!(v["prune"], json!({"NetworksDeleted": ["tmp1"]}));
    assert_eq!(v["left"], json!(["bridge", "host", "none", "tmp2"]));

    // berth saw the same.
    let ls = h.ok(&["network", "ls", "--format", "json"]);
    let names: Vec<String> = ls
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["Name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(names, ["bridge", "host", "none", "tmp2"]);
    assert!(h.ok(&["inspect", "c1"]).contains("\"bridge\""));
}
