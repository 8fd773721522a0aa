//! What the filters of `network ls` and `network prune` mean, after
//! Docker's: values of one key are alternatives, keys must all match, and
//! `label` filters must all match.
//!
//! | filter | `ls` | `prune` | keeps a network that … |
//! |---|---|---|---|
//! | `driver=D` | yes | | uses driver D (or a driver D is an alias of: `none` for `null`) |
//! | `name=S` | yes | | has S in its name |
//! | `id=P` | yes | | has an id starting with P |
//! | `label=K`, `label=K=V` | yes | yes | has label K (with value V) |
//! | `label!=K`, `label!=K=V` | | yes | does not match all of these |
//! | `type=custom\|builtin` | yes | | is user-defined / pre-defined |
//! | `dangling=true\|false` | yes | | is user-defined with no containers / is not |
//! | `scope=local\|global` | yes | | has that scope |
//! | `until=…` | | refused | |
//!
//! The container list (`docker ps`) takes `id=PREFIX`, `name=S`
//! (substring), `status=created|running|exited` (which lists exited
//! containers without `-a`, as Docker does) and `network=NAME|ID`.

use berth_api::Filters;

use std::collections::BTreeMap;

use crate::api::views::scope_name;
use crate::store::model::{ContainerRecord, NetworkRecord, Status};
use crate::{Error, Result};

const LIST_KEYS: &[&str] = &["dangling", "driver", "id", "label", "name", "scope", "type"];
const PRUNE_KEYS: &[&str] = &["label", "label!"];

/// The networks a list or prune keeps, from its filters.
#[derive(Debug, Default)]
pub(crate) struct NetworkFilter {
    drivers: Vec<String>,
    names: Vec<String>,
    ids: Vec<String>,
    scopes: Vec<String>,
    labels: Vec<String>,
    not_labels: Vec<String>,
    /// `type`: true for custom, false for builtin.
    custom: Vec<bool>,
    dangling: Vec<bool>,
}

