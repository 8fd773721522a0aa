//! berth's own routes for namespaces of other runtimes (`berth` run as a
//! CNI plugin): attach one to a network, detach it, check it, and drop the
//! attachments a runtime no longer has.

use serde::{Deserialize, Serialize};

use crate::de::nullable;

/// The runtime's key of one attachment: its container id and the
/// interface name it asked for (CNI's `CNI_CONTAINERID`, `CNI_IFNAME`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SandboxKey {
    /// The runtime's id of its container.
    #[serde(default, deserialize_with = "nullable")]
    pub id: String,
    /// The interface in the namespace (`eth0`).
    #[serde(default, deserialize_with = "nullable")]
    pub if_name: String,
}

/// berth: `POST /sandboxes/attach`, a namespace of another runtime joins a
/// network. berth makes interface `IfName` there, addresses and routes
/// it, publishes the ports and the names; it never removes the namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SandboxAttachRequest {
    /// The attachment's key.
    #[serde(flatten)]
    pub key: SandboxKey,
    /// The namespace's path (`/run/netns/NAME`, `/proc/PID/ns/net`).
    #[serde(default, deserialize_with = "nullable")]
    pub netns: String,
    /// Where the daemon opens the namespace now, when `Netns` is a path in
    /// another mount namespace than the daemon's: `/proc/PID/root/PATH`
    /// of a process of the runtime's (the CNI plugin itself). `Netns` when
    /// empty. Only `Netns` is recorded.
    #[serde(default, deserialize_with = "nullable")]
    pub netns_via: String,
    /// The network, by name or id.
    #[serde(default, deserialize_with = "nullable")]
    pub network: String,
    /// The container's name in berth (and in its DNS); berth picks one
    /// from the id when empty.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// More names on the network.
    #[serde(default, deserialize_with = "nullable")]
    pub aliases: Vec<String>,
    /// Ports to publish, as `docker run -p` takes them
    /// (`[IP:]HOSTPORT:PORT[/PROTO]`).
    #[serde(default, deserialize_with = "nullable")]
    pub ports: Vec<String>,
}

/// The answer to [`SandboxAttachRequest`]: what berth made.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SandboxAttachResponse {
    /// berth's id of the container it recorded.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The interface in the namespace.
    pub if_name: String,
    /// Its MAC address.
    pub mac_address: String,
    /// Its addresses with their prefix lengths (`172.18.0.2/16`).
    pub addresses: Vec<String>,
    /// The gateways the namespace's default routes lead to.
    pub gateways: Vec<String>,
    /// The resolver the namespace should ask (`127.0.0.11` on networks
    /// with berth's DNS), none elsewhere.
    pub nameservers: Vec<String>,
}

/// berth: `POST /sandboxes/detach` and `POST /sandboxes/check`: one
/// attachment, by its key and network. A detach of an attachment berth
/// does not have succeeds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SandboxDetachRequest {
    /// The attachment's key.
    #[serde(flatten)]
    pub key: SandboxKey,
    /// The network, by name or id.
    #[serde(default, deserialize_with = "nullable")]
    pub network: String,
}

/// berth: `POST /sandboxes/prune`: detaches every attachment of other
/// runtimes on `Network` whose key is not in `Keep` (CNI's `GC`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SandboxPruneRequest {
    /// The network, by name or id.
    #[serde(default, deserialize_with = "nullable")]
    pub network: String,
    /// The attachments the runtime still has.
    #[serde(default, deserialize_with = "nullable")]
    pub keep: Vec<SandboxKey>,
}

/// The answer to [`SandboxPruneRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SandboxPruneResponse {
    /// The keys of the attachments detached.
    pub removed: Vec<SandboxKey>,
}
