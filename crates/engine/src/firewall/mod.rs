//! What the engine asks of the firewall beyond the drivers' network
//! elements: published ports ([`ports`]), and putting the whole table back
//! in one transaction (part of `berth system reconcile`, SIGHUP).

pub(crate) mod ports;

use crate::engine::Engine;
use crate::{Error, Result};

impl Engine {
    /// Puts the firewall back: the `inet berth` table with every network's
    /// and every published port's elements, as at start, in one
    /// transaction, without touching other tables.
    pub(crate) async fn reinstall_firewall(&self) -> Result<()> {
        let fw = self.ctx.firewall.clone();
        let installed = tokio::task::spawn_blocking(move || fw.install())
            .await
            .map_err(|source| Error::Task {
                what: "reconciling the firewall",
                source,
            })?;
        Ok(installed?)
    }
}
