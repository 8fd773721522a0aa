//! The kernel of the VM: Debian's stock `linux-image-*-amd64`, downloaded
//! once into `target/vmtest/`, its image unpacked to an ELF vmlinux, and
//! the modules the tests need with everything they depend on.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// The metapackage whose dependency names the current kernel package.
const META: &str = "linux-image-amd64";

/// What the tests need that Debian builds as modules, loaded at boot with
/// their dependencies: the link kinds of every berth driver, and what the
/// `inet berth` nftables table and `nft` use (kept close to the machine's
/// own kernel, which has all of this built in). Modules the kernel has
/// built in are skipped; a name that is neither is an error.
pub const MODULES: &[&str] = &[
    // links
    "veth",
    "bridge",
    "br_netfilter",
    "macvlan",
    "ipvlan",
    "8021q",
    "vxlan",
    "geneve",
    // nftables and conntrack
    "nf_tables",
    "nf_conntrack",
    "nf_conntrack_netlink",
    "nf_nat",
    "nf_defrag_ipv4",
    "nf_defrag_ipv6",
    "nf_reject_ipv4",
    "nf_reject_ipv6",
    "nft_ct",
    "nft_chain_nat",
    "nft_nat",
    "nft_masq",
    "nft_redir",
    "nft_reject",
    "nft_reject_inet",
    "nft_fib",
    "nft_fib_inet",
    "nft_fib_ipv4",
    "nft_fib_ipv6",
    "nft_limit",
    "nft_hash",
    "nft_numgen",
    "nft_quota",
    "nft_objref",
    "nft_log",
    "nf_log_syslog",
    "nft_meta_bridge",
];

/// Loaded first, by itself: with the default `numdummies=1` it would make
/// a `dummy0` in the VM's own namespace.
pub const DUMMY: &str = "dummy";

/// An unpacked kernel package.
pub struct Kernel {
    /// `uname -r` of the kernel, e.g. `6.1.0-57-amd64`.
    pub release: String,
    /// What qemu boots: the ELF vmlinux, or the bzImage when unpacking failed.
    pub image: PathBuf,
    /// `lib/modules/RELEASE` of the package.
    pub modules: PathBuf,
}

/// The kernel package `linux-image-amd64` depends on, downloaded and
/// unpacked under `dir` unless it already is.
pub fn fetch(dir: &Path) -> Result<Kernel> {
    let pkg = package()?;
    let tree = dir.join(&pkg);
    if !tree.join(".complete").exists() {
        let deb = match cached_deb(dir, &pkg) {
            Some(deb) => deb,
            None => download(dir, &pkg)?,
        };
        extract(&deb, &tree)?;
    }
    let release = fs::read_dir(tree.join("boot"))
        .with_context(|| format!("reading {}/boot", tree.display()))?
        .flatten()
        .find_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("vmlinuz-"))
                .map(str::to_owned)
        })
        .with_context(|| format!("{pkg} has no boot/vmlinuz-*"))?;
    let modules = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|d| tree.join(d).join(&release))
        .find(|p| p.is_dir())
        .with_context(|| format!("{pkg} has no lib/modules/{release}"))?;
    let image = image(&tree, &release);
    Ok(Kernel {
        release,
        image,
        modules,
    })
}

/// `linux-image-6.1.0-57-amd64`, from `apt-cache depends linux-image-amd64`.
fn package() -> Result<String> {
    let out = Command::new("apt-cache")
        .args(["depends", META])
        .stderr(Stdio::inherit())
        .output()
        .context("running apt-cache (the VM's kernel is Debian's)")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|d| d.starts_with("linux-image-") && d.ends_with("-amd64"))
        .map(str::to_owned)
        .with_context(|| format!("apt-cache depends {META} names no kernel package: run apt-get update"))
}

fn cached_deb(dir: &Path, pkg: &str) -> Option<PathBuf> {
    let prefix = format!("{pkg}_");
    fs::read_dir(dir).ok()?.flatten().map(|e| e.path()).find(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
    })
}

fn download(dir: &Path, pkg: &str) -> Result<PathBuf> {
    eprintln!("vmtest: downloading {pkg} (once; cached in {})", dir.display());
    let mut cmd = Command::new("apt-get");
    cmd.current_dir(dir).args(["download", "-q", pkg]);
    if nix::unistd::geteuid().is_root() {
        // The _apt user cannot write into target/; download as root
        // instead of warning about it.
        cmd.args(["-o", "APT::Sandbox::User=root"]);
    }
    let st = cmd.status().context("running apt-get download")?;
    if !st.success() {
        bail!("apt-get download {pkg} failed");
    }
    cached_deb(dir, pkg).with_context(|| format!("apt-get download left no {pkg}_*.deb"))
}

