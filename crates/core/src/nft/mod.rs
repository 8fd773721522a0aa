//! nftables over nfnetlink: tables, chains, sets, rules and set and map
//! elements, in one atomic batch, without the `nft` program.
//!
//! berth creates the skeleton of its `inet berth` table (chains, rules, set
//! and map declarations) with one batch of the messages `nft -f` would
//! send; after that, every per-network and per-container change is an
//! element added to or deleted from a set or map, sent straight to the
//! kernel as one nfnetlink transaction, with the element messages
//! `nft add element` and `nft delete element` send, without starting a
//! process per change. It can also read chains and rules back, to find a
//! rule in another program's chain (iptables-nft's `FORWARD`).
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
//! From the top down; each file uses only files listed below it:
//!
//! - `dump`: chains and rules read back ([`Socket::has_chain`], [`Socket::rules`]);
//! - `socket`: [`Socket`], which sends a batch and reads its acknowledgements;
//! - `reply`: acknowledgements and errors matched to the messages they answer;
//! - `reject`: what the kernel refused, and the [`NftError`] that names it;
//! - `wire`: the batch encoded as nfnetlink messages;
//! - `batch`: [`Batch`], the operations of one transaction, checked before sending;
//! - `object`: [`Table`], [`Chain`], [`Set`] and [`Rule`] as a batch creates them;
//! - `expr`: [`Expr`], the expressions of a rule, with [`Reg`]isters, the
//!   [`Datatype`]s of set keys and the [`SetRef`] a lookup names;
//! - `element`: the table [`Family`], set and map [`Element`]s, [`prefix_elements`];
//! - [`key`]: key and data encoders, byte for byte as nft encodes them;
//! - `netlink`: netlink message headers and attributes, written and read;
//! - `error`: [`NftError`], what was refused and why;
//! - `uapi`: the numbers from the kernel's headers.

mod batch;
mod dump;
mod element;
mod error;
mod expr;
pub mod key;
mod netlink;
mod object;
mod reject;
mod reply;
mod socket;
mod uapi;
mod wire;

#[cfg(test)]
mod tests;

pub use batch::Batch;
pub use dump::ListedRule;
pub use element::{Element, Family, prefix_elements};
pub use error::NftError;
pub use expr::{Ct, Datatype, Expr, Header, Meta, Reg, SetRef, Verdict};
pub use object::{Chain, Hook, Rule, Set, Table};
pub use socket::Socket;
