//! A writer of the `newc` cpio archives the kernel unpacks as its initramfs
//! (`Documentation/driver-api/early-userspace/buffer-format.rst`). Writing
//! it here lets the archive hold device nodes and root-owned files without
//! root or the cpio tool.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// An archive being written. Entries are named by absolute paths; missing
/// parent directories are added first, and a path given twice is kept once.
pub struct Cpio {
    out: BufWriter<File>,
    ino: u32,
    names: BTreeSet<String>,
}

const REG: u32 = 0o100_000;
const DIR: u32 = 0o040_000;
const LNK: u32 = 0o120_000;
const CHR: u32 = 0o020_000;

impl Cpio {
    /// Starts an archive at `path`.
    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(Self {
            out: BufWriter::with_capacity(1 << 20, File::create(path)?),
            ino: 0,
            names: BTreeSet::new(),
        })
    }

    /// Whether `path` is in the archive already.
    pub fn has(&self, path: &str) -> bool {
        self.names.contains(path.trim_start_matches('/'))
    }

    /// A directory, like `mkdir -p PATH`.
    pub fn dir(&mut self, path: &str) -> io::Result<()> {
        if self.begin(path)? {
            self.header(path, DIR | 0o755, 0, (0, 0))?;
        }
        Ok(())
    }

    /// A regular file holding `data`.
    pub fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        if self.begin(path)? {
            self.header(path, REG | mode, data.len(), (0, 0))?;
            self.out.write_all(data)?;
            self.pad(data.len())?;
        }
        Ok(())
    }

    /// A copy of the file `src` (symbolic links followed), keeping its mode.
    pub fn copy(&mut self, path: &str, src: &Path) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(src)?.permissions().mode() & 0o7777;
        let data = std::fs::read(src)?;
        self.file(path, mode, &data)
    }

    /// A symbolic link at `path` pointing to `target`.
    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        if self.begin(path)? {
            self.header(path, LNK | 0o777, target.len(), (0, 0))?;
            self.out.write_all(target.as_bytes())?;
            self.pad(target.len())?;
        }
        Ok(())
    }

    /// A character device, like `mknod PATH c MAJOR MINOR`.
    pub fn chardev(&mut self, path: &str, mode: u32, major: u32, minor: u32) -> io::Result<()> {
        if self.begin(path)? {
            self.header(path, CHR | mode, 0, (major, minor))?;
        }
        Ok(())
    }

    /// Writes the trailer and flushes.
    pub fn finish(mut self) -> io::Result<()> {
        self.header("TRAILER!!!", 0, 0, (0, 0))?;
        self.out.flush()
    }

    /// Adds the parents of `path`; false when `path` itself is there already.
    fn begin(&mut self, path: &str) -> io::Result<bool> {
        let name = path.trim_start_matches('/');
        if name.is_empty() || self.names.contains(name) {
            return Ok(false);
        }
        if let Some((parent, _)) = name.rsplit_once('/') {
            self.dir(parent)?;
        }
        self.names.insert(name.to_owned());
        Ok(true)
    }

    fn header(&mut self, path: &str, mode: u32, size: usize, rdev: (u32, u32)) -> io::Result<()> {
        let name = path.trim_start_matches('/');
        let size = u32::try_from(size).map_err(|_| io::Error::other(format!("{path}: over 4 GiB")))?;
        self.ino += 1;
        let nlink = if mode & DIR == DIR { 2 } else { 1 };
        let fields = [
            self.ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            size,
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        write!(self.out, "070701")?;
        for f in fields {
            write!(self.out, "{f:08X}")?;
        }
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(&[0])?;
        self.pad(110 + name.len() + 1)
    }

    /// Pads to the next multiple of 4 bytes, after `len` bytes.
    fn pad(&mut self, len: usize) -> io::Result<()> {
        self.out.write_all(&[0; 3][..(4 - len % 4) % 4])
    }
}
