//! A real Podman (Debian's 4.3, `--network-backend cni`) puts a container
//! on a berth network through berth's CNI plugin, and it reaches a berth
//! container by name and back.
//!
//! Podman runs in the test host's network namespace and in a private mount
//! namespace with tmpfs on `/run`, `/var/lib` and `/var/tmp`, so that its
//! namespaces (`/run/netns`), libcni's cache (`/var/lib/cni`) and its
//! temporary files never land on the machine; its storage, run root, CNI
//! configuration and plugin directories are under the test's root. The
//! image is `podman import` of a tar of busybox-static and its links.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use berth_testkit::{Run, TestHost, in_netns};

fn berth() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_berth"))
}

/// Where Debian's busybox-static puts its binary.
const BUSYBOX: &str = "/bin/busybox";

/// Fails loudly, naming what is missing, when Podman cannot run here.
fn require(prog: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "PODMAN TEST CANNOT RUN: {prog} is missing (apt-get install -y {package})"
    );
}

/// A tar of a root holding busybox-static and links to the applets used.
fn image_tar(dir: &Path) -> std::path::PathBuf {
    let img = dir.join("img");
    fs::create_dir_all(img.join("bin")).unwrap();
    fs::copy(BUSYBOX, img.join("bin/busybox")).expect("copying busybox (apt-get install busybox-static)");
    for applet in ["sh", "ping", "sleep", "ip", "cat", "nslookup", "hostname"] {
        std::os::unix::fs::symlink("busybox", img.join("bin").join(applet)).unwrap();
    }
    let tar = dir.join("busybox.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&img)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success(), "tar of the image root failed");
    tar
}

#[test]
fn a_podman_container_and_a_berth_container_reach_each_other_by_name() {
    require("podman", "podman");
    require("conmon", "conmon");
    require("runc", "runc");
    let h = TestHost::new(berth());
    let before = h.kernel_state();
    h.ok(&["network", "create", "--subnet", "10.78.0.0/24", "shared"]);
    h.run_sleeper("bb", "shared");
    let bb = h.address("bb", "shared");

    let dir = h.root.join("podman");
    for d in ["root", "runroot", "cni", "plugins", "tmp"] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    // The plugin: the berth binary itself under the name of its type.
    std::os::unix::fs::symlink(berth(), dir.join("plugins/berth")).unwrap();
    fs::write(
        dir.join("cni/shared.conflist"),
        format!(
            r#"{{"cniVersion": "1.0.0", "name": "shared", "plugins": [
                {{"type": "berth", "network": "shared", "host": "unix://{}",
                  "capabilities": {{"portMappings": true, "aliases": true}}}}]}}"#,
            h.socket.display()
        ),
    )
    .unwrap();
    // Podman 4.3 has no flag for the plugin directories: containers.conf.
    fs::write(
        dir.join("containers.conf"),
        format!(
            "[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{}\"]\nnetwork_config_dir = \"{}\"\n",
            dir.join("plugins").display(),
            dir.join("cni").display()
        ),
    )
    .unwrap();
    let tar = image_tar(&dir);
    let tar = tar.display();
    let d = dir.display();
    let podman = format!(
        "podman --root {d}/root --runroot {d}/runroot --tmpdir {d}/tmp --network-backend cni \
         --cni-config-dir {d}/cni --cgroup-manager cgroupfs --events-backend file \
         --storage-driver vfs --runtime runc"
    );
    let berth_cli = format!("{} -H unix://{}", berth().display(), h.socket.display());
    // Podman's default limits on open files and processes are above
    // this machine's hard limits, which runc then fails to set.
    let limits = "--ulimit nofile=1024:1024 --ulimit nproc=1024:1024";
    let script = format!(
        r#"
set -u
# busybox's mount: util-linux's would lock /run/mount/utab on the machine's /run first.
M="{BUSYBOX} mount -t tmpfs tmpfs"
$M /run && mkdir -p /run/netns && $M /var/lib && $M /var/tmp || {{ echo "STEP mounts failed"; exit 1; }}
export CONTAINERS_CONF={d}/containers.conf TMPDIR={d}/tmp
P="{podman}"
$P import {tar} localhost/bb:latest >/dev/null || {{ echo "STEP import failed"; exit 1; }}
$P run -d --name pc --network shared --network-alias pcalias {limits} localhost/bb:latest sleep 600 || {{ echo "STEP run failed"; exit 1; }}
echo "STEP running"
$P exec pc ip -o -4 addr show eth0 | sed 's/^/ADDR /'
$P exec pc cat /etc/resolv.conf | sed 's/^/RESOLV /'
$P exec pc ping -c1 -W2 {bb} >/dev/null && echo "OK podman->berth by address"
$P exec pc ping -c1 -W2 bb >/dev/null && echo "OK podman->berth by name"
{berth_cli} exec bb -- ping -c1 -W2 pc >/dev/null && echo "OK berth->podman by name"
{berth_cli} exec bb -- ping -c1 -W2 pcalias >/dev/null && echo "OK berth->podman by alias"
{berth_cli} ps --format '{{{{.Names}}}} {{{{.Networks}}}}' | sed 's/^/PS /'
$P rm -f -t 0 pc >/dev/null || echo "STEP rm failed"
{berth_cli} ps -a --format '{{{{.Names}}}}' | sed 's/^/AFTER /'
echo "STEP done"
"#
    );
    // Bounded: the whole script gets three minutes.
    let mut cmd = Command::new("timeout");
    cmd.args([
        "180",
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
    ])
    .stdin(Stdio::null());
    in_netns(&mut cmd, &h.ns).unwrap();
    let r: Run = cmd.output().expect("running podman's script").into();
    let said = format!("stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    let has = |l: &str| lines.contains(&l);
    assert!(
        has("STEP running"),
        "PODMAN COULD NOT RUN A CONTAINER ON THE BERTH NETWORK:\n{said}"
    );
    let addr = lines
        .iter()
        .find_map(|l| l.strip_prefix("ADDR "))
        .unwrap_or_default();
    assert!(
        addr.contains("10.78.0."),
        "the podman container's address: {said}"
    );
    assert!(has("OK podman->berth by address"), "{said}");
    assert!(has("OK berth->podman by name"), "{said}");
    assert!(has("OK berth->podman by alias"), "{said}");
    assert!(
        has("PS pc shared"),
        "berth ps should list the podman container: {said}"
    );
    assert!(has("OK podman->berth by name"), "{said}");
    assert!(has("STEP done"), "{said}");
    assert!(
        !lines.iter().any(|l| l.starts_with("AFTER pc")),
        "podman rm left the attachment in berth: {said}"
    );
    h.ok(&["rm", "-f", "bb"]);
    h.ok(&["network", "rm", "shared"]);
    assert_eq!(h.kernel_state(), before, "something was left behind");
}
