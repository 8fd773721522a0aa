//! What the attach benches (`attach.rs`, `plugins.rs`) ask of what they
//! measure: a [`Subject`] attaches a probe sandbox to a bridge network and
//! detaches it, with other sandboxes attached beside it. berth implements
//! it in those benches, and so do its peers: netavark (`netavark.rs`) and
//! the CNI bridge plugin (`cni.rs`).

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

/// One way of doing the work, driven a step at a time.
pub trait Subject: Send {
    /// Attaches the `i`th other sandbox (from 1), untimed.
    fn add_other(&mut self, i: usize) -> Result<()>;
    /// Attaches the probe sandbox; returns how long that took.
    fn attach(&mut self) -> Result<Duration>;
    /// Detaches the probe sandbox; returns how long that took.
    fn detach(&mut self) -> Result<Duration>;
    /// The namespace that plays the host.
    fn host_ns(&self) -> &Path;
    /// The probe's namespace.
    fn probe_ns(&self) -> &Path;
}
