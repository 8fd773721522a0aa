//! berth's built-in [`Bridge`] driver as a shared-library plugin, under the
//! name `bridge-plugin` (a plugin may not take a built-in driver's name).
//! Every method is the built-in driver's; only the transport differs, so
//! `cargo xtask bench plugins` can put a price on the transport alone.
#![deny(missing_docs)]

use std::sync::Arc;

use berth_core::link::Link;
use berth_core::{
    Capabilities, Claim, Features, Network, NetworkDriver, NetworkHandle, Place, Result, async_trait,
};
use berth_driver_bridge::Bridge;

/// The driver's name (`-d bridge-plugin`).
pub const NAME: &str = "bridge-plugin";

/// [`Bridge`], renamed.
#[derive(Debug, Default)]
pub struct BridgePlugin(Bridge);

#[async_trait]
impl NetworkDriver for BridgePlugin {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }

    fn supported(&self, features: &Features) -> Result<()> {
        self.0.supported(features)
    }

    async fn open(&self, net: &Network) -> Result<Arc<dyn NetworkHandle>> {
        self.0.open(net).await
    }

    fn claim(&self, place: Place, links: &[Link]) -> Vec<(u32, Claim)> {
        self.0.claim(place, links)
    }
}

berth_core::export_driver!(BridgePlugin::default());
