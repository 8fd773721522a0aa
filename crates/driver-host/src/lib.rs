//! The `host` driver: the container shares the host's network namespace,
//! as `docker run --network host` does. Nothing is created or removed.
#![deny(missing_docs)]

use berth_core::{
    Attachment, Capabilities, Context, Endpoint, Network, NetworkDriver, Result, SandboxKind, Scope,
    async_trait, check_options,
};

/// The `host` network mode.
#[derive(Debug, Default)]
pub struct Host;

#[async_trait]
impl NetworkDriver for Host {
    fn name(&self) -> &str {
        "host"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            scope: Scope::Local,
            sandbox: SandboxKind::Host,
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
        Ok(Attachment::default())
    }

    async fn detach(&self, _: &Context, _: &Network, _: &Endpoint<'_>) -> Result<()> {
        Ok(())
    }
}
