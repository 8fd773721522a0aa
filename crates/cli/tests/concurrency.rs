//! Many clients at once.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;

use berth_testkit::TestHost;
use serde_json::Value;

#[test]
fn twenty_concurrent_runs_get_distinct_addresses_and_reach_each_other() {
    let h = TestHost::new(Path::new(env!("CARGO_BIN_EXE_berth")));
    h.ok(&["network", "create", "--subnet", "10.20.0.0/24", "crowd"]);
    let children: Vec<_> = (0..20)
        .map(|i| {
            let name = format!("c{i:02}");
            h.berth_cmd(&[
                "run",
                "-d",
                "--name",
                &name,
                "--network",
                "crowd",
                "--",
                "sleep",
                "600",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning berth run")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let names: Vec<String> = (0..20).map(|i| format!("c{i:02}")).collect();
    let mut args = vec!["inspect"];
    args.extend(names.iter().map(String::as_str));
    let all: Value = serde_json::from_str(&h.ok(&args)).unwrap();
    let ips: Vec<String> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            c["NetworkSettings"]["Networks"]["crowd"]["IPAddress"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let distinct: BTreeSet<&String> = ips.iter().collect();
    assert_eq!(distinct.len(), 20, "addresses are not distinct: {ips:?}");
    // Every container pings every other one (bounded: at most two tries
    // of one packet and 2 s each; 400 pings at once on a loaded 2-core
    // machine can outlast one neighbour resolution).
    let list = ips.join(" ");
    let pingers: Vec<_> = names
        .iter()
        .map(|n| {
            let script = format!(
                "for ip in {list}; do ping -c1 -W2 $ip >/dev/null || ping -c1 -W2 $ip >/dev/null \
                 || echo unreachable $ip; done"
            );
            h.berth_cmd(&["exec", n, "--", "sh", "-c", &script])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (n, p) in names.iter().zip(pingers) {
        let out = p.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.trim().is_empty(), "{n}: {text}");
    }
    // And 20 concurrent removals leave nothing.
    let rms: Vec<_> = names
        .iter()
        .map(|n| {
            h.berth_cmd(&["rm", "-f", n])
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut r in rms {
        assert!(r.wait().unwrap().success());
    }
    let net: Value = serde_json::from_str(&h.ok(&["network", "inspect", "crowd"])).unwrap();
    assert_eq!(net[0]["Containers"], serde_json::json!({}));
    assert_eq!(h.run("ip", &["-o", "link"]).stdout.matches("veth").count(), 0);
}
