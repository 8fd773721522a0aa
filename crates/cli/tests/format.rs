//! `--format` with Go templates (`network ls`, `network inspect -f`, `ps`,
//! `inspect -f`), `ps --filter` and `--no-trunc`, `inspect` finding networks,
//! and bad templates as one line of error. Each test has its own namespace
//! and daemon (`TestHost`).

use std::path::Path;

use berth_testkit::TestHost;
use serde_json::Value;

fn host() -> TestHost {
    TestHost::new(Path::new(env!("CARGO_BIN_EXE_berth")))
}

/// A host with network `fmtnet` (label team=web, internal, 172.29.7.0/24)
/// and two running containers: `web` on it at .5, `long` on the default
/// bridge with a command longer than `ps`'s 20 characters.
fn setup() -> TestHost {
    let h = host();
    h.ok(&[
        "network",
        "create",
        "--internal",
        "--label",
        "team=web",
        "--subnet",
        "172.29.7.0/24",
        "fmtnet",
    ]);
    h.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "fmtnet",
        "--ip",
        "172.29.7.5",
        "--",
        "sleep",
        "600",
    ]);
    h.ok(&[
        "run", "-d", "--name", "long", "--", "sleep", "600", "1", "1", "1", "1", "1", "1", "1",
    ]);
    h
}

fn sorted(s: &str) -> Vec<&str> {
    let mut v: Vec<&str> = s.lines().collect();
    v.sort();
    v
}

#[test]
fn network_ls_format_prints_docker_placeholders() {
    let h = setup();
    let ls = |format: &str| h.ok(&["network", "ls", "--filter", "name=fmtnet", "--format", format]);
    assert_eq!(ls("{{.Name}}"), "fmtnet\n");
    assert_eq!(
        ls(r#"{{.Name}} {{.Driver}} {{.Scope}} {{.Internal}} {{.IPv6}} {{.Labels}} {{.Label "team"}}"#),
        "fmtnet bridge local true false team=web web\n"
    );
    let id = h.ok(&["network", "inspect", "-f", "{{.Id}}", "fmtnet"]);
    assert_eq!(ls("{{.ID}}"), format!("{}\n", &id[..12]));
    let full = h.ok(&[
        "network",
        "ls",
        "--filter",
        "name=fmtnet",
        "--no-trunc",
        "--format",
        "{{.ID}}",
    ]);
    assert_eq!(full, id);
    assert!(ls("{{.CreatedAt}}").ends_with(" +0000 UTC\n"), "Go's time format");
    assert_eq!(
        ls("{{upper .Name}} {{title .Driver}} {{len .Name}}"),
        "FMTNET Bridge 6\n"
    );
    // `table` prints Docker's column names, aligned by Go's tabwriter.
    assert_eq!(
        ls(r"table {{.Name}}\t{{.Driver}}\t{{.ID}}"),
        format!(
            "NAME      DRIVER    NETWORK ID\nfmtnet    bridge    {}\n",
            &id[..12]
        )
    );
    // `json` and `table` keep their meaning.
    let json: Value = serde_json::from_str(&ls("json")).unwrap();
    assert_eq!(json["Name"], "fmtnet");
    assert_eq!(ls("table"), h.ok(&["network", "ls", "--filter", "name=fmtnet"]));
    assert!(ls("table").starts_with("NETWORK ID"));
    // All networks, names only, as scripts use it.
    assert_eq!(
        sorted(&h.ok(&["network", "ls", "--format", "{{.Name}}"])),
        ["bridge", "fmtnet", "host", "none"]
    );
}

#[test]
fn inspect_format_walks_the_full_json() {
    let h = setup();
    assert_eq!(
        h.ok(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.fmtnet.IPAddress}}",
            "web"
        ]),
        "172.29.7.5\n"
    );
    assert_eq!(
        h.ok(&[
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            "web"
        ]),
        "172.29.7.5\n"
    );
    assert_eq!(
        h.ok(&["inspect", "-f", "{{json .Config.Cmd}}", "web"]),
        "[\"sleep\",\"600\"]\n"
    );
    assert_eq!(
        h.ok(&["inspect", "-f", "{{.Name}} {{.State.Status}}", "web", "long"]),
        "/web running\n/long running\n"
    );
    assert_eq!(
        h.ok(&[
            "network",
            "inspect",
            "-f",
            "{{.Name}} {{json .Labels}} {{range .IPAM.Config}}{{.Subnet}}{{end}} {{len .Containers}}",
            "fmtnet"
        ]),
        "fmtnet {\"team\":\"web\"} 172.29.7.0/24 1\n"
    );
    assert_eq!(
        h.ok(&[
            "network",
            "inspect",
            "--format",
            "{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}",
            "fmtnet"
        ]),
        "web 172.29.7.5/24\n"
    );
    // Without -f, or with `-f json`, the JSON array as before.
    let v: Value = serde_json::from_str(&h.ok(&["inspect", "-f", "json", "web"])).unwrap();
    assert_eq!(v[0]["Name"], "/web");
}