/// `dpkg-deb --fsys-tarfile DEB | tar -x`, into a temporary directory
/// renamed to `tree` when complete.
fn extract(deb: &Path, tree: &Path) -> Result<()> {
    let tmp = tree.with_extension("partial");
    let _ = fs::remove_dir_all(&tmp);
    let _ = fs::remove_dir_all(tree);
    fs::create_dir_all(&tmp)?;
    let mut dpkg = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .spawn()
        .context("running dpkg-deb")?;
    let tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(&tmp)
        .stdin(dpkg.stdout.take().context("dpkg-deb's stdout")?)
        .status()
        .context("running tar")?;
    if !dpkg.wait()?.success() || !tar.success() {
        bail!("unpacking {} failed", deb.display());
    }
    fs::write(tmp.join(".complete"), "")?;
    fs::rename(&tmp, tree)?;
    Ok(())
}

/// The ELF vmlinux inside boot/vmlinuz (cached beside it): qemu boots it
/// through its PVH entry point without decompressing first, 3–4 s sooner
/// under emulation. Falls back to the bzImage itself.
fn image(tree: &Path, release: &str) -> PathBuf {
    let bz = tree.join("boot").join(format!("vmlinuz-{release}"));
    let elf = tree.join("vmlinux");
    if elf.exists() {
        return elf;
    }
    match unpack(&bz, &elf) {
        Ok(()) => elf,
        Err(e) => {
            eprintln!("vmtest: booting the bzImage ({e:#})");
            bz
        }
    }
}

fn unpack(bz: &Path, elf: &Path) -> Result<()> {
    const XZ: &[u8] = b"\xfd7zXZ\x00";
    let data = fs::read(bz).with_context(|| format!("reading {}", bz.display()))?;
    let at = data
        .windows(XZ.len())
        .position(|w| w == XZ)
        .context("no xz stream in the kernel image")?;
    let tmp = elf.with_extension("partial");
    let out = fs::File::create(&tmp)?;
    let mut xz = Command::new("xz")
        .args(["-dc", "--single-stream"])
        .stdin(Stdio::piped())
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .context("running xz (apt-get install xz-utils)")?;
    {
        use std::io::Write;
        let mut stdin = xz.stdin.take().context("xz's stdin")?;
        // xz stops reading at the end of the stream; the rest of the
        // image after it is not ours to care about.
        let _ = stdin.write_all(&data[at..]);
    }
    let st = xz.wait()?;
    let head = fs::read(&tmp)
        .map(|d| d.get(..4) == Some(b"\x7fELF"))
        .unwrap_or(false);
    if !st.success() || !head {
        let _ = fs::remove_file(&tmp);
        bail!("the xz stream of {} is not an ELF kernel", bz.display());
    }
    fs::rename(&tmp, elf)?;
    Ok(())
}

/// The modules of `kernel` that `wanted` needs, in load order (each after
/// its dependencies and the modules it asks to be loaded before it), each
/// as `(name, path relative to lib/modules/RELEASE)`.
pub fn closure(kernel: &Kernel, wanted: &[&str]) -> Result<Vec<(String, PathBuf)>> {
    let mut files = BTreeMap::new();
    index(&kernel.modules, &kernel.modules.join("kernel"), &mut files)?;
    let builtin: BTreeSet<String> = fs::read_to_string(kernel.modules.join("modules.builtin"))
        .unwrap_or_default()
        .lines()
        .filter_map(module_name)
        .collect();
    let mut walk = Walk {
        root: &kernel.modules,
        files,
        builtin,
        aliases: None,
        seen: BTreeSet::new(),
        order: Vec::new(),
    };
    for w in wanted {
        walk.visit(&normal(w))?;
    }
    Ok(walk.order)
}

struct Walk<'a> {
    root: &'a Path,
    files: BTreeMap<String, PathBuf>,
    builtin: BTreeSet<String>,
    /// Alias to module names, read from every module when first needed.
    aliases: Option<BTreeMap<String, Vec<String>>>,
    seen: BTreeSet<String>,
    order: Vec<(String, PathBuf)>,
}

