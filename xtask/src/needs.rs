//! What the demo and the tests use besides berth, and installing what is
//! missing with `apt-get` (Debian's names), saying so in one line. berth
//! itself needs none of it at run time.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// A program or file something uses, and the Debian package that has it.
pub struct Need {
    /// A program looked up in `PATH`, or an absolute path.
    pub what: &'static str,
    /// The package that provides it.
    pub package: &'static str,
}

const fn need(what: &'static str, package: &'static str) -> Need {
    Need { what, package }
}

/// What building berth needs besides Rust: etcd-client's build script
/// compiles etcd's protocol with `protoc`, which imports protobuf's own
/// well-known types (not in `protobuf-compiler` itself).
const PROTOC: Need = need("protoc", "protobuf-compiler");
const PROTOS: Need = need("/usr/include/google/protobuf/descriptor.proto", "libprotobuf-dev");

/// What `cargo xtask demo` builds berth with and runs inside its
/// containers and host.
pub const DEMO: &[Need] = &[
    PROTOC,
    PROTOS,
    need("ip", "iproute2"),
    need("ping", "iputils-ping"),
];

/// What the tests run beside berth: to build their worlds, to look at the
/// kernel, as the programs inside containers, and as berth's peers and
/// clients (CNI plugins, the docker CLI, docker-py).
pub const TESTS: &[Need] = &[
    PROTOC,
    PROTOS,
    need("ip", "iproute2"),
    need("ping", "iputils-ping"),
    need("pgrep", "procps"),
    need("nft", "nftables"),
    need("iptables", "iptables"),
    need("/usr/lib/cni/bridge", "containernetworking-plugins"),
    need("/usr/bin/docker", "docker.io"),
    need(
        "/usr/lib/python3/dist-packages/docker/__init__.py",
        "python3-docker",
    ),
    // The cluster store of the overlay tests, its client, and the
    // certificates of its TLS test.
    need("etcd", "etcd-server"),
    need("etcdctl", "etcd-client"),
    need("openssl", "openssl"),
];

/// What `cargo xtask demo overlay` uses besides the demo's own: etcd, and
/// etcdctl to show what berth keeps in it.
pub const DEMO_OVERLAY: &[Need] = &[need("etcd", "etcd-server"), need("etcdctl", "etcd-client")];

/// What `cargo xtask vmtest` builds its VM from.
pub const VM: &[Need] = &[
    need("busybox", "busybox-static"),
    need("qemu-system-x86_64", "qemu-system-x86"),
    need("xz", "xz-utils"),
    // The data path test's traffic.
    need("iperf3", "iperf3"),
];

fn present(what: &str) -> bool {
    if what.starts_with('/') {
        return Path::new(what).exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(what).is_file()))
}

/// Installs the packages of whatever in `needs` is missing, in one
/// `apt-get install`, after saying so in one line; `what_for` names who
/// needs them ("the demo", "the tests").
pub fn ensure(needs: &[Need], what_for: &str) -> Result<()> {
    let missing: Vec<&Need> = needs.iter().filter(|n| !present(n.what)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut packages: Vec<&str> = missing.iter().map(|n| n.package).collect();
    packages.sort_unstable();
    packages.dedup();
    let programs: Vec<&str> = missing
        .iter()
        .map(|n| n.what.rsplit('/').next().unwrap_or(n.what))
        .collect();
    println!(
        "xtask: installing {} with apt-get (missing here: {}; used by {what_for})",
        packages.join(" "),
        programs.join(", ")
    );
    let apt = |args: &[&str]| -> Result<()> {
        let out = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .context("running apt-get (is this Debian?)")?;
        if !out.status.success() {
            bail!(
                "apt-get {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    };
    // A fresh machine may have no package lists yet.
    apt(&["update", "-qq"])?;
    let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
    args.extend(&packages);
    apt(&args)?;
    if let Some(n) = needs.iter().find(|n| !present(n.what)) {
        bail!("{} is still missing after installing {}", n.what, n.package);
    }
    Ok(())
}