#[test]
fn inspect_finds_a_network_when_no_container_has_the_name() {
    let h = setup();
    let v: Value = serde_json::from_str(&h.ok(&["inspect", "fmtnet"])).unwrap();
    assert_eq!(v[0]["Name"], "fmtnet");
    assert_eq!(v[0]["Driver"], "bridge");
    assert_eq!(
        h.ok(&["inspect", "-f", "{{.Name}}", "web", "fmtnet"]),
        "/web\nfmtnet\n"
    );
    assert_eq!(
        h.ok(&["inspect", "--type", "network", "-f", "{{.Name}}", "fmtnet"]),
        "fmtnet\n"
    );
    let r = h.berth(&["inspect", "--type", "container", "fmtnet"]);
    assert_eq!((r.code, r.stdout.as_str()), (1, "[]\n"));
    assert!(
        r.stderr.starts_with("berth: ") && r.stderr.contains("fmtnet"),
        "{}",
        r.stderr
    );
    let r = h.berth(&["inspect", "-f", "{{.Name}}", "nosuch", "web"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "/web\n");
    assert_eq!(r.stderr, "berth: no such container or network: nosuch\n");
    assert_ne!(h.berth(&["inspect", "--type", "volume", "web"]).code, 0);
}

#[test]
fn ps_format_and_no_trunc() {
    let h = setup();
    let ps = |args: &[&str]| {
        let mut a = vec!["ps"];
        a.extend_from_slice(args);
        h.ok(&a)
    };
    assert_eq!(
        ps(&[
            "--filter",
            "name=web",
            "--format",
            "{{.Names}} {{.Networks}} {{.State}} {{.Image}} {{.Command}}"
        ]),
        "web fmtnet running host \"sleep 600\"\n"
    );
    assert_eq!(
        ps(&["--filter", "name=long", "--format", "{{.Command}}"]),
        "\"sleep 600 1 1 1 1 1…\"\n"
    );
    assert_eq!(
        ps(&["--filter", "name=long", "--no-trunc", "--format", "{{.Command}}"]),
        "\"sleep 600 1 1 1 1 1 1 1\"\n"
    );
    let id = h.ok(&["inspect", "-f", "{{.Id}}", "web"]);
    assert_eq!(id.len(), 65);
    assert_eq!(
        ps(&["--filter", "name=web", "--format", "{{.ID}}"]),
        format!("{}\n", &id[..12])
    );
    assert_eq!(
        ps(&["--filter", "name=web", "--no-trunc", "--format", "{{.ID}}"]),
        id
    );
    assert_eq!(ps(&["--filter", "name=web", "--no-trunc", "-q"]), id);
    assert_eq!(ps(&["--filter", "name=web", "-q"]), format!("{}\n", &id[..12]));
    let table = ps(&["--filter", "name=long", "--no-trunc"]);
    assert!(table.contains("\"sleep 600 1 1 1 1 1 1 1\""), "{table}");
    let long_id = h.ok(&["inspect", "-f", "{{.Id}}", "long"]);
    assert!(table.contains(long_id.trim_end()), "{table}");
    assert_eq!(
        ps(&[
            "--filter",
            "name=web",
            "--format",
            r"table {{.Names}}\t{{.State}}\t{{.Networks}}"
        ]),
        "NAMES     STATE     NETWORKS\nweb       running   fmtnet\n"
    );
    assert!(ps(&["--filter", "name=web", "--format", "{{.RunningFor}}"]).ends_with(" ago\n"));
    let json: Value = serde_json::from_str(&ps(&["--filter", "name=web", "--format", "json"])).unwrap();
    assert_eq!(json["Names"], "web");
    assert_eq!(json["State"], "running");
    assert_eq!(json["Networks"], "fmtnet");
}

#[test]
fn ps_filters_follow_docker() {
    let h = setup();
    h.ok(&["run", "--name", "done", "--", "true"]);
    let names = |filters: &[&str]| {
        let mut a = vec!["ps", "-a", "--format", "{{.Names}}"];
        for f in filters {
            a.extend(["--filter", f]);
        }
        sorted(&h.ok(&a)).join(" ")
    };
    assert_eq!(names(&[]), "done long web");
    // One key's values are alternatives; different keys must all match.
    assert_eq!(names(&["name=web", "name=long"]), "long web");
    assert_eq!(names(&["name=web", "name=long", "network=fmtnet"]), "web");
    assert_eq!(names(&["network=bridge"]), "done long");
    assert_eq!(names(&["status=exited"]), "done");
    assert_eq!(names(&["status=running", "status=exited"]), "done long web");
    let id = h.ok(&["inspect", "-f", "{{.Id}}", "long"]);
    assert_eq!(names(&[&format!("id={}", &id[..8])]), "long");
    // berth's containers have no labels.
    assert_eq!(names(&["label=team"]), "");
    // A status filter lists exited containers without -a, as Docker's.
    assert_eq!(
        h.ok(&["ps", "--filter", "status=exited", "--format", "{{.Names}}"]),
        "done\n"
    );
    let r = h.berth(&["ps", "--filter", "colour=red"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("colour"), "{}", r.stderr);
    let r = h.berth(&["ps", "--filter", "status=sleepy"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("sleepy"), "{}", r.stderr);
}

#[test]
fn bad_templates_are_one_line_of_error() {
    let h = setup();
    let fails = |args: &[&str]| {
        let r = h.berth(args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert_eq!(r.stdout, "", "{args:?}");
        r.stderr
    };
    assert_eq!(
        fails(&["network", "ls", "--format", "{{.Name"]),
        "berth: template parsing error: 1:1: unclosed action\n"
    );
    assert_eq!(
        fails(&["network", "ls", "--format", "{{.Name}"]),
        "berth: template parsing error: 1:8: unexpected \"}\" in operand\n"
    );
    assert_eq!(
        fails(&["ps", "--format", "table {{.Names}}\\t{{if .State}}"]),
        "berth: template parsing error: 1:12: unexpected EOF: {{if}} has no {{end}}\n"
    );
    assert_eq!(
        fails(&["inspect", "-f", "{{nosuch .}}", "web"]),
        "berth: template parsing error: 1:3: function \"nosuch\" not defined\n"
    );
    assert_eq!(
        fails(&["network", "inspect", "-f", "{{end}}", "fmtnet"]),
        "berth: template parsing error: 1:1: unexpected {{end}}\n"
    );
    // A placeholder `ps` does not have fails as Docker's struct would.
    assert_eq!(
        fails(&["ps", "--format", "{{.Nope}}"]),
        "berth: template: 1:1: executing at <.Nope>: can't evaluate field Nope\n"
    );
    assert_eq!(
        fails(&["inspect", "-f", "{{index .Name 1}}", "web"]),
        "berth: template: 1:1: error calling index: can't index item of type string with number\n"
    );
}
