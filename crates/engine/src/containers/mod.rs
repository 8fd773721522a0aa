//! Containers: a sandbox (a pinned network namespace) with its networks
//! and generated files, and the process the client runs in it.
//!
//! - `create`: `berth run`'s request checked, the sandbox made on its
//!   first network, the record written;
//! - `endpoints`: one membership in one network, planned under the state
//!   lock and wired through the network's handle;
//! - `intents`: attaches written down before a driver makes them, so
//!   that a crash between its work and the commit is rolled back;
//! - `egress`: joining networks as a whole: cluster claims and
//!   announcements for global networks, the gateway bridge for networks
//!   with no way out of their own;
//! - `connect`: `network connect` and `network disconnect`;
//! - `external`: namespaces of other runtimes (berth as a CNI plugin);
//! - `control`: `stop`, `start`, `restart`, `kill`, `wait`;
//! - `lifecycle`: the process started or ended, the network taken down,
//!   removal, reaping;
//! - `files`: the generated `/etc/hosts`, `/etc/resolv.conf` and
//!   `/etc/hostname`;
//! - `resolver`: what the embedded resolver knows of a container;
//! - `dnsopts`: the checks of `--dns`, `--add-host`, `--link`, …;
//! - `names`: random names; `process`: whether a process still runs.

mod connect;
mod control;
mod create;
pub(crate) mod dnsopts;
pub(crate) mod egress;
pub(crate) mod endpoints;
mod external;
pub(crate) mod files;
mod intents;
mod lifecycle;
mod names;
pub(crate) mod process;
mod resolver;
mod shim;

use std::fs;

use berth_api::{ContainerInspect, ContainerSummary, Filters};

use crate::api::{ContainerFilter, views};
use crate::engine::{Engine, State};
use crate::store::model::{ContainerRecord, Status};
use crate::{Error, Object, Result, util};

// The request and answer of a create are the API's (`berth_api`), under
// the names this module has always used for them.
pub use berth_api::{ContainerCreateRequest as ContainerCreate, ContainerCreateResponse as Created};
pub use control::parse_signal;
pub use shim::{shim_answer, shim_command};

/// Finds a container by name, full id or unique id prefix.
pub(crate) fn find_container<'a>(st: &'a State, key: &str) -> Result<&'a ContainerRecord> {
    if let Some(c) = st.containers.get(key) {
        return Ok(c);
    }
    if let Some(c) = st.containers.values().find(|c| c.name == key) {
        return Ok(c);
    }
    let mut by_prefix = st
        .containers
        .values()
        .filter(|c| !key.is_empty() && c.id.starts_with(key));
    match (by_prefix.next(), by_prefix.next()) {
        (Some(c), None) => Ok(c),
        (Some(_), Some(_)) => Err(Error::AmbiguousPrefix {
            kind: Object::Container,
            key: key.to_owned(),
        }),
        _ => Err(Error::ContainerNotFound { key: key.to_owned() }),
    }
}

impl Engine {
    /// A container record, by name, id or id prefix.
    pub fn find_container(&self, key: &str) -> Result<ContainerRecord> {
        find_container(&self.state(), key).cloned()
    }

    /// A container in `docker inspect`'s shape.
    pub fn inspect_container(&self, key: &str) -> Result<ContainerInspect> {
        let st = self.state();
        let c = find_container(&st, key)?;
        Ok(views::container(c, &self.cfg.paths(&c.id), &st.networks))
    }

    /// Containers in Docker's summary shape (`docker ps`), newest first,
    /// that pass `filters`; running and created ones only unless `all`.
    pub fn list_containers(&self, all: bool, filters: &Filters) -> Result<Vec<ContainerSummary>> {
        let keep = ContainerFilter::new(filters)?;
        let all = all || keep.implies_all();
        let now = util::unix_now();
        let st = self.state();
        let mut cs: Vec<&ContainerRecord> = st
            .containers
            .values()
            .filter(|c| all || c.status != Status::Exited)
            .filter(|c| keep.matches(c, &st.networks))
            .collect();
        cs.sort_by(|a, b| b.created.cmp(&a.created));
        Ok(cs
            .iter()
            .map(|c| views::container_summary(c, &st.networks, now))
            .collect())
    }

    /// A container's output, as `docker logs` prints it: the last `tail`
    /// lines (all with `None`), each after its time with `timestamps`.
    pub fn logs(&self, key: &str, tail: Option<usize>, timestamps: bool) -> Result<Vec<u8>> {
        let c = self.find_container(key)?;
        let p = self.cfg.paths(&c.id).log;
        let raw = match fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(format!("reading {}", p.display()), e)),
        };
        Ok(render_log(&raw, tail, timestamps))
    }
}

/// The log file's lines are `TIME STREAM TEXT` (see `berth`'s `run.rs`);
/// a line in another shape (the shim's own words) is shown as it is.
fn render_log(raw: &[u8], tail: Option<usize>, timestamps: bool) -> Vec<u8> {
    let lines: Vec<&[u8]> = raw.split_inclusive(|b| *b == b'\n').collect();
    let skip = tail.map_or(0, |n| lines.len().saturating_sub(n));
    let mut out = Vec::with_capacity(raw.len());
    for line in &lines[skip..] {
        let parsed = line.iter().position(|b| *b == b' ').and_then(|sp| {
            let (time, rest) = (&line[..sp], &line[sp + 1..]);
            let text = rest
                .strip_prefix(b"stdout ")
                .or_else(|| rest.strip_prefix(b"stderr "))?;
            (time.ends_with(b"Z") && time.first().is_some_and(u8::is_ascii_digit)).then_some((time, text))
        });
        match parsed {
            Some((time, text)) => {
                if timestamps {
                    out.extend_from_slice(time);
                    out.push(b' ');
                }
                out.extend_from_slice(text);
            }
            None => out.extend_from_slice(line),
        }
    }
    out
}

/// A crash point for tests of recovery: when `BERTH_FAILPOINT` names this
/// point, the daemon dies here as `kill -9` would make it.
pub(super) fn failpoint(name: &str) {
    if std::env::var("BERTH_FAILPOINT").is_ok_and(|v| v == name) {
        tracing::error!("failpoint {name}: aborting");
        std::process::abort();
    }
}