impl Walk<'_> {
    fn visit(&mut self, name: &str) -> Result<()> {
        if self.builtin.contains(name) || !self.seen.insert(name.to_owned()) {
            return Ok(());
        }
        let Some(rel) = self.files.get(name).cloned() else {
            // A soft dependency may name an alias: `softdep=pre: crc32c`
            // means crc32c_generic or crc32c_intel. The generic one loads
            // on any CPU qemu emulates.
            let found = self.resolve(name)?;
            let pick = found
                .iter()
                .find(|m| m.ends_with("_generic"))
                .or(found.first())
                .with_context(|| {
                    format!("the kernel has no module {name} (neither a file, an alias nor built in)")
                })?
                .clone();
            return self.visit(&pick);
        };
        let ko = read_module(&self.root.join(&rel))?;
        // "pre: a b post: c": busybox's modprobe ignores soft
        // dependencies, so the pre ones go into the load order here.
        let softdep = modinfo(&ko, "softdep");
        let pre = softdep
            .split("post:")
            .next()
            .unwrap_or_default()
            .trim_start()
            .strip_prefix("pre:")
            .unwrap_or_default()
            .to_owned();
        let deps = modinfo(&ko, "depends");
        for dep in pre
            .split_whitespace()
            .chain(deps.split(',').filter(|d| !d.is_empty()))
        {
            self.visit(&normal(dep))?;
        }
        self.order.push((name.to_owned(), rel));
        Ok(())
    }

    /// The modules that claim `alias` (`alias=` in their modinfo). The
    /// index is built once per kernel and kept beside its modules.
    fn resolve(&mut self, alias: &str) -> Result<Vec<String>> {
        if self.aliases.is_none() {
            let cache = self.root.join("vmtest.aliases");
            let text = match fs::read_to_string(&cache) {
                Ok(t) => t,
                Err(_) => {
                    let mut t = String::new();
                    for (name, rel) in &self.files {
                        let ko = read_module(&self.root.join(rel))?;
                        for a in modinfo_all(&ko, "alias") {
                            t.push_str(&format!("{a} {name}\n"));
                        }
                    }
                    fs::write(&cache, &t)?;
                    t
                }
            };
            let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for l in text.lines() {
                if let Some((a, m)) = l.rsplit_once(' ') {
                    map.entry(a.to_owned()).or_default().push(m.to_owned());
                }
            }
            self.aliases = Some(map);
        }
        Ok(self
            .aliases
            .as_ref()
            .and_then(|m| m.get(alias))
            .cloned()
            .unwrap_or_default())
    }
}

/// Module name to path (relative to `root`) for every module under `dir`.
fn index(root: &Path, dir: &Path, files: &mut BTreeMap<String, PathBuf>) -> Result<()> {
    for e in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        if p.is_dir() {
            index(root, &p, files)?;
        } else if let Some(name) = p.to_str().and_then(module_name) {
            files.insert(name, p.strip_prefix(root)?.to_owned());
        }
    }
    Ok(())
}

/// `nf_conntrack` for `…/nf_conntrack.ko(.xz|.zst|.gz)`.
fn module_name(path: &str) -> Option<String> {
    let file = path.rsplit('/').next()?;
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
        .iter()
        .find_map(|s| file.strip_suffix(s))?;
    Some(normal(stem))
}

/// The kernel treats `-` and `_` in module names alike.
fn normal(name: &str) -> String {
    name.replace('-', "_")
}

/// The module's ELF, decompressed if the package compresses its modules
/// (busybox's modprobe loads only plain ones).
pub fn read_module(path: &Path) -> Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        Some(("xz", "xz-utils"))
    } else if name.ends_with(".zst") {
        Some(("zstd", "zstd"))
    } else if name.ends_with(".gz") {
        Some(("gzip", "gzip"))
    } else {
        None
    };
    let Some((tool, pkg)) = tool else {
        return fs::read(path).with_context(|| format!("reading {name}"));
    };
    let out = Command::new(tool)
        .args(["-dc"])
        .arg(path)
        .output()
        .with_context(|| format!("running {tool} (apt-get install {pkg})"))?;
    if !out.status.success() {
        bail!("{tool} -dc {name} failed");
    }
    Ok(out.stdout)
}

/// The value of `key` in the module's `.modinfo` section (as `modinfo -F
/// KEY` prints it); empty when absent.
fn modinfo(elf: &[u8], key: &str) -> String {
    modinfo_all(elf, key).into_iter().next().unwrap_or_default()
}

/// Every value of `key` in the module's `.modinfo` section.
fn modinfo_all(elf: &[u8], key: &str) -> Vec<String> {
    section(elf, ".modinfo")
        .unwrap_or_default()
        .split(|&b| b == 0)
        .filter_map(|kv| std::str::from_utf8(kv).ok())
        .filter_map(|kv| kv.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .map(str::to_owned)
        .collect()
}

/// The bytes of the named section of a 64-bit little-endian ELF file.
fn section<'a>(elf: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?) as usize);
    let u32_at = |o: usize| Some(u32::from_le_bytes(elf.get(o..o + 4)?.try_into().ok()?) as usize);
    let u64_at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?) as usize);
    if elf.get(..5)? != b"\x7fELF\x02" {
        return None;
    }
    let (shoff, shentsize, shnum, shstrndx) = (u64_at(0x28)?, u16_at(0x3a)?, u16_at(0x3c)?, u16_at(0x3e)?);
    let header = |i: usize| shoff + i * shentsize;
    let strtab = u64_at(header(shstrndx) + 0x18)?;
    (0..shnum).find_map(|i| {
        let h = header(i);
        let at = strtab + u32_at(h)?;
        let n = elf.get(at..)?.split(|&b| b == 0).next()?;
        if n != name.as_bytes() {
            return None;
        }
        let (off, size) = (u64_at(h + 0x18)?, u64_at(h + 0x20)?);
        elf.get(off..off + size)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_are_normalised() {
        assert_eq!(module_name("kernel/net/8021q/8021q.ko").as_deref(), Some("8021q"));
        assert_eq!(
            module_name("a/crc32c-intel.ko.zst").as_deref(),
            Some("crc32c_intel")
        );
        assert_eq!(module_name("a/modules.dep"), None);
    }
}
