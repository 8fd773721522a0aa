//! What the overlay bench (`overlay.rs`) asks of an overlay network across
//! two hosts, A and B: a [`Subject`] that berth (`overlay/berth.rs`) and
//! Docker's swarm (`docker/swarm.rs`) implement. Each has [`WATCHER`]
//! running on host B from the start; the bench creates and removes the
//! containers of host A.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;

/// The container on host B that probes, and that is iperf3's client.
pub const WATCHER: &str = "watcher";
/// The container on host A that is iperf3's server.
pub const SERVER: &str = "server";
/// What every container of the bench runs.
pub const SLEEP: [&str; 2] = ["sleep", "3600"];

/// One overlay network across hosts A and B, driven a step at a time.
pub trait Subject {
    /// The address ending in `n` of the network's subnet (a /24).
    fn address(&self, n: u8) -> Ipv4Addr;
    /// Creates container `name` running [`SLEEP`] on host A, on the
    /// network, with the address `ip` when given, as a user would (`run
    /// -d`); the command's own time, start to exit.
    fn run(&mut self, name: &str, ip: Option<Ipv4Addr>) -> Result<Duration>;
    /// Removes container `name` from host A, untimed.
    fn remove(&mut self, name: &str) -> Result<()>;
    /// The network namespace of container `name` on host A.
    fn sandbox(&self, name: &str) -> Result<PathBuf>;
    /// The network namespace of [`WATCHER`] on host B.
    fn watcher(&self) -> &Path;
}
