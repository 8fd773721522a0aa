//! How the API answers each [`Error`], and its constructors.

use std::io;

use axum::http::StatusCode;
use berth_core::Kind;

use super::Error;

impl Error {
    /// The status the API answers with, as Docker would: 400 bad input
    /// (and what this kernel or driver cannot do), 403 an operation never
    /// allowed (on a pre-defined network), 404 not found, 409 a conflict
    /// with what exists, 500 for the rest.
    pub fn status(&self) -> StatusCode {
        use Error::*;
        match self {
            NetworkNotFound { .. }
            | ContainerNotFound { .. }
            | LinkTargetNotFound { .. }
            | NotConnected { .. }
            | NetworkBeingRemoved { .. }
            | NoSuchRoute { .. } => StatusCode::NOT_FOUND,
            NetworkExists { .. }
            | OnlyOneNetwork { .. }
            | SubnetTaken { .. }
            | PoolsExhausted { .. }
            | SubnetFull { .. }
            | AddressReserved { .. }
            | AddressInUse { .. }
            | NetworkInUse { .. }
            | NetworkAttaching { .. }
            | NetworkAlreadyRemoving { .. }
            | AlreadyConnected { .. }
            | NotRunning { .. }
            | AlreadyStarted { .. }
            | LostBeforeStart { .. }
            | ContainerRunning { .. }
            | ContainerNameInUse { .. }
            | ContainerNameReserved { .. }
            | SandboxAttached { .. }
            | InterfaceExists { .. }
            | ExternalContainer { .. }
            | DaemonRunning { .. }
            | ExecRootInUse { .. }
            | PortPublished { .. }
            | PortPublishedTwice { .. }
            | PortHeld { .. }
            | NoEphemeralPorts { .. }
            | NoFreePort { .. } => StatusCode::CONFLICT,
            PredefinedNetwork { .. } => StatusCode::FORBIDDEN,
            AmbiguousPrefix { .. }
            | BadName { .. }
            | BadHostname { .. }
            | UnknownDriver { .. }
            | BadFlag { .. }
            | MacWithoutInterface { .. }
            | BadAddHost { .. }
            | NoHostGateway { .. }
            | LinkOffBridge { .. }
            | LinkAcrossNetworks { .. }
            | AliasOnPredefined { .. }
            | BadSignal(..)
            | BadPrefix { .. }
            | HostBitsSet { .. }
            | BadAddress { .. }
            | UnknownIpamDriver { .. }
            | SubnetsOverlap { .. }
            | OutsideSubnets { .. }
            | SpecialAddress { .. }
            | TwoGateways { .. }
            | RangeOutsideSubnet { .. }
            | RangeOutsideSubnets { .. }
            | TwoRanges { .. }
            | NoAddressManagement { .. }
            | Ipv6SubnetWithoutFlag { .. }
            | Ipv6NotTaken { .. }
            | AddressOutsideSubnet { .. }
            | WrongFamily { .. }
            | StaticOnPredefined { .. }
            | StaticWithoutAddresses { .. }
            | NoIpv6 { .. }
            | OutsideNetwork { .. }
            | ConnectOnlyAtRun { .. }
            | NetworkNotShared { .. }
            | DisconnectRefused { .. }
            | NoCommand
            | SandboxRefused { .. }
            | NoProcess { .. }
            | NoContainerGiven
            | BadPublish { .. }
            | BadExpose { .. }
            | CannotPublish(_)
            | PublishWithoutIpv6 { .. }
            | NotAHostAddress { .. }
            | BadFilters { .. }
            | UnknownFilter { .. }
            | BadFilterValue { .. }
            | UntilFilter { .. }
            | UnreadableBody { .. }
            | EmptyBody
            | BadBody { .. }
            | BadQuery { .. }
            | BadPath { .. }
            | Api(_)
            | Unsupported(_) => StatusCode::BAD_REQUEST,
            NotOpened { .. }
            | Task { .. }
            | Store { .. }
            | StoreDamaged { .. }
            | DecodeRecord { .. }
            | EncodeRecord { .. }
            | StartFailed { .. }
            | SandboxBroken { .. }
            | Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            BadAdvertise { .. } | WrongScope { .. } => StatusCode::BAD_REQUEST,
            BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Cluster(e) => match e {
                berth_cluster::Error::Taken { .. }
                | berth_cluster::Error::InUse { .. }
                | berth_cluster::Error::Exhausted { .. } => StatusCode::CONFLICT,
                berth_cluster::Error::NoNetwork(_) => StatusCode::NOT_FOUND,
                berth_cluster::Error::BadStore { .. } | berth_cluster::Error::BadOption { .. } => {
                    StatusCode::BAD_REQUEST
                }
                _ => StatusCode::SERVICE_UNAVAILABLE,
            },
            Driver(e) => match e.kind() {
                Kind::Invalid | Kind::Unsupported => StatusCode::BAD_REQUEST,
                Kind::NotFound => StatusCode::NOT_FOUND,
                Kind::Conflict => StatusCode::CONFLICT,
                Kind::Kernel | Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// An [`Error::Io`]: an `io::Error` and what the engine was doing.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }

    /// An [`Error::Store`]: a redb failure and what was being done.
    pub(crate) fn store(what: impl Into<String>, source: impl Into<redb::Error>) -> Self {
        Self::Store {
            what: what.into(),
            source: source.into(),
        }
    }

    /// The message with every cause appended once, as `{:#}` prints it in
    /// `anyhow`: what the API answers.
    pub fn chain(&self) -> String {
        berth_core::chain(self)
    }
}

#[cfg(test)]
mod tests {
    use berth_core::Proto;

    use super::*;
    use crate::{HostPort, Process};

    #[test]
    fn statuses_follow_docker() {
        let gone = Error::NetworkNotFound { key: "x".into() };
        assert_eq!(gone.status(), StatusCode::NOT_FOUND);
        let predefined = Error::PredefinedNetwork {
            network: "bridge".into(),
        };
        assert_eq!(predefined.status(), StatusCode::FORBIDDEN);
        assert_eq!(Error::NoCommand.status(), StatusCode::BAD_REQUEST);
        let busy = Error::NotRunning {
            container: "c".into(),
        };
        assert_eq!(busy.status(), StatusCode::CONFLICT);
    }

    #[test]
    fn messages_are_built_from_the_data() {
        let e = Error::NetworkInUse {
            network: "n".into(),
            containers: vec!["a".into(), "b".into()],
        };
        assert_eq!(
            e.to_string(),
            "network n has active endpoints: containers a, b are attached (disconnect or remove them first)"
        );
        let e = Error::NetworkInUse {
            network: "n".into(),
            containers: vec!["web".into()],
        };
        assert_eq!(
            e.to_string(),
            "network n has active endpoints: container web is attached (disconnect or remove it first)"
        );
        let e = Error::PortHeld {
            port: HostPort {
                ip: "::".parse().unwrap(),
                port: 8080,
                proto: Proto::Tcp,
            },
            holder: Some(Process {
                pid: 42,
                comm: "nc".into(),
            }),
        };
        assert_eq!(
            e.to_string(),
            "host port [::]:8080/tcp is already in use by a process on the host: pid 42 (nc)"
        );
        let e = Error::WrongFamily {
            ip: "fd00::1".parse().unwrap(),
        };
        assert_eq!(e.to_string(), "--ip fd00::1 is not an IPv4 address (use --ip6)");
        let e = Error::OutsideSubnets {
            what: "gateway".into(),
            ip: "10.2.0.1".parse().unwrap(),
            subnets: vec!["10.1.0.0/16".parse().unwrap()],
        };
        assert_eq!(
            e.to_string(),
            "gateway 10.2.0.1 is not in any --subnet (10.1.0.0/16)"
        );
    }
}
