use std::path::PathBuf;

/// What went wrong with the cluster store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `--cluster-store` is not `etcd://HOST:PORT[,HOST:PORT…]`.
    #[error("invalid --cluster-store {url:?}: {why} (accepted: etcd://HOST:PORT[,HOST:PORT...])")]
    BadStore {
        /// What was given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// A `--cluster-store-opt` that cannot be used. Quoted: the value may
    /// hold a newline, and the error is one line.
    #[error("invalid --cluster-store-opt {option:?}: {why}")]
    BadOption {
        /// The option as given.
        option: String,
        /// What is wrong with it.
        why: String,
    },
    /// A TLS file that cannot be read.
    #[error("reading {path} for TLS to the cluster store")]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// etcd did not answer, or refused (it is down, unreachable, or has
    /// no quorum).
    #[error("the cluster store {store} cannot be reached ({what})")]
    Unreachable {
        /// `etcd://…`.
        store: String,
        /// What was being done.
        what: String,
        /// The client's error.
        #[source]
        source: etcd_client::Error,
    },
    /// A name, subnet, number or address another network or endpoint holds.
    #[error("{what} is already used by {owner}")]
    Taken {
        /// What was asked for, e.g. `vxlan.id 4096`.
        what: String,
        /// Who holds it (a network's name or id, an endpoint).
        owner: String,
    },
    /// Every number or subnet of a pool is taken.
    #[error("no free {what} left in the cluster")]
    Exhausted {
        /// e.g. `VNI`, `subnet in 10.0.0.0/8`.
        what: String,
    },
    /// The network does not exist in the cluster (any more).
    #[error("network {0} does not exist in the cluster")]
    NoNetwork(String),
    /// A global network that still has containers somewhere.
    #[error(
        "network {network} has active endpoints: containers {} are attached (disconnect or remove them first)",
        .attached.join(", ")
    )]
    InUse {
        /// The network's name.
        network: String,
        /// `NAME on HOST` of each container attached.
        attached: Vec<String>,
    },
    /// A record in the store that does not decode.
    #[error("the cluster store's record {key} does not decode")]
    Decode {
        /// Its key.
        key: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// `Result` with the cluster's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
