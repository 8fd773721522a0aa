//! The `null` driver behind the `none` network: the container gets a
//! namespace of its own with only `lo`, up, as `docker run --network none`
//! does. Docker calls this driver `null`; berth accepts `-d none` as well.
#![deny(missing_docs)]

use std::sync::Arc;

use berth_core::{
    Attachment, Capabilities, Context, Endpoint, Network, NetworkDriver, NetworkHandle, Ports, Result,
    SandboxKind, Scope, async_trait, check_options,
};

/// The `none` network mode.
#[derive(Debug, Default)]
pub struct Null;

/// The `none` network, opened: there is nothing to make or wire.
#[derive(Debug)]
pub struct NullNet(Network);

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
            ports: Ports::NoInterface,
            dns: false,
            parent: false,
            aliases: &["none"],
            egress: false,
        }
    }

    async fn open(&self, net: &Network) -> Result<Arc<dyn NetworkHandle>> {
        check_options(self.name(), &net.options, &[])?;
        Ok(Arc::new(NullNet(net.clone())))
    }
}

#[async_trait]
impl NetworkHandle for NullNet {
    fn network(&self) -> &Network {
        &self.0
    }

    async fn create(&self, _: &Context) -> Result<()> {
        Ok(())
    }

    async fn delete(&self, _: &Context) -> Result<()> {
        Ok(())
    }

    async fn attach(&self, _: &Context, _: &Endpoint<'_>) -> Result<Attachment> {
        // The engine brings `lo` up in every sandbox it creates; there is
        // nothing else to wire.
        Ok(Attachment::default())
    }

    async fn detach(&self, _: &Context, _: &Endpoint<'_>) -> Result<()> {
        Ok(())
    }
}
