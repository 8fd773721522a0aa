//! The `host` driver: the container shares the host's network namespace,
//! as `docker run --network host` does. Nothing is created or removed.
#![deny(missing_docs)]

use std::sync::Arc;

use berth_core::{
    Attachment, Capabilities, Context, Endpoint, Network, NetworkDriver, NetworkHandle, Ports, Result,
    SandboxKind, Scope, async_trait, check_options,
};

/// The `host` network mode.
#[derive(Debug, Default)]
pub struct Host;

/// The `host` network, opened: there is nothing to make or wire.
#[derive(Debug)]
pub struct HostNet(Network);

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
            ports: Ports::Shared,
            dns: false,
            parent: false,
            aliases: &[],
            egress: false,
        }
    }

    async fn open(&self, net: &Network) -> Result<Arc<dyn NetworkHandle>> {
        check_options(self.name(), &net.options, &[])?;
        Ok(Arc::new(HostNet(net.clone())))
    }
}

#[async_trait]
impl NetworkHandle for HostNet {
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
        Ok(Attachment::default())
    }

    async fn detach(&self, _: &Context, _: &Endpoint<'_>) -> Result<()> {
        Ok(())
    }
}
