//! The `null` driver behind the `none` network: the container gets a
//! namespace of its own with only `lo`, up, as `docker run --network none`
//! does. Docker calls this driver `null`; berth accepts `-d none` as well.
#![deny(missing_docs)]

use berth_core::{
    Attachment, Capabilities, Context, Endpoint, Network, NetworkDriver, Result, SandboxKind, Scope,
    async_trait, check_options,
};

/// The `none` network mode.
#[derive(Debug, Default)]
pub struct Null;

#[async_trait]
impl NetworkDriver for Null {
    fn name(&self) -> &str {
        "null"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            scope: Scope::Local,
            sandbox: SandboxKind::Isolated,
            ipam: false,
            options: &[],
            multi_network: false,
        }
    }

    fn validate(&self, net: &Network) -> Result<()> {
        check_options(self.name(), &net.options, &[])
    }

    async fn create_network(&self, _: &Context, _: &Network) -> Result<()> {
        Ok(())
    }

    async fn delete_network(&self, _: &Context, _: &Network) -> Result<()> {
        Ok(())
    }

    async fn attach(&self, _: &Context, _: &Network, _: &Endpoint<'_>) -> Result<Attachment> {
        // The engine brings `lo` up in every sandbox it creates; there is
        // nothing else to wire.
        Ok(Attachment::default())
    }

    async fn detach(&self, _: &Context, _: &Network, _: &Endpoint<'_>) -> Result<()> {
        Ok(())
    }
}
