//! nftables set and map elements over nfnetlink, in one atomic batch.
//!
//! berth loads the skeleton of its `inet berth` table (chains, rules, set and
//! map declarations) with `nft -f -`; after that, every per-network and
//! per-container change is an element added to or deleted from a set or map.
//! This module sends those changes straight to the kernel as one nfnetlink
//! transaction, with the element messages `nft add element` and
//! `nft delete element` send, without starting a process per change.
//!
//! ```no_run
//! use berth_core::nft::{Batch, Element, Family, Socket, key};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let nft = Socket::open()?; // in the namespace that holds the table
//! let mut batch = Batch::new();
//! batch.add(Family::Inet, "berth", "bridges", vec![Element::new(key::ifname("br-1a2b3c"))]);
//! nft.apply(&batch)?; // nft add element inet berth bridges { "br-1a2b3c" }
//! # Ok(())
//! # }
//! ```
//!
//! A batch is all or nothing: the kernel checks every message, and commits
//! only if none failed. Replies arrive while `sendmsg` runs (the kernel
//! handles a netlink message to itself in the sender's context), so reading
//! them never waits on the kernel.
//!
//! # Layout
//!
//! - `element`: the table [`Family`], set and map [`Element`]s, [`prefix_elements`];
//! - [`key`]: key and data encoders, byte for byte as nft encodes them;
//! - `batch`: [`Batch`], the operations of one transaction, checked before sending;
//! - `wire`: the batch encoded as nfnetlink messages;
//! - `socket`: [`Socket`], which sends a batch and reads its acknowledgements;
//! - `reply`: acknowledgements and errors matched to the messages they answer;
//! - `error`: [`NftError`], what was refused and why;
//! - `uapi`: the numbers from the kernel's headers.

mod batch;
mod element;
mod error;
pub mod key;
mod reply;
mod socket;
mod uapi;
mod wire;

#[cfg(test)]
mod tests;

pub use batch::Batch;
pub use element::{Element, Family, prefix_elements};
pub use error::NftError;
pub use socket::Socket;