fn values_of(f: &Filters, key: &str, accepted: &[(&'static str, bool)]) -> Result<Vec<bool>> {
    f.get(key)
        .iter()
        .map(|v| {
            accepted
                .iter()
                .find(|(a, _)| a == v)
                .map(|(_, b)| *b)
                .ok_or_else(|| Error::BadFilterValue {
                    key: key.to_owned(),
                    value: v.clone(),
                    accepted: accepted.iter().map(|(a, _)| *a).collect(),
                })
        })
        .collect()
}

impl NetworkFilter {
    /// The filters of `GET /networks`.
    pub(crate) fn list(f: &Filters) -> Result<Self> {
        if let Some(k) = f.keys().find(|k| !LIST_KEYS.contains(k)) {
            return Err(Error::UnknownFilter {
                key: k.to_owned(),
                accepted: LIST_KEYS,
            });
        }
        let scopes = f.get("scope").to_vec();
        if let Some(s) = scopes
            .iter()
            .find(|s| !["local", "global", "swarm"].contains(&s.as_str()))
        {
            return Err(Error::BadFilterValue {
                key: "scope".into(),
                value: s.clone(),
                accepted: vec!["local", "global", "swarm"],
            });
        }
        Ok(Self {
            drivers: f.get("driver").to_vec(),
            names: f.get("name").to_vec(),
            ids: f.get("id").to_vec(),
            scopes,
            labels: f.get("label").to_vec(),
            not_labels: Vec::new(),
            custom: values_of(f, "type", &[("custom", true), ("builtin", false)])?,
            dangling: values_of(
                f,
                "dangling",
                &[("true", true), ("1", true), ("false", false), ("0", false)],
            )?,
        })
    }

    /// Adds, for each `driver` value, the name of the driver it is an alias
    /// of (`none` → `null`), as `canonical` says.
    pub(crate) fn with_driver_names(mut self, canonical: impl Fn(&str) -> Option<String>) -> Self {
        let names: Vec<String> = self.drivers.iter().filter_map(|v| canonical(v)).collect();
        for n in names {
            if !self.drivers.contains(&n) {
                self.drivers.push(n);
            }
        }
        self
    }

    /// The filters of `POST /networks/prune`.
    pub(crate) fn prune(f: &Filters) -> Result<Self> {
        if f.contains("until") {
            return Err(Error::UntilFilter { accepted: PRUNE_KEYS });
        }
        if let Some(k) = f.keys().find(|k| !PRUNE_KEYS.contains(k)) {
            return Err(Error::UnknownFilter {
                key: k.to_owned(),
                accepted: PRUNE_KEYS,
            });
        }
        Ok(Self {
            labels: f.get("label").to_vec(),
            not_labels: f.get("label!").to_vec(),
            ..Self::default()
        })
    }

    /// Whether `n`, which has `containers` containers on it, is kept.
    pub(crate) fn matches(&self, n: &NetworkRecord, containers: usize) -> bool {
        let any = |vals: &[String], f: &dyn Fn(&str) -> bool| vals.is_empty() || vals.iter().any(|v| f(v));
        let dangling = !n.builtin && containers == 0;
        any(&self.drivers, &|v| {
            n.net.driver == v || (v == "none" && n.net.driver == "null")
        }) && any(&self.names, &|v| n.net.name.contains(v))
            && any(&self.ids, &|v| n.net.id.starts_with(v))
            && any(&self.scopes, &|v| scope_name(n.scope) == v)
            && (self.custom.is_empty() || self.custom.contains(&!n.builtin))
            && (self.dangling.is_empty() || self.dangling.contains(&dangling))
            && self.labels.iter().all(|l| has_label(n, l))
            && (self.not_labels.is_empty() || !self.not_labels.iter().all(|l| has_label(n, l)))
    }
}

const CONTAINER_KEYS: &[&str] = &["id", "label", "name", "network", "status"];

/// The containers `GET /containers/json` lists, from its filters.
#[derive(Debug, Default)]
pub(crate) struct ContainerFilter {
    ids: Vec<String>,
    names: Vec<String>,
    networks: Vec<String>,
    statuses: Vec<Status>,
    labels: Vec<String>,
}

impl ContainerFilter {
    /// The filters of `GET /containers/json`.
    pub(crate) fn new(f: &Filters) -> Result<Self> {
        if let Some(k) = f.keys().find(|k| !CONTAINER_KEYS.contains(k)) {
            return Err(Error::UnknownFilter {
                key: k.to_owned(),
                accepted: CONTAINER_KEYS,
            });
        }
        let statuses = f
            .get("status")
            .iter()
            .map(|v| match v.as_str() {
                "created" => Ok(Status::Created),
                "running" => Ok(Status::Running),
                "exited" => Ok(Status::Exited),
                _ => Err(Error::BadFilterValue {
                    key: "status".into(),
                    value: v.clone(),
                    accepted: vec!["created", "running", "exited"],
                }),
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            ids: f.get("id").to_vec(),
            names: f.get("name").to_vec(),
            networks: f.get("network").to_vec(),
            statuses,
            labels: f.get("label").to_vec(),
        })
    }

    /// A status filter lists exited containers without `all`.
    pub(crate) fn implies_all(&self) -> bool {
        !self.statuses.is_empty()
    }

    /// Whether `c` is listed; `networks` are the engine's, by id.
    pub(crate) fn matches(&self, c: &ContainerRecord, networks: &BTreeMap<String, NetworkRecord>) -> bool {
        let any = |vals: &[String], f: &dyn Fn(&str) -> bool| vals.is_empty() || vals.iter().any(|v| f(v));
        let on = |v: &str| {
            c.endpoints.iter().any(|e| {
                e.network_id.starts_with(v) && !v.is_empty()
                    || networks.get(&e.network_id).is_some_and(|n| n.net.name == v)
            }) || c.last_networks.iter().any(|n| n == v)
        };
        any(&self.ids, &|v| c.id.starts_with(v))
            && any(&self.names, &|v| c.name.contains(v))
            && any(&self.networks, &on)
            && (self.statuses.is_empty() || self.statuses.contains(&c.status))
            // berth's containers have no labels: a label filter keeps none.
            && self.labels.is_empty()
    }
}

/// `KEY` or `KEY=VALUE` against the network's labels.
fn has_label(n: &NetworkRecord, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => n.labels.get(k).is_some_and(|have| have == v),
        None => n.labels.contains_key(filter),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use berth_core::{Network, Scope};

    use super::*;

    fn net(name: &str, builtin: bool, labels: &[(&str, &str)]) -> NetworkRecord {
        NetworkRecord {
            net: Network {
                id: format!("{name}0123"),
                name: name.into(),
                driver: if name == "none" { "null" } else { "bridge" }.into(),
                options: BTreeMap::new(),
                ipam: Vec::new(),
                ipv6: false,
                internal: false,
            },
            created: String::new(),
            scope: Scope::Local,
            attachable: false,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            builtin,
        }
    }

    fn filters(pairs: &[(&str, &str)]) -> Filters {
        let mut f = Filters::new();
        for (k, v) in pairs {
            f.add(*k, *v);
        }
        f
    }

    #[test]
    fn list_filters_follow_docker() {
        let web = net("web", false, &[("team", "net"), ("env", "prod")]);
        let bridge = net("bridge", true, &[]);
        let none = net("none", true, &[]);
        let keeps = |pairs: &[(&str, &str)], n: &NetworkRecord, used: usize| {
            NetworkFilter::list(&filters(pairs))
                .unwrap()
                .with_driver_names(|v| (v == "none").then(|| "null".to_owned()))
                .matches(n, used)
        };
        assert!(keeps(&[("name", "we")], &web, 0));
        assert!(!keeps(&[("name", "db")], &web, 0));
        assert!(keeps(&[("name", "db"), ("name", "web")], &web, 0));
        assert!(keeps(&[("id", "web0")], &web, 0));
        assert!(keeps(&[("driver", "none")], &none, 0));
        assert!(keeps(&[("label", "team")], &web, 0));
        assert!(keeps(&[("label", "team=net"), ("label", "env")], &web, 0));
        assert!(!keeps(&[("label", "team=net"), ("label", "env=dev")], &web, 0));
        assert!(keeps(&[("type", "custom")], &web, 0));
        assert!(!keeps(&[("type", "custom")], &bridge, 0));
        assert!(keeps(&[("type", "builtin")], &bridge, 0));
        assert!(keeps(&[("dangling", "true")], &web, 0));
        assert!(!keeps(&[("dangling", "true")], &web, 1));
        assert!(!keeps(&[("dangling", "true")], &bridge, 0));
        assert!(keeps(&[("dangling", "false")], &bridge, 0));
        assert!(keeps(&[("scope", "local")], &web, 0));
    }

    #[test]
    fn bad_filters_name_what_is_accepted() {
        let e = NetworkFilter::list(&filters(&[("colour", "red")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid filter \"colour\" (accepted: dangling, driver, id, label, name, scope, type)"
        );
        let e = NetworkFilter::list(&filters(&[("type", "mine")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid filter type=\"mine\" (accepted: custom, builtin)"
        );
        let e = NetworkFilter::list(&filters(&[("dangling", "maybe")])).unwrap_err();
        assert!(e.to_string().contains("accepted: true, 1, false, 0"), "{e}");
        let e = NetworkFilter::prune(&filters(&[("until", "24h")])).unwrap_err();
        assert!(
            e.to_string().starts_with("filter \"until\" is not supported"),
            "{e}"
        );
        let e = NetworkFilter::prune(&filters(&[("name", "x")])).unwrap_err();
        assert_eq!(e.to_string(), "invalid filter \"name\" (accepted: label, label!)");
    }

    #[test]
    fn prune_label_filters() {
        let web = net("web", false, &[("keep", "yes")]);
        let tmp = net("tmp", false, &[("temp", "1")]);
        let keeps = |pairs: &[(&str, &str)], n: &NetworkRecord| {
            NetworkFilter::prune(&filters(pairs)).unwrap().matches(n, 0)
        };
        assert!(keeps(&[("label", "temp=1")], &tmp));
        assert!(!keeps(&[("label", "temp=1")], &web));
        assert!(!keeps(&[("label!", "keep")], &web));
        assert!(keeps(&[("label!", "keep")], &tmp));
    }
}
