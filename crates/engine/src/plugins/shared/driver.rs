//! A shared-library plugin as a berth driver: each operation's calls in
//! a row under one bound, and the rollback of what failed or timed out.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use berth_core::{
    Attachment, Capabilities, Context, Endpoint, Error, Kind, Network, NetworkDriver, NetworkHandle, Result,
    async_trait,
};
use berth_plugin::protocol::{
    BerthEndpoint, BerthNetwork, CreateEndpointRequest, DeleteNetworkRequest, EndpointInterface,
    EndpointRequest, ErrorResponse, JoinRequest, method, network_request,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::answers::{attach_answer, decode, plain_answer};
use super::library::Lib;

/// Calls that did not finish in time and still run on their blocking
/// thread: done when they return.
type Late = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A failed call: the error, and the call itself when it timed out and
/// may still answer.
struct Failed {
    err: Error,
    late: Option<Late>,
}

impl Failed {
    /// The plugin refused before it made anything (a bad option, a name in
    /// use): there is nothing to roll back.
    fn refused_up_front(&self) -> bool {
        self.late.is_none()
            && matches!(
                self.err.kind(),
                Kind::Invalid | Kind::Conflict | Kind::Unsupported | Kind::NotFound
            )
    }
}

/// Appends `note` (another call's failure, what became of the rollback)
/// to an error's message, keeping its kind. What is noted are the
/// plugin's answers, which are text already.
fn annotate(e: Error, note: &str) -> Error {
    Error::plugin(e.kind(), e.chain() + note)
}

fn json(v: &impl Serialize) -> Result<Arc<Vec<u8>>> {
    serde_json::to_vec(v)
        .map(Arc::new)
        .map_err(|source| Error::Encode {
            what: "a plugin request",
            source,
        })
}

/// Decodes the answer of one call of several in a row (given the plugin's
/// name and the method); `Some` for the answer to keep.
type Check<T> = fn(&str, &'static str, Option<&[u8]>) -> Result<Option<T>>;

/// The rollback steps: a method and its request.
type Steps = Vec<(&'static str, Arc<Vec<u8>>)>;

/// A shared-library plugin as a [`NetworkDriver`].
pub struct SharedPlugin(pub(super) Arc<Lib>);

impl SharedPlugin {
    /// Runs `f`, one or more calls of the plugin in a row, on one blocking
    /// thread, bounded as a whole by the timeout: an attach (`CreateEndpoint`
    /// then `Join`) costs one hop off the runtime, not two. `f` stores in
    /// its `AtomicUsize` the index in `methods` of the call it is making,
    /// which the message names when time runs out.
    async fn blocking<T: Send + 'static>(
        &self,
        methods: &[&'static str],
        f: impl FnOnce(&Lib, &AtomicUsize) -> Result<T> + Send + 'static,
    ) -> std::result::Result<T, Failed> {
        let lib = self.0.clone();
        let at = Arc::new(AtomicUsize::new(0));
        let now = at.clone();
        let task = tokio::task::spawn_blocking(move || f(&lib, &now));
        let name = self.0.name.clone();
        let (which, names) = (at.clone(), methods.to_vec());
        let done = async move {
            task.await.unwrap_or_else(|e| {
                let method = names
                    .get(which.load(Ordering::SeqCst))
                    .copied()
                    .unwrap_or_default();
                Err(Error::plugin(
                    Kind::Internal,
                    format!("plugin {name}: {method}: the call failed: {e}"),
                ))
            })
        };
        self.bounded(methods, &at, Box::pin(done)).await
    }

    /// Awaits `calls`, bounded by the timeout; on a timeout the error names
    /// the method whose index in `methods` is in `at`, and the calls are
    /// handed back to be awaited by a rollback.
    async fn bounded<T: Send + 'static>(
        &self,
        methods: &[&'static str],
        at: &AtomicUsize,
        mut calls: Pin<Box<dyn Future<Output = Result<T>> + Send>>,
    ) -> std::result::Result<T, Failed> {
        match tokio::time::timeout(self.0.timeout, &mut calls).await {
            Ok(r) => r.map_err(|err| Failed { err, late: None }),
            Err(_) => Err(Failed {
                err: Error::plugin(
                    Kind::Internal,
                    format!(
                        "plugin {}: {} did not answer within {}",
                        self.0.name,
                        methods
                            .get(at.load(Ordering::SeqCst))
                            .copied()
                            .unwrap_or_default(),
                        crate::plugins::show_duration(self.0.timeout)
                    ),
                ),
                late: Some(Box::pin(async move {
                    let _ = calls.await;
                })),
            }),
        }
    }

    /// Calls `methods` with `requests` in a row, each answer decoded by
    /// `check` (which gets the method and the answer) before the next call,
    /// bounded as a whole by the timeout. Through `call_async` where the
    /// plugin has it (version 2): no blocking thread, the plugin's runtime
    /// wakes this task; else through [`SharedPlugin::blocking`]. With
    /// `keep_going`, every call is made whatever the earlier ones answered,
    /// and the errors are put together.
    async fn in_a_row<T: Send + 'static>(
        &self,
        methods: &[&'static str],
        requests: Vec<Arc<Vec<u8>>>,
        keep_going: bool,
        check: Check<T>,
    ) -> std::result::Result<Option<T>, Failed> {
        let steps: Vec<(&'static str, Arc<Vec<u8>>)> = methods.iter().copied().zip(requests).collect();
        let Some(f) = self.0.call_async else {
            return self
                .blocking(methods, move |lib, at| {
                    let mut out = None;
                    let mut errors: Option<Error> = None;
                    for (i, (m, req)) in steps.iter().enumerate() {
                        at.store(i, Ordering::SeqCst);
                        let answer = lib.call_blocking(m, req);
                        match check(&lib.name, m, answer.as_deref()) {
                            Ok(v) => out = v.or(out),
                            Err(e) if keep_going => {
                                errors = Some(match errors {
                                    None => e,
                                    Some(a) => annotate(a, &format!("; {e}")),
                                })
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    errors.map_or(Ok(out), Err)
                })
                .await;
        };
        let lib = self.0.clone();
        let at = Arc::new(AtomicUsize::new(0));
        let now = at.clone();
        let calls = async move {
            let mut out = None;
            let mut errors: Option<Error> = None;
            for (i, (m, req)) in steps.iter().enumerate() {
                now.store(i, Ordering::SeqCst);
                let answer = lib.call_async(f, m, req).await;
                match check(&lib.name, m, answer.as_deref()) {
                    Ok(v) => out = v.or(out),
                    Err(e) if keep_going => {
                        errors = Some(match errors {
                            None => e,
                            Some(a) => annotate(a, &format!("; {e}")),
                        })
                    }
                    Err(e) => return Err(e),
                }
            }
            errors.map_or(Ok(out), Err)
        };
        self.bounded(methods, &at, Box::pin(calls)).await
    }

    /// One call, decoded as a `T`.
    async fn call<T: DeserializeOwned + Send + 'static>(
        &self,
        method: &'static str,
        request: Arc<Vec<u8>>,
    ) -> std::result::Result<T, Failed> {
        self.blocking(&[method], move |lib, _| {
            decode(&lib.name, method, lib.call_blocking(method, &request).as_deref())
        })
        .await
    }

    /// Runs rollback steps in order, all of them, in one bounded hop; says
    /// what failed.
    async fn undo(&self, steps: &Steps) -> Result<()> {
        let methods: Vec<&'static str> = steps.iter().map(|(m, _)| *m).collect();
        let steps = steps.clone();
        let undone = self
            .blocking(&methods, move |lib, at| {
                let mut failed = Vec::new();
                for (i, (m, req)) in steps.iter().enumerate() {
                    at.store(i, Ordering::SeqCst);
                    let answer = lib.call_blocking(m, req);
                    if let Err(e) = decode::<ErrorResponse>(&lib.name, m, answer.as_deref()) {
                        failed.push(e.to_string());
                    }
                }
                if failed.is_empty() {
                    Ok(())
                } else {
                    Err(Error::plugin(Kind::Internal, failed.join("; ")))
                }
            })
            .await;
        undone.map_err(|f| f.err)
    }

    /// Rolls back after a failed call: now, and again when a timed-out call
    /// answers after all. Returns the error to report.
    async fn roll_back(&self, f: Failed, steps: Steps, what: &str) -> Error {
        let now = self.undo(&steps).await;
        if let Some(late) = f.late {
            let again = SharedPlugin(self.0.clone());
            let what = what.to_owned();
            tokio::spawn(async move {
                // However long it takes: the plugin may have made things
                // after the engine gave up on it.
                let _ = late.await;
                match again.undo(&steps).await {
                    Ok(()) => {
                        tracing::info!(plugin = %again.0.name, "a timed-out {what} answered late; rolled it back again")
                    }
                    Err(e) => tracing::warn!(plugin = %again.0.name, "rolling back a late {what}: {e}"),
                }
            });
        }
        match now {
            Ok(()) => annotate(f.err, &format!(" (the {what} was rolled back)")),
            Err(e) => annotate(f.err, &format!("; rolling the {what} back failed too: {e}")),
        }
    }
}

/// The berth member of an endpoint's requests.
fn berth_endpoint(net: &Network, ep: &Endpoint<'_>) -> Result<BerthEndpoint> {
    let key = match ep.sandbox {
        Some(sb) => Some(
            sb.path
                .to_str()
                .ok_or_else(|| Error::SandboxPathNotUtf8(sb.path.clone()))?
                .to_owned(),
        ),
        None => None,
    };
    Ok(BerthEndpoint {
        network: net.clone(),
        sandbox_key: key,
        ifname: ep.ifname.to_string(),
        mac: ep.mac,
        addresses: ep.addresses.to_vec(),
        gateways: ep.gateways.to_vec(),
        state: ep.state.cloned(),
    })
}

#[async_trait]
impl NetworkDriver for SharedPlugin {
    fn name(&self) -> &str {
        &self.0.name
    }

    fn capabilities(&self) -> Capabilities {
        self.0.caps.clone()
    }

    /// `Validate`: the plugin opens the network on its side and says
    /// whether its options are good.
    async fn open(&self, net: &Network) -> Result<Arc<dyn NetworkHandle>> {
        let req = json(&network_request(net))?;
        self.call::<ErrorResponse>(method::VALIDATE, req)
            .await
            .map_err(|f| f.err)?;
        Ok(Arc::new(SharedNet {
            plugin: SharedPlugin(self.0.clone()),
            net: net.clone(),
        }))
    }
}

/// A network of a shared-library plugin: every request carries it whole,
/// and the plugin keeps its own handle of it.
struct SharedNet {
    plugin: SharedPlugin,
    net: Network,
}

#[async_trait]
impl NetworkHandle for SharedNet {
    fn network(&self) -> &Network {
        &self.net
    }

    async fn create(&self, _: &Context) -> Result<()> {
        let net = &self.net;
        let req = json(&network_request(net))?;
        match self
            .plugin
            .call::<ErrorResponse>(method::CREATE_NETWORK, req)
            .await
        {
            Ok(_) => Ok(()),
            Err(f) if f.refused_up_front() => Err(f.err),
            Err(f) => {
                let del = json(&DeleteNetworkRequest {
                    network_id: net.id.clone(),
                    berth: Some(BerthNetwork { network: net.clone() }),
                })?;
                Err(self
                    .plugin
                    .roll_back(f, vec![(method::DELETE_NETWORK, del)], "network")
                    .await)
            }
        }
    }

    async fn delete(&self, _: &Context) -> Result<()> {
        let net = &self.net;
        let req = json(&DeleteNetworkRequest {
            network_id: net.id.clone(),
            berth: Some(BerthNetwork { network: net.clone() }),
        })?;
        self.plugin
            .call::<ErrorResponse>(method::DELETE_NETWORK, req)
            .await
            .map(drop)
            .map_err(|f| f.err)
    }

    async fn attach(&self, _: &Context, ep: &Endpoint<'_>) -> Result<Attachment> {
        let net = &self.net;
        let berth = berth_endpoint(net, ep)?;
        let key = berth
            .sandbox_key
            .clone()
            .ok_or_else(|| Error::NoSandbox { driver: None })?;
        let with_len = |v6: bool| {
            ep.addresses
                .iter()
                .find(|a| a.addr().is_ipv6() == v6)
                .map(ToString::to_string)
                .unwrap_or_default()
        };
        let create = json(&CreateEndpointRequest {
            network_id: net.id.clone(),
            endpoint_id: ep.id.to_owned(),
            interface: Some(EndpointInterface {
                address: with_len(false),
                address_ipv6: with_len(true),
                mac_address: if ep.mac.is_zero() {
                    String::new()
                } else {
                    ep.mac.to_string()
                },
            }),
            options: BTreeMap::new(),
        })?;
        let join = json(&JoinRequest {
            network_id: net.id.clone(),
            endpoint_id: ep.id.to_owned(),
            sandbox_key: key,
            options: BTreeMap::new(),
            berth: Some(berth.clone()),
        })?;
        let leave = json(&EndpointRequest {
            network_id: net.id.clone(),
            endpoint_id: ep.id.to_owned(),
            berth: Some(berth),
        })?;
        let joined = self
            .plugin
            .in_a_row(
                &[method::CREATE_ENDPOINT, method::JOIN],
                vec![create, join],
                false,
                attach_answer,
            )
            .await;
        match joined {
            // A plugin that wired the sandbox itself and said nothing more
            // made no host-side interface worth naming.
            Ok(j) => Ok(j.and_then(|j| j.berth).unwrap_or_default()),
            // Leave is idempotent: after a failed CreateEndpoint it finds
            // nothing to undo, and DeleteEndpoint follows as in Docker.
            Err(f) => {
                let steps = vec![(method::LEAVE, leave.clone()), (method::DELETE_ENDPOINT, leave)];
                Err(self.plugin.roll_back(f, steps, "attach").await)
            }
        }
    }

    async fn detach(&self, _: &Context, ep: &Endpoint<'_>) -> Result<()> {
        let net = &self.net;
        let req = json(&EndpointRequest {
            network_id: net.id.clone(),
            endpoint_id: ep.id.to_owned(),
            berth: Some(berth_endpoint(net, ep)?),
        })?;
        // Both, whatever the first answers (teardown keeps going), in one hop.
        self.plugin
            .in_a_row(
                &[method::LEAVE, method::DELETE_ENDPOINT],
                vec![req.clone(), req],
                true,
                plain_answer,
            )
            .await
            .map(drop)
            .map_err(|f| f.err)
    }
}
