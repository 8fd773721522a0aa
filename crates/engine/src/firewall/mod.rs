//! What the engine asks of the firewall beyond the drivers' network
//! elements: published ports ([`ports`]), and putting the whole table back
//! (`berth system reconcile`, SIGHUP).

pub(crate) mod ports;

use berth_core::Result;

use crate::engine::Engine;

impl Engine {
    /// Puts the firewall back: the `inet berth` table with every network's
    /// and every published port's elements, as at start, without touching
    /// other tables (`berth system reconcile`, SIGHUP).
    pub async fn reconcile(&self) -> Result<()> {
        let fw = self.ctx.firewall.clone();
        tokio::task::spawn_blocking(move || fw.install())
            .await
            .map_err(|e| berth_core::Error::Internal(format!("reconciling the firewall: {e}")))?
    }
}
