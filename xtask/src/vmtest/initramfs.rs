//! The VM's whole file system: an initramfs with busybox, the real tools
//! the tests call (dash as `sh`, iproute2, nft, ping, getent), the test
//! binary and berth at the absolute paths compiled into the tests, every
//! shared library they load, the kernel modules, and `/init`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use super::cpio::Cpio;
use super::kernel::{self, DUMMY, Kernel, MODULES};

/// Programs copied from this machine into the VM's `/bin`, each with the
/// Debian package that has it. They shadow busybox's applets of the same
/// name: dash is `sh` because busybox's ash runs its own applets (its
/// `ip` lacks ipvlan and netns) before looking at PATH.
const TOOLS: &[(&str, &str, &str)] = &[
    // (name in the VM, program here, package)
    ("sh", "dash", "dash"),
    ("dash", "dash", "dash"),
    ("ip", "ip", "iproute2"),
    ("bridge", "bridge", "iproute2"),
    ("nft", "nft", "nftables"),
    ("ping", "ping", "iputils-ping"),
    ("getent", "getent", "libc-bin"),
    ("iperf3", "iperf3", "iperf3"),
];

/// What goes into the VM besides the tools.
pub struct Payload<'a> {
    /// The test executable, put at the same path as here.
    pub test: &'a Path,
    /// Its package directory (cargo runs tests from there).
    pub test_cwd: &'a Path,
    /// The berth binary, at the same path as here (the tests find it
    /// through `env!("CARGO_BIN_EXE_berth")`).
    pub berth: &'a Path,
    /// Arguments for the test binary after `--ignored --test-threads=1`.
    pub test_args: &'a [String],
}

/// Writes the initramfs to `out`, using `scratch` for stripped binaries and
/// the module tree.
pub fn build(out: &Path, scratch: &Path, kernel: &Kernel, p: &Payload<'_>) -> Result<()> {
    let mut a = Cpio::create(out).with_context(|| format!("creating {}", out.display()))?;
    for d in ["/proc", "/sys", "/dev", "/run", "/tmp", "/root", "/etc", "/bin"] {
        a.dir(d)?;
    }
    // The kernel opens /dev/console for init's stdio before anything is mounted.
    a.chardev("/dev/console", 0o600, 5, 1)?;
    // One directory of programs: PATH=/bin, and /sbin/modprobe (the
    // kernel's modprobe_path) resolves too.
    for l in ["/sbin", "/usr/bin", "/usr/sbin"] {
        a.symlink(l, if l == "/sbin" { "bin" } else { "../bin" })?;
    }
    let mut elves: Vec<PathBuf> = Vec::new();

    let busybox = program("busybox", "busybox-static")?;
    a.copy("/bin/busybox", &busybox)?;
    elves.push(busybox.clone());
    let mut tools: Vec<(&str, PathBuf)> = Vec::new();
    for (name, prog, pkg) in TOOLS {
        tools.push((name, program(prog, pkg)?));
    }
    for (name, path) in &tools {
        a.copy(&format!("/bin/{name}"), path)?;
        elves.push(path.clone());
    }
    let applets = Command::new(&busybox)
        .arg("--list")
        .output()
        .context("busybox --list")?;
    for applet in String::from_utf8_lossy(&applets.stdout).lines() {
        let path = format!("/bin/{applet}");
        if !applet.is_empty() && !a.has(&path) && applet != "busybox" {
            a.symlink(&path, "busybox")?;
        }
    }

    for (bin, what) in [(p.test, "the test binary"), (p.berth, "berth")] {
        let path = bin
            .to_str()
            .with_context(|| format!("{} is not UTF-8", bin.display()))?;
        let small = strip(bin, scratch)?;
        a.copy(path, &small).with_context(|| format!("adding {what}"))?;
        elves.push(bin.to_owned());
    }
    a.dir(&p.test_cwd.to_string_lossy())?;

    let mut libs = BTreeSet::new();
    for e in &elves {
        libs.extend(shared_libraries(e)?);
    }
    for l in &libs {
        a.copy(&l.to_string_lossy(), l)
            .with_context(|| format!("adding {}", l.display()))?;
    }

    let mut wanted = vec![DUMMY];
    wanted.extend(MODULES);
    let mods = kernel::closure(kernel, &wanted)?;
    let tree = scratch.join("modules");
    let _ = fs::remove_dir_all(&tree);
    let dest = tree.join("lib/modules").join(&kernel.release);
    for (_, rel) in &mods {
        // foo.ko.xz is stored as foo.ko: busybox modprobe loads plain modules.
        let to = dest.join(plain_ko(rel));
        fs::create_dir_all(to.parent().unwrap_or(&dest))?;
        fs::write(&to, kernel::read_module(&kernel.modules.join(rel))?)?;
    }
    for f in ["modules.builtin", "modules.builtin.modinfo", "modules.order"] {
        let src = kernel.modules.join(f);
        if src.exists() {
            fs::copy(&src, dest.join(f))?;
        }
    }
    let st = Command::new(&busybox)
        .args(["depmod", "-b"])
        .arg(&tree)
        .arg(&kernel.release)
        .status()
        .context("running busybox depmod")?;
    if !st.success() {
        bail!("busybox depmod failed on {}", tree.display());
    }
    add_tree(&mut a, &tree, &tree)?;
    let load: Vec<&str> = mods
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| *n != DUMMY)
        .collect();

    for (path, text) in ETC {
        a.file(path, 0o644, text.as_bytes())?;
    }
    a.file("/init", 0o755, init(p, &load).as_bytes())?;
    a.finish()?;
    Ok(())
}

