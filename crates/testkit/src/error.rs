//! [`Error`]: why a testkit helper failed, in the words the conformance
//! table, the DNS helpers and the fake Docker plugin print.

use std::io;
use std::path::PathBuf;

use hickory_proto::serialize::binary::DecodeError;

/// Why a check of the conformance suite, a DNS query or a call of the fake
/// Docker plugin failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ---- The conformance suite. ----
    /// A `berth` command failed.
    #[error("berth {args:?}: {stderr}")]
    Berth {
        /// Its arguments.
        args: Vec<String>,
        /// What it printed on stderr, trimmed.
        stderr: String,
    },
    /// `berth inspect` printed something that is not JSON.
    #[error("inspect {container}: {error}")]
    Inspect {
        /// The container.
        container: String,
        /// What the JSON parser said.
        error: serde_json::Error,
    },
    /// What a check expected and did not find, in words.
    #[error("{0}")]
    Unmet(String),
    /// Output that is not the JSON expected.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// A file could not be read.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A process's network namespace could not be read.
    #[error("reading ns of {pid}: {error}")]
    ProcessNetns {
        /// The process.
        pid: u32,
        /// Why.
        error: io::Error,
    },

    // ---- DNS queries. ----
    /// The namespace to ask from could not be entered.
    #[error("entering {}: {error}", .path.display())]
    Enter {
        /// The namespace's file.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// A socket call failed: `connect`, `timeout`, `write`, `read`, `bind`,
    /// `send`, `recv`.
    #[error("{call}: {error}")]
    Socket {
        /// The call.
        call: &'static str,
        /// Why.
        error: io::Error,
    },
    /// The answer is not a DNS message.
    #[error("the answer does not parse: {0}")]
    Answer(DecodeError),
    /// The thread that asked panicked.
    #[error("the asking thread panicked")]
    Panicked,

    // ---- The fake Docker plugin. ----
    /// An `ip` command failed.
    #[error("ip {}: {stderr}", .args.join(" "))]
    Ip {
        /// Its arguments.
        args: Vec<String>,
        /// What it printed on stderr, trimmed.
        stderr: String,
    },
    /// Forwarding could not be turned off on a bridge.
    #[error("turning forwarding off on {bridge}: {stderr}")]
    Forwarding {
        /// The bridge.
        bridge: String,
        /// What the shell printed on stderr, trimmed.
        stderr: String,
    },
    /// A request without a network id.
    #[error("no NetworkID")]
    NoNetworkId,
    /// An option the plugin does not know.
    #[error("unknown option {key:?} (accepted: {})", .accepted.join(", "))]
    UnknownOption {
        /// The option.
        key: String,
        /// The options it knows.
        accepted: &'static [&'static str],
    },
    /// A network the plugin does not have.
    #[error("no such network {0}")]
    NoSuchNetwork(String),
    /// An endpoint the plugin does not have.
    #[error("no such endpoint {0}")]
    NoSuchEndpoint(String),
}
