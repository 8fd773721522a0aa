//! CNI plugins as the `cni` driver. Not written yet.

use std::sync::Arc;

use berth_core::NetworkDriver;

use super::PluginConfig;

/// The `cni` driver, if it can be built from the configuration.
pub fn driver(_cfg: &PluginConfig) -> Option<Arc<dyn NetworkDriver>> {
    None
}
