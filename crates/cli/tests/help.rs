//! Help that tells the truth: `network create --help` lists the drivers one
//! can create networks with and each one's `-o` keys (from the daemon, so
//! plugins too; the built-in ones when no daemon answers), the long `-H`
//! default is said once in `berth --help` and not in every command's, and
//! `--attachable` and `network check` say what they do.

use std::path::Path;
use std::process::Command;

use berth_testkit::TestHost;

fn berth() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

/// The help's line for a driver: the one that starts with its name.
fn line<'a>(help: &'a str, driver: &str) -> &'a str {
    help.lines()
        .find(|l| l.split_whitespace().next() == Some(driver))
        .unwrap_or_else(|| panic!("no line for {driver} in:\n{help}"))
}

fn check_builtin_drivers(help: &str) {
    assert!(
        line(help, "bridge").starts_with("  bridge (default)")
            && line(help, "bridge").contains("com.docker.network.bridge.name, bridge.name,"),
        "{help}"
    );
    assert!(line(help, "macvlan").ends_with("parent, macvlan_mode"), "{help}");
    assert!(
        line(help, "ipvlan").contains("parent, ipvlan_mode, ipvlan_flag"),
        "{help}"
    );
    assert!(line(help, "overlay").contains("vxlan.id,"), "{help}");
    assert!(line(help, "cni").contains("cni.config, cni.plugin,"), "{help}");
    for one in ["host", "none"] {
        assert!(
            !help.lines().any(|l| l.starts_with(&format!("  {one} "))),
            "{one} is listed as a driver to create with:\n{help}"
        );
    }
    assert!(
        help.contains("host and none have one network each, which berth makes: use run --network host|none."),
        "{help}"
    );
}

#[test]
fn network_create_help_lists_the_drivers_and_their_options() {
    let h = TestHost::new(berth());
    let help = h.ok(&["network", "create", "--help"]);
    assert!(
        help.contains("Drivers (-d NAME) and their options (-o KEY=VALUE), as the daemon at unix://"),
        "{help}"
    );
    check_builtin_drivers(&help);
    assert_eq!(h.ok(&["help", "network", "create"]), help);
    assert_eq!(h.ok(&["network", "create", "-h"]), help);
    // Only `network create` asks the daemon.
    assert!(!h.ok(&["network", "ls", "--help"]).contains("Drivers (-d NAME)"));

    // No daemon: the built-in drivers, said as such, and none is started.
    let dir = std::env::temp_dir().join(format!("berth-help-{}", std::process::id()));
    let sock = dir.join("berth.sock");
    let out = Command::new(berth())
        .args([
            "-H",
            &format!("unix://{}", sock.display()),
            "network",
            "create",
            "--help",
        ])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        help.contains(&format!(
            "built in; no daemon answers at unix://{}, so plugins are not listed (berth plugin ls)",
            sock.display()
        )),
        "{help}"
    );
    check_builtin_drivers(&help);
    assert!(!dir.exists(), "asking for help made {}", dir.display());
}

#[test]
fn the_host_default_is_said_once_and_flags_say_what_they_do() {
    let h = TestHost::without_daemon(berth());
    let top = h.ok(&["--help"]);
    assert!(
        top.contains("by default $BERTH_HOST, else unix://$BERTH_EXEC_ROOT/berth.sock, else unix:///run/berth/berth.sock"),
        "{top}"
    );
    for cmd in [
        &["network", "ls", "--help"][..],
        &["network", "create", "--help"],
        &["ps", "--help"],
        &["daemon", "--help"],
        &["plugin", "ls", "--help"],
    ] {
        let help = h.ok(cmd);
        assert!(help.contains("-H, --host <HOST>"), "{help}");
        assert!(
            !help.contains("BERTH_EXEC_ROOT/berth.sock"),
            "{cmd:?} repeats the -H default:\n{help}"
        );
    }
    let create = h.ok(&["network", "create", "--help"]);
    assert!(
        create.contains("--attachable") && create.contains("recorded and shown by inspect"),
        "{create}"
    );
    let check = h.ok(&["network", "check", "--help"]);
    assert!(
        check.starts_with("For cni networks: check that every container"),
        "{check}"
    );
}
