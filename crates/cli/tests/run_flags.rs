//! Docker habits on `run` and `exec`: an unknown flag before the command
//! is an error naming it (exit 125, nothing created); `-e`, `--env-file`,
//! `-w`, `-u` set the command's environment, directory and user, in the
//! foreground, with `-d` and in `exec`; `--mac-address` on `run` and
//! `network connect`.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_testkit::TestHost;
use serde_json::Value;

fn host() -> TestHost {
    TestHost::new(Path::new(env!("CARGO_BIN_EXE_berth")))
}

/// Runs berth, which must fail with `code` and exactly the line `want`
/// and leave no container behind.
fn refused(h: &TestHost, args: &[&str], code: i32, want: &str) {
    let r = h.berth(args);
    assert_eq!(r.code, code, "berth {args:?}: {}", r.stderr);
    assert_eq!(r.stderr, format!("{want}\n"), "berth {args:?}");
    assert_eq!(
        h.ok(&["ps", "-a", "-q"]),
        "",
        "berth {args:?} created a container"
    );
}

#[test]
fn unknown_flags_before_the_command_are_refused() {
    let h = host();
    let no_volumes = "berth runs host commands and has no images or volumes";
    for (args, want) in [
        (
            vec!["-v", "/a:/b", "--", "true"],
            format!("unknown flag -v for run: {no_volumes}"),
        ),
        (
            vec!["--volume=/a:/b", "true"],
            format!("unknown flag --volume for run: {no_volumes}"),
        ),
        (
            vec!["--mount", "x", "true"],
            format!("unknown flag --mount for run: {no_volumes}"),
        ),
        (
            vec!["--privileged", "--", "true"],
            "unknown flag --privileged for run: berth isolates the network, not privileges: \
             the command runs with berth's own"
                .into(),
        ),
        (
            vec!["--restart", "always", "true"],
            "unknown flag --restart for run: berth does not restart containers".into(),
        ),
        (
            vec!["-m", "1g", "true"],
            "unknown flag -m for run: berth sets no resource limits".into(),
        ),
        (
            vec!["--cpus", "2", "true"],
            "unknown flag --cpus for run: berth sets no resource limits".into(),
        ),
        (
            vec!["--frobnicate", "--", "true"],
            "unknown flag --frobnicate for run: options come before the command; \
             see `berth run --help`"
                .into(),
        ),
    ] {
        let mut argv = vec!["run"];
        argv.extend(&args);
        refused(&h, &argv, 125, &format!("berth: {want}"));
    }
    refused(
        &h,
        &["exec", "--frobnicate", "c1", "true"],
        125,
        "berth: unknown flag --frobnicate for exec: options come before the command; \
         see `berth exec --help`",
    );
    // The first word that is not an option starts the command, with or
    // without `--`; what follows it is the command's.
    assert_eq!(h.ok(&["run", "--rm", "echo", "-e", "a", "-v"]), "a -v\n");
    assert_eq!(h.ok(&["run", "--rm", "--", "echo", "-n", "b"]), "b");
    assert_eq!(h.ok(&["ps", "-a", "-q"]), "");
}

