//! Loading a shared-library plugin: its entry point, ABI version, name
//! and capabilities, each checked before the next is read; and the calls
//! into it, blocking or through `call_async`.

use std::ffi::CStr;
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_plugin::abi::{ABI_VERSION, EntryFn, MIN_ABI_VERSION, PluginV1, PluginV2, SYMBOL};
use berth_plugin::protocol::CapabilitiesResponse;

use super::answers::{capabilities, decode};
use super::driver::SharedPlugin;
use super::library::Lib;
use crate::plugins::{Found, PluginConfig, PluginInfo, one_line, show_duration, timeout};

/// What `plugin ls` calls this transport.
pub const TRANSPORT: &str = "shared-library";

/// Loads the shared-library plugins of the plugin directories, in file
/// name order. Directories that do not exist are skipped.
pub async fn discover(cfg: &PluginConfig) -> Vec<Found> {
    let timeout = timeout();
    let mut found = Vec::new();
    for dir in &cfg.plugin_dirs {
        let Ok(rd) = std::fs::read_dir(dir) else { continue };
        let mut files: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "so") && p.is_file())
            .collect();
        files.sort();
        for path in files {
            let p = path.clone();
            // dlopen runs the library's initialisers, and the entry point is
            // the plugin's code: both off the runtime, both bounded.
            let loading = tokio::task::spawn_blocking(move || load(&p, timeout));
            found.push(match tokio::time::timeout(timeout, loading).await {
                Ok(Ok(f)) => f,
                Ok(Err(e)) => refused(&path, None, format!("refused: loading it failed: {e}")),
                Err(_) => refused(
                    &path,
                    None,
                    format!(
                        "refused: loading it and calling {SYMBOL} did not finish within {}",
                        show_duration(timeout)
                    ),
                ),
            });
        }
    }
    found
}

/// The driver name a library would have, for listing one that did not load.
fn stem(path: &Path) -> String {
    let s = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    s.strip_prefix("lib").map(str::to_owned).unwrap_or(s)
}

fn refused(path: &Path, abi: Option<u32>, status: String) -> Found {
    Found {
        info: PluginInfo {
            name: stem(path),
            transport: TRANSPORT.into(),
            path: path.display().to_string(),
            abi,
            status,
        },
        driver: None,
    }
}

/// The message of a libloading error (its `dlerror` text, where there is one).
fn dl_error(e: &libloading::Error) -> String {
    match std::error::Error::source(e) {
        Some(s) => one_line(&s.to_string()),
        None => e.to_string(),
    }
}

/// A plugin's name that cannot be a `-d` value.
#[derive(Debug, thiserror::Error)]
#[error("driver name {:?} is not valid (accepted: 1-64 of a-z, 0-9, '-', '_', '.')", one_line(.0))]
struct InvalidName(String);

/// Whether a plugin's name can be a `-d` value.
fn check_name(name: &str) -> std::result::Result<(), InvalidName> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(InvalidName(name.to_owned()))
    }
}