const ETC: &[(&str, &str)] = &[
    (
        "/etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    ),
    ("/etc/group", "root:x:0:\nnogroup:x:65534:\n"),
    (
        "/etc/hosts",
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    ),
    // Never reached: the VM has no network device (-nic none).
    ("/etc/resolv.conf", "nameserver 10.0.2.3\n"),
    (
        "/etc/nsswitch.conf",
        "passwd: files\ngroup: files\nhosts: files dns\n",
    ),
    ("/etc/hostname", "vmtest\n"),
];

/// Exit codes qemu gives when /init writes these to isa-debug-exit (port
/// 0xf4): qemu exits with `(value << 1) | 1`.
pub const PASSED: i32 = (0x10 << 1) | 1;
/// See [`PASSED`].
pub const FAILED: i32 = (0x11 << 1) | 1;

/// Where VM tests append report lines (such as `CONFORMANCE …`) that /init
/// prints after the tests, out of the way of the test harness's output.
pub const REPORTS: &str = "/run/vmtest-reports";

/// The line /init prints when the modules are loaded and the tests start.
pub const READY: &str = "vmtest: ready";

/// `/init`: `load` lists the modules in load order.
fn init(p: &Payload<'_>, load: &[&str]) -> String {
    let mut args = vec![
        "--ignored".to_owned(),
        "--test-threads=1".to_owned(),
        "--color=never".to_owned(),
    ];
    args.extend(p.test_args.iter().cloned());
    let args: Vec<String> = args.iter().map(|a| quote(a)).collect();
    format!(
        r#"#!/bin/sh
# /init of cargo xtask vmtest: mount, load modules, run the tests, and
# hand their result to qemu through isa-debug-exit.
export PATH=/bin HOME=/root TMPDIR=/tmp RUST_BACKTRACE=1
echo # ends SeaBIOS's last line
# printf '\020' to I/O port 0xf4 (244): qemu exits with (0x10 << 1) | 1.
quit() {{
    printf "\\$1" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
    poweroff -f
}}
fail() {{ echo "vmtest: $*"; quit 021; }}
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
# /tmp stays on the (writable) initramfs: a checkout under /tmp brought
# its binaries there, and a tmpfs would hide them.
chmod 1777 /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/netns
hostname vmtest
ip link set lo up
modprobe {DUMMY} numdummies=0 || fail "modprobe {DUMMY} failed"
for m in {modules}; do
    modprobe $m || fail "modprobe $m failed"
done
# Keep kernel messages off the console the test results are read from.
dmesg -n 1
ulimit -n 65536
echo "{READY}: kernel $(uname -r), up $(cut -d' ' -f1 /proc/uptime) s"
cd {cwd} || fail "no {cwd}"
booted=$(dmesg | wc -l)
{test} {args}
rc=$?
echo "vmtest: the tests exited with $rc after $(cut -d' ' -f1 /proc/uptime) s of uptime"
# Reports the tests left for the host (the conformance rows).
cat {REPORTS} 2>/dev/null
if [ $rc -eq 0 ]; then quit 020; fi
echo "vmtest: kernel messages during the tests (last 40):"
dmesg | tail -n +$((booted + 1)) | tail -n 40
quit 021
"#,
        modules = load.join(" "),
        cwd = quote(&p.test_cwd.to_string_lossy()),
        test = quote(&p.test.to_string_lossy()),
        args = args.join(" "),
    )
}

/// `arg` quoted for sh.
fn quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

/// Finds `name` on PATH or in the sbin directories (not on a non-root PATH).
fn program(name: &str, package: &str) -> Result<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("{name} is not installed: apt-get install {package}"))
}

/// A copy of `bin` without debug information (a tenth of its size, so the
/// VM unpacks it in a blink), or `bin` itself when objcopy is missing.
fn strip(bin: &Path, scratch: &Path) -> Result<PathBuf> {
    let out = scratch.join(bin.file_name().context("a binary without a name")?);
    let ok = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(bin)
        .arg(&out)
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(out)
    } else {
        eprintln!(
            "vmtest: objcopy --strip-debug failed on {}: copying it whole",
            bin.display()
        );
        Ok(bin.to_owned())
    }
}

/// The shared libraries `bin` loads and its dynamic loader, as `ldd`
/// prints them; none for a static binary.
fn shared_libraries(bin: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(bin).output().context("running ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // "not a dynamic executable"
        return Ok(Vec::new());
    }
    let mut libs = Vec::new();
    for l in text.lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or
        // "/lib64/ld-linux-x86-64.so.2 (0x…)"; linux-vdso has no file.
        let path = l.split("=>").last().unwrap_or_default().trim();
        let path = path.split(" (").next().unwrap_or_default();
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        } else if l.contains("not found") {
            bail!("{}: {}", bin.display(), l.trim());
        }
    }
    Ok(libs)
}

fn plain_ko(rel: &Path) -> PathBuf {
    let s = rel.to_string_lossy();
    let plain = [".xz", ".zst", ".gz"]
        .iter()
        .find_map(|z| s.strip_suffix(z))
        .unwrap_or(&s);
    PathBuf::from(plain)
}

/// Adds every directory and file under `dir` at its path relative to `base`.
fn add_tree(a: &mut Cpio, base: &Path, dir: &Path) -> Result<()> {
    for e in fs::read_dir(dir)? {
        let p = e?.path();
        let inside = format!("/{}", p.strip_prefix(base)?.display());
        if p.is_dir() {
            a.dir(&inside)?;
            add_tree(a, base, &p)?;
        } else {
            a.copy(&inside, &p)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn compressed_modules_are_stored_plain() {
        assert_eq!(plain_ko(Path::new("k/a.ko.zst")), Path::new("k/a.ko"));
        assert_eq!(plain_ko(Path::new("k/a.ko")), Path::new("k/a.ko"));
    }
}