#[test]
fn env_workdir_and_user_reach_the_command() {
    let h = host();
    let dir = tempdir();
    let file = dir.join("env.list");
    std::fs::write(
        &file,
        "# a comment\n\nFROM_FILE=file value\nBOTH=from file\n  INDENTED=yes\nPASSED\nUNSET_HERE\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let show =
        "echo \"$FOO|$FROM_FILE|$BOTH|$INDENTED|$PASSED|${UNSET_HERE-unset}|$EMPTY.\"; pwd; id -u; id -g";
    let mut cmd = h.berth_cmd(&[
        "run",
        "--rm",
        "-e",
        "FOO=bar=baz",
        "--env-file",
        file,
        "-e",
        "BOTH=from -e",
        "--env",
        "EMPTY=",
        "-e",
        "PASSED",
        "-w",
        "/tmp",
        "-u",
        "nobody:nogroup",
        "--",
        "sh",
        "-c",
        show,
    ]);
    cmd.env("PASSED", "from the client").env_remove("UNSET_HERE");
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "bar=baz|file value|from -e|yes|from the client|unset|.\n/tmp\n65534\n65534\n"
    );
    // Numeric ids need not be in /etc/passwd; -d and exec take the same flags.
    h.ok(&[
        "run",
        "-d",
        "--name",
        "d1",
        "-e",
        "FOO=detached",
        "-w",
        "/",
        "-u",
        "4242:4343",
        "--",
        "sh",
        "-c",
        "echo \"$FOO $(pwd) $(id -u) $(id -g)\"; exec sleep 600",
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let logs = loop {
        let logs = h.ok(&["logs", "d1"]);
        if !logs.is_empty() || Instant::now() > deadline {
            break logs;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(logs, "detached / 4242 4343\n");
    assert_eq!(
        h.ok(&[
            "exec",
            "-e",
            "X=1",
            "-w",
            "/tmp",
            "-u",
            "daemon",
            "d1",
            "sh",
            "-c",
            "echo $X $(pwd) $(id -un) $HOME"
        ]),
        format!("1 /tmp daemon {}\n", home_of("daemon"))
    );
    // A restart runs the command again with the same environment,
    // directory and user, as Docker keeps them in the container's config.
    h.ok(&["restart", "-t", "1", "d1"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let logs = loop {
        let logs = h.ok(&["logs", "d1"]);
        if logs.lines().count() >= 2 || Instant::now() > deadline {
            break logs;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(logs, "detached / 4242 4343\ndetached / 4242 4343\n");
    h.ok(&["rm", "-f", "d1"]);
}

#[test]
fn bad_env_workdir_and_user_are_one_line_and_create_nothing() {
    let h = host();
    let dir = tempdir();
    let missing = dir.join("missing.env");
    let missing = missing.to_str().unwrap();
    let bad = dir.join("bad.env");
    std::fs::write(&bad, "OK=1\nA B=2\n").unwrap();
    let bad = bad.to_str().unwrap();
    let file = dir.join("a-file");
    std::fs::write(&file, "").unwrap();
    let file = file.to_str().unwrap();
    for (args, want) in [
        (
            vec!["--env-file", missing],
            format!("berth: reading --env-file {missing}: No such file or directory (os error 2)"),
        ),
        (
            vec!["--env-file", bad],
            format!(
                "berth: invalid variable on line 2 of {bad} \"A B=2\" \
                 (accepted: KEY=VALUE or KEY, KEY without spaces)"
            ),
        ),
        (
            vec!["-e", "=x"],
            "berth: invalid --env \"=x\" (accepted: KEY=VALUE or KEY, KEY without spaces)".into(),
        ),
        (
            vec!["-w", "/nonexistent-berth-dir"],
            "berth: invalid --workdir \"/nonexistent-berth-dir\": No such file or directory (os error 2)"
                .into(),
        ),
        (
            vec!["-w", file],
            format!("berth: invalid --workdir {file:?}: not a directory"),
        ),
        (
            vec!["-u", "no-such-user-berth"],
            "berth: invalid --user \"no-such-user-berth\": no user \"no-such-user-berth\" on this host"
                .into(),
        ),
        (
            vec!["-u", "nobody:no-such-group-berth"],
            "berth: invalid --user \"nobody:no-such-group-berth\": no group \"no-such-group-berth\" on this host"
                .into(),
        ),
    ] {
        let mut argv = vec!["run", "-d"];
        argv.extend(&args);
        argv.extend(["--", "true"]);
        refused(&h, &argv, 1, &want);
    }
}

fn home_of(user: &str) -> String {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f[0] == user)
        .map(|f| f[5].to_owned())
        .unwrap()
}

/// A fresh directory for this test's files.
/// A directory of the test's own, removed when the test ends, also when
/// it fails.
struct TempDir(std::path::PathBuf);

impl std::ops::Deref for TempDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> TempDir {
    let d = std::env::temp_dir().join(format!(
        "berth-run-flags-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

#[test]
fn mac_address_on_run_and_connect() {
    let h = host();
    h.ok(&[
        "run",
        "-d",
        "--name",
        "m1",
        "--mac-address",
        "02:42:AA:bb:cc:01",
        "--",
        "sleep",
        "600",
    ]);
    let link = h.ok(&["exec", "m1", "ip", "-o", "link", "show", "eth0"]);
    assert!(link.contains("link/ether 02:42:aa:bb:cc:01 "), "{link}");
    assert_eq!(
        inspect(&h, "m1")["NetworkSettings"]["Networks"]["bridge"]["MacAddress"],
        "02:42:aa:bb:cc:01"
    );
    h.ok(&["network", "create", "--subnet", "10.77.0.0/24", "macs"]);
    h.ok(&[
        "network",
        "connect",
        "--mac-address",
        "06:00:00:00:00:07",
        "macs",
        "m1",
    ]);
    let link = h.ok(&["exec", "m1", "ip", "-o", "link", "show", "eth1"]);
    assert!(link.contains("link/ether 06:00:00:00:00:07 "), "{link}");
    assert_eq!(
        inspect(&h, "m1")["NetworkSettings"]["Networks"]["macs"]["MacAddress"],
        "06:00:00:00:00:07"
    );
    // A restart keeps the MACs that were asked for.
    h.ok(&["restart", "-t", "1", "m1"]);
    for (ifname, mac) in [("eth0", "02:42:aa:bb:cc:01"), ("eth1", "06:00:00:00:00:07")] {
        let link = h.ok(&["exec", "m1", "ip", "-o", "link", "show", ifname]);
        assert!(
            link.contains(&format!("link/ether {mac} ")),
            "after restart: {link}"
        );
    }
    h.ok(&["network", "disconnect", "macs", "m1"]);
    let ps = h.ok(&["ps", "-a", "-q"]);
    let accepted = "(accepted: a unicast MAC address such as 02:42:ac:11:00:05)";
    for bad in [
        "01:00:5e:00:00:01",
        "ff:ff:ff:ff:ff:ff",
        "00:00:00:00:00:00",
        "02:42:ac:11:00",
        "banana",
    ] {
        let want = format!("berth: invalid --mac-address {bad:?} {accepted}");
        let r = h.berth(&["run", "-d", "--mac-address", bad, "--", "true"]);
        assert_eq!((r.code, r.stderr), (1, format!("{want}\n")));
        let r = h.berth(&["network", "connect", "--mac-address", bad, "macs", "m1"]);
        assert_eq!((r.code, r.stderr), (1, format!("{want}\n")));
    }
    let r = h.berth(&[
        "run",
        "-d",
        "--network",
        "host",
        "--mac-address",
        "02:00:00:00:00:01",
        "true",
    ]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            1,
            "berth: --mac-address: network host gives containers no interface of their own\n"
        )
    );
    assert_eq!(h.ok(&["ps", "-a", "-q"]), ps, "a refused run created a container");
    assert!(
        inspect(&h, "m1")["NetworkSettings"]["Networks"]
            .get("macs")
            .is_none(),
        "a refused connect connected"
    );
    h.ok(&["rm", "-f", "m1"]);
}

fn inspect(h: &TestHost, c: &str) -> Value {
    let v: Value = serde_json::from_str(&h.ok(&["inspect", c])).expect("inspect prints JSON");
    v[0].clone()
}