/// Loads one library and checks it; blocking.
fn load(path: &Path, timeout: Duration) -> Found {
    use libloading::os::unix::{Library as Unix, RTLD_LOCAL, RTLD_NOW};
    let Some(file) = path.to_str() else {
        return refused(path, None, "refused: its path is not UTF-8".into());
    };
    // SAFETY: dlopen runs the library's initialisers. A file in a plugin
    // directory is trusted code that the administrator installed for this
    // daemon; Rust cdylibs (what export_driver! makes) have none that
    // matter. Without RTLD_NODELETE yet: a library refused before its
    // entry point runs is unloaded again, so that a fixed file can be
    // loaded on a reload.
    let lib = match unsafe { Unix::open(Some(file), RTLD_NOW | RTLD_LOCAL) } {
        Ok(lib) => libloading::Library::from(lib),
        Err(e) => return refused(path, None, format!("refused: cannot load it: {}", dl_error(&e))),
    };
    // SAFETY: the symbol is declared by the ABI with exactly this type: an
    // `extern "C"` function without arguments returning a pointer.
    let entry: EntryFn = match unsafe { lib.get::<EntryFn>(SYMBOL) } {
        Ok(f) => *f,
        Err(_) => return refused(path, None, format!("refused: no {SYMBOL} symbol")),
    };
    // From here on the library's own code has run and may have started
    // threads that run it still: it is never closed, refused or not
    // (closing it would unmap the code under them and crash the daemon).
    // Only the handle leaks; a reload finds the same library loaded.
    let lib = ManuallyDrop::new(lib);
    // SAFETY: calling the entry point as the ABI declares it; the plugin
    // catches its own panics (a library that does not aborts the daemon:
    // Rust stops unwinding at an `extern "C"` boundary).
    let table = unsafe { entry() };
    if table.is_null() {
        return refused(
            path,
            None,
            format!("refused: {SYMBOL} returned no table (the plugin did not start)"),
        );
    }
    // SAFETY: non-null, and every version of the table starts with its
    // `u32` version, which must be read before anything else.
    let abi = unsafe { table.cast::<u32>().read() };
    if !(MIN_ABI_VERSION..=ABI_VERSION).contains(&abi) {
        return refused(
            path,
            Some(abi),
            format!("refused: ABI version {abi}, this berth speaks {MIN_ABI_VERSION} to {ABI_VERSION}"),
        );
    }
    // SAFETY: every version starts with the fields of `PluginV1`, valid
    // while the library is loaded (and it stays loaded while `lib` lives).
    let t: &PluginV1 = unsafe { &*table };
    let call_async = if abi >= 2 {
        // SAFETY: version 2 is laid out as `PluginV2`, whose first field is
        // the `PluginV1` above; the pointer is the whole table's.
        unsafe { (*table.cast::<PluginV2>()).call_async }
    } else {
        None
    };
    let (Some(call), Some(free)) = (t.call, t.free) else {
        return refused(
            path,
            Some(abi),
            "refused: its table has no call or no free function".into(),
        );
    };
    let text = |p: *const std::ffi::c_char| {
        (!p.is_null()).then(|| {
            // SAFETY: non-null pointers in the table are NUL-terminated
            // strings owned by the plugin for as long as it is loaded.
            let s = unsafe { CStr::from_ptr(p) };
            s.to_string_lossy().into_owned()
        })
    };
    let Some(name) = text(t.name) else {
        return refused(path, Some(abi), "refused: its table has no name".into());
    };
    if let Err(why) = check_name(&name) {
        return refused(path, Some(abi), format!("refused: {why}"));
    }
    let caps = text(t.capabilities).unwrap_or_default();
    let refusal = |why: &dyn std::fmt::Display| format!("refused: {}", one_line(&why.to_string()));
    let caps = match decode::<CapabilitiesResponse>(&name, "its capabilities", Some(caps.as_bytes()))
        .map(|c| capabilities(&c))
    {
        Ok(Ok(c)) => c,
        Ok(Err(why)) => return refused(path, Some(abi), refusal(&why)),
        Err(why) => return refused(path, Some(abi), refusal(&why)),
    };
    // Pin it: RTLD_NOLOAD only raises the count of the library already
    // loaded, and RTLD_NODELETE keeps it mapped after every handle closed.
    // SAFETY: the library is loaded already; no initialiser runs again.
    if let Err(e) = unsafe {
        Unix::open(
            Some(file),
            RTLD_NOW | RTLD_LOCAL | libc::RTLD_NOLOAD | libc::RTLD_NODELETE,
        )
    } {
        return refused(
            path,
            Some(abi),
            format!("refused: cannot pin it in memory: {}", dl_error(&e)),
        );
    }
    let info = PluginInfo {
        name: name.clone(),
        transport: TRANSPORT.into(),
        path: path.display().to_string(),
        abi: Some(abi),
        status: "loaded".into(),
    };
    let lib = Lib {
        name,
        caps,
        call,
        free,
        call_async,
        timeout,
        _lib: ManuallyDrop::into_inner(lib),
    };
    Found {
        info,
        driver: Some(Arc::new(SharedPlugin(Arc::new(lib)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_driver_names() {
        assert!(check_name("ptp").is_ok());
        assert!(check_name("my-driver_2.0").is_ok());
        for bad in ["", "Ptp", "-x", "a b", "a/b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
