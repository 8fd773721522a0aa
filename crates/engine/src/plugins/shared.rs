//! Shared-library plugins (`berth_plugin_v1`). Not written yet.

use super::{Found, PluginConfig};

/// Loads the shared-library plugins of the plugin directories.
pub async fn discover(_cfg: &PluginConfig) -> Vec<Found> {
    Vec::new()
}
