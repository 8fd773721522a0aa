//! berth's built-in [`Bridge`] driver as a shared-library plugin, under the
//! name `bridge-plugin` (a plugin may not take a built-in driver's name).
//! Every method is the built-in driver's; only the transport differs, so
//! `cargo xtask bench plugins` can put a price on the transport alone.
#![deny(missing_docs)]

use berth_core::{
    Attachment, Capabilities, Context, Endpoint, Features, Network, NetworkDriver, Result, async_trait,
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

    fn supported(&self, features: &Features) -> std::result::Result<(), String> {
        self.0.supported(features)
    }

    fn validate(&self, net: &Network) -> Result<()> {
        self.0.validate(net)
    }

    async fn create_network(&self, ctx: &Context, net: &Network) -> Result<()> {
        self.0.create_network(ctx, net).await
    }

    async fn delete_network(&self, ctx: &Context, net: &Network) -> Result<()> {
        self.0.delete_network(ctx, net).await
    }

    async fn attach(&self, ctx: &Context, net: &Network, ep: &Endpoint<'_>) -> Result<Attachment> {
        self.0.attach(ctx, net, ep).await
    }

    async fn detach(&self, ctx: &Context, net: &Network, ep: &Endpoint<'_>) -> Result<()> {
        self.0.detach(ctx, net, ep).await
    }
}

berth_core::export_driver!(BridgePlugin::default());
