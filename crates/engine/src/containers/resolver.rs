//! What the embedded resolver knows of a container: its names on its
//! user-defined networks, its links, and its own view when it asks.

use berth_core::Netns;

use super::find_container;
use crate::engine::{Engine, State};
use crate::store::model::{ContainerRecord, LinkRecord, NetworkRecord};
use crate::{Error, Result, dns};

impl Engine {
    /// Checks `--link` targets: they exist, run, and share the network the
    /// new container starts on (the default bridge, or a user-defined one).
    pub(super) fn resolve_links(
        &self,
        st: &State,
        links: &[(String, String)],
        net: &NetworkRecord,
        user_defined: bool,
    ) -> Result<Vec<LinkRecord>> {
        let mut out = Vec::new();
        for (name, alias) in links {
            let t = find_container(st, name).map_err(|_| Error::LinkTargetNotFound { name: name.clone() })?;
            let default_bridge = net.builtin && net.net.name == "bridge";
            if !user_defined && !default_bridge {
                return Err(Error::LinkOffBridge {
                    network: net.net.name.clone(),
                });
            }
            if t.endpoint(&net.net.id).is_none() {
                return Err(Error::LinkAcrossNetworks {
                    name: name.clone(),
                    container: t.name.clone(),
                    network: net.net.name.clone(),
                });
            }
            out.push(LinkRecord {
                target: t.id.clone(),
                name: t.name.clone(),
                alias: alias.clone(),
            });
        }
        Ok(out)
    }

    /// What the resolver should know of a container: its names on its
    /// user-defined networks and, if it asks the resolver, its view.
    pub(crate) fn dns_entry(&self, c: &ContainerRecord) -> dns::Entry {
        let st = self.state();
        let mut names = vec![c.name.clone()];
        if c.hostname != c.name {
            names.push(c.hostname.clone());
        }
        names.push(c.short_id().to_owned());
        let mut networks = Vec::new();
        let mut forward = false;
        for ep in &c.endpoints {
            let Some(n) = st.networks.get(&ep.network_id) else {
                continue;
            };
            if n.builtin {
                continue;
            }
            forward |= !n.net.internal;
            networks.push((
                n.net.id.clone(),
                n.net.name.clone(),
                ep.addresses.iter().map(|a| a.addr()).collect(),
                ep.aliases.clone(),
            ));
        }
        let client = c.dns.embedded.then(|| dns::Client {
            networks: networks.iter().map(|n| n.0.clone()).collect(),
            links: c
                .dns
                .links
                .iter()
                .map(|l| (l.alias.to_lowercase(), l.target.clone()))
                .collect(),
            forward,
        });
        dns::Entry {
            id: c.id.clone(),
            names,
            ptr_name: c.name.clone(),
            networks,
            client,
            upstreams: c.dns.servers.clone(),
        }
    }

    /// Tells the resolver what a container now is.
    pub(crate) fn publish(&self, c: &ContainerRecord) {
        let ns = if c.dns.servers.is_empty() {
            None
        } else {
            self.sandbox(c)
                .ok()
                .and_then(|sb| Netns::open(&sb.path).ok())
                .map(std::sync::Arc::new)
        };
        self.dns.set(&self.dns_entry(c), ns);
    }
}
