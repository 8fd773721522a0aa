//! From a network's `-o` options to the CNI network configuration list it
//! runs: a list from `--cni-config-dir` (`cni.config=NAME`) or one plugin
//! built from flat options (`cni.plugin=TYPE` and `KEY[.KEY…]=VALUE`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use berth_core::{Error, IfName, Kind, Network, Result, parse_bool};
use serde_json::{Map, Value, json};

/// berth's own options; every other key is the plugin's (with `cni.plugin`).
pub const OPTIONS: &[&str] = &["cni.config", "cni.plugin", "cni.version", "cni.isolate"];

/// The `cniVersion` of chains built from `cni.plugin` unless `cni.version`
/// says otherwise.
pub const DEFAULT_VERSION: &str = "1.0.0";

/// A network configuration list: the plugins one network runs, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Chain {
    /// The CNI network's `name`: the list's, or the berth network's for
    /// `cni.plugin`. host-local keeps its leases under it.
    pub name: String,
    /// `cniVersion`, given to every plugin.
    pub version: String,
    /// `disableCheck`: `CHECK` is not run.
    pub disable_check: bool,
    /// Each plugin's configuration object, with a string `type`.
    pub plugins: Vec<Map<String, Value>>,
    /// Where it came from, for messages.
    pub source: String,
}

/// What the `-o` options of a cni network say.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// `cni.config=NAME`.
    Config(String),
    /// `cni.plugin=TYPE` with the plugin's own options.
    Plugin(String),
}

/// Checks the options that are berth's and says where the chain comes from.
pub fn source(opts: &BTreeMap<String, String>, dir: &Path) -> Result<Source> {
    if let Some(k) = opts
        .keys()
        .find(|k| k.starts_with("cni.") && !OPTIONS.contains(&k.as_str()))
    {
        return Err(Error::plugin(
            Kind::Invalid,
            format!(
                "unknown option {k:?} for driver cni (accepted: {}, and with cni.plugin the plugin's own options)",
                OPTIONS.join(", ")
            ),
        ));
    }
    if let Some(v) = opts.get("cni.isolate") {
        parse_bool("cni.isolate", v)?;
    }
    let empty = |k: &str| opts.get(k).is_some_and(|v| v.is_empty());
    if let Some(k) = ["cni.config", "cni.plugin", "cni.version"]
        .into_iter()
        .find(|k| empty(k))
    {
        return Err(Error::plugin(Kind::Invalid, format!("option {k} needs a value")));
    }
    match (opts.get("cni.config"), opts.get("cni.plugin")) {
        (Some(_), Some(_)) => Err(Error::plugin(
            Kind::Invalid,
            "options cni.config and cni.plugin exclude each other: name a configuration list or build one plugin's configuration, not both",
        )),
        (None, None) => {
            let found = list_names(dir);
            let given: Vec<&str> = opts.keys().map(String::as_str).collect();
            Err(Error::plugin(
                Kind::Invalid,
                format!(
                    "driver cni needs -o cni.config=NAME (a configuration in {}: {}) or -o cni.plugin=TYPE{}",
                    dir.display(),
                    if found.is_empty() {
                        "none found".to_owned()
                    } else {
                        found.join(", ")
                    },
                    if given.is_empty() {
                        String::new()
                    } else {
                        format!(" (given only: {})", given.join(", "))
                    }
                ),
            ))
        }
        (Some(name), None) => {
            if let Some(k) = opts
                .keys()
                .find(|k| !k.starts_with("cni.") || *k == "cni.version")
            {
                return Err(Error::plugin(
                    Kind::Invalid,
                    format!(
                        "option {k} does not go with cni.config={name}: the configuration file sets the plugins' options (plugin options are accepted with cni.plugin)"
                    ),
                ));
            }
            Ok(Source::Config(name.clone()))
        }
        (None, Some(kind)) => Ok(Source::Plugin(kind.clone())),
    }
}

/// Whether berth's firewall keeps the chain's bridges apart from other
/// networks (`cni.isolate`, on by default).
pub fn isolate(opts: &BTreeMap<String, String>) -> bool {
    opts.get("cni.isolate")
        .and_then(|v| parse_bool("cni.isolate", v).ok())
        .unwrap_or(true)
}

/// The chain a network runs: read from the configuration directory, or
/// built from its options. Checks its shape, not whether its plugins exist.
pub fn chain(net: &Network, dir: &Path) -> Result<Chain> {
    match source(&net.options, dir)? {
        Source::Config(name) => load(dir, &name),
        Source::Plugin(kind) => inline(net, &kind),
    }
}

/// A plugin's configuration from the network's flat options: `KEY=VALUE`
/// sets a top-level field, `A.B=VALUE` the field `B` of the object `A`.
/// A value that reads as JSON (`true`, `1500`, `[…]`, `{…}`, `"quoted"`)
/// is that JSON; anything else is a string.
fn inline(net: &Network, kind: &str) -> Result<Chain> {
    let mut conf = Map::new();
    conf.insert("type".into(), Value::String(kind.to_owned()));
    for (key, value) in net.options.iter().filter(|(k, _)| !k.starts_with("cni.")) {
        let path: Vec<&str> = key.split('.').collect();
        if path.iter().any(|p| p.is_empty()) {
            return Err(Error::plugin(
                Kind::Invalid,
                format!(
                    "invalid option {key:?}: empty key between dots (accepted: KEY or KEY.SUBKEY…, e.g. ipam.type)"
                ),
            ));
        }
        if path.len() == 1 && ["type", "name", "cniVersion", "prevResult"].contains(&key.as_str()) {
            return Err(Error::plugin(
                Kind::Invalid,
                format!(
                    "option {key} is set by berth: type comes from cni.plugin, name is the network's name, cniVersion comes from cni.version"
                ),
            ));
        }
        insert(&mut conf, key, &path, parse_value(value))?;
    }
    let chain = Chain {
        name: net.name.clone(),
        version: net
            .options
            .get("cni.version")
            .cloned()
            .unwrap_or_else(|| DEFAULT_VERSION.to_owned()),
        disable_check: false,
        plugins: vec![conf],
        source: format!("-o cni.plugin={kind}"),
    };
    chain.check()?;
    Ok(chain)
}

/// A flat option's value as JSON.
pub fn parse_value(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_owned()))
}

fn insert(obj: &mut Map<String, Value>, key: &str, path: &[&str], v: Value) -> Result<()> {
    let clash = |at: &str| {
        Error::plugin(
            Kind::Invalid,
            format!(
                "option {key} clashes with another option: {at} is already given a value that is not an object"
            ),
        )
    };
    let (last, parents) = path.split_last().ok_or_else(|| clash(key))?;
    let mut cur = obj;
    for (i, p) in parents.iter().enumerate() {
        let entry = cur
            .entry((*p).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        cur = entry
            .as_object_mut()
            .ok_or_else(|| clash(&path[..=i].join(".")))?;
    }
    if cur.contains_key(*last) {
        return Err(Error::plugin(
            Kind::Invalid,
            format!("option {key} is given twice (also inside the value of another option)"),
        ));
    }
    cur.insert((*last).to_owned(), v);
    Ok(())
}

/// Configuration files of a directory, as libcni reads them: `.conflist`
/// lists, `.conf` and `.json` single plugins; sorted by file name.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| ["conflist", "conf", "json"].contains(&e))
        })
        .collect();
    out.sort();
    out
}

/// The names of the configurations a directory holds, for messages.
fn list_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = files(dir)
        .iter()
        .filter_map(|p| read(p).ok())
        .map(|c| c.name)
        .collect();
    names.dedup();
    names
}

fn read(path: &Path) -> Result<Chain> {
    let text =
        fs::read(path).map_err(|e| Error::io(format!("reading CNI configuration {}", path.display()), e))?;
    let v: Value = serde_json::from_slice(&text).map_err(|e| {
        Error::plugin(
            Kind::Invalid,
            format!("CNI configuration {} does not parse: {e}", path.display()),
        )
    })?;
    from_value(&v, &path.display().to_string())
}

/// Finds configuration `name` in `dir`: the file `NAME.conflist`,
/// `NAME.conf` or `NAME.json`, else the first file whose `name` is NAME.
pub fn load(dir: &Path, name: &str) -> Result<Chain> {
    if name.contains('/') || name == "." || name == ".." {
        return Err(Error::plugin(
            Kind::Invalid,
            format!(
                "invalid cni.config {name:?}: a configuration's name, not a path (configurations are read from {})",
                dir.display()
            ),
        ));
    }
    if !dir.is_dir() {
        return Err(Error::plugin(
            Kind::Invalid,
            format!(
                "unknown CNI configuration {name:?}: the configuration directory {} does not exist (--cni-config-dir)",
                dir.display()
            ),
        ));
    }
    for ext in ["conflist", "conf", "json"] {
        let p = dir.join(format!("{name}.{ext}"));
        if p.is_file() {
            return read(&p);
        }
    }
    let mut found = Vec::new();
    let mut broken = Vec::new();
    for p in files(dir) {
        match read(&p) {
            Ok(c) if c.name == name => return Ok(c),
            Ok(c) => found.push(c.name),
            Err(_) => broken.push(
                p.file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
        }
    }
    found.dedup();
    Err(Error::plugin(
        Kind::Invalid,
        format!(
            "unknown CNI configuration {name:?} in {} (found: {}{})",
            dir.display(),
            if found.is_empty() {
                "none".to_owned()
            } else {
                found.join(", ")
            },
            if broken.is_empty() {
                String::new()
            } else {
                format!("; not parsed: {}", broken.join(", "))
            }
        ),
    ))
}

/// Reads a configuration list (`{"name", "cniVersion", "plugins": […]}`)
/// or a single plugin's configuration (`{"name", "cniVersion", "type", …}`).
pub fn from_value(v: &Value, source: &str) -> Result<Chain> {
    let bad = |why: &str| Error::plugin(Kind::Invalid, format!("CNI configuration {source}: {why}"));
    let o = v.as_object().ok_or_else(|| bad("not a JSON object"))?;
    let name = o
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad("it has no name"))?;
    let version = o
        .get("cniVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("it has no cniVersion"))?;
    let plugins = match o.get("plugins") {
        Some(Value::Array(list)) => list
            .iter()
            .map(|p| {
                p.as_object()
                    .cloned()
                    .ok_or_else(|| bad("an entry of plugins is not an object"))
            })
            .collect::<Result<Vec<_>>>()?,
        Some(_) => return Err(bad("plugins is not a list")),
        None => {
            let mut single = o.clone();
            single.remove("name");
            single.remove("cniVersion");
            vec![single]
        }
    };
    let disable_check = match o.get("disableCheck") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => parse_bool("disableCheck", s).map_err(|e| bad(&e.to_string()))?,
        Some(_) => return Err(bad("disableCheck is not true or false")),
    };
    let chain = Chain {
        name: name.to_owned(),
        version: version.to_owned(),
        disable_check,
        plugins,
        source: source.to_owned(),
    };
    chain.check()?;
    Ok(chain)
}

/// `major.minor.patch` as numbers.
pub fn version(s: &str) -> Option<(u32, u32, u32)> {
    let mut it = s.split('.').map(|p| p.parse::<u32>().ok());
    let v = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(v)
}

/// Whether a plugin type can name a program: a file name, not a path.
fn program_name(kind: &str) -> bool {
    !kind.is_empty() && !kind.contains('/') && kind != "." && kind != ".." && !kind.contains('\0')
}

impl Chain {
    fn check(&self) -> Result<()> {
        let bad =
            |why: String| Error::plugin(Kind::Invalid, format!("CNI configuration {}: {why}", self.source));
        if version(&self.version).is_none() {
            return Err(bad(format!(
                "cniVersion {:?} is not a version (such as {DEFAULT_VERSION})",
                self.version
            )));
        }
        if self.plugins.is_empty() {
            return Err(bad("it lists no plugins".into()));
        }
        for p in &self.plugins {
            match p.get("type").and_then(Value::as_str) {
                Some(k) if program_name(k) => {}
                Some(k) => return Err(bad(format!("plugin type {k:?} is not a program's name"))),
                None => return Err(bad("a plugin has no type".into())),
            }
            if let Some(ipam) = p.get("ipam") {
                match ipam.get("type").map(Value::as_str) {
                    None => {}
                    Some(Some(k)) if program_name(k) => {}
                    Some(_) => {
                        return Err(bad(format!("ipam type {} is not a program's name", ipam["type"])));
                    }
                }
            }
        }
        for b in self.bridges() {
            IfName::new(&b).map_err(|e| bad(format!("bridge {b:?}: {e}")))?;
        }
        Ok(())
    }

    /// The plugin types, in order.
    pub fn types(&self) -> impl Iterator<Item = &str> {
        self.plugins
            .iter()
            .map(|p| p.get("type").and_then(Value::as_str).unwrap_or_default())
    }

    /// The programs the chain needs: each plugin's type and its IPAM
    /// plugin's (which the plugin runs itself, from `CNI_PATH`), with what
    /// needs each.
    pub fn programs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for p in &self.plugins {
            let kind = p.get("type").and_then(Value::as_str).unwrap_or_default();
            out.push((kind.to_owned(), format!("plugin {kind:?}")));
            if let Some(ipam) = p.get("ipam").and_then(|i| i.get("type")).and_then(Value::as_str) {
                out.push((
                    ipam.to_owned(),
                    format!("IPAM plugin {ipam:?} (ipam.type of plugin {kind})"),
                ));
            }
        }
        out
    }

    /// The bridges the chain's `bridge` plugins put containers on
    /// (`bridge`, `cni0` by default).
    pub fn bridges(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .plugins
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("bridge"))
            .map(|p| {
                p.get("bridge")
                    .and_then(Value::as_str)
                    .unwrap_or("cni0")
                    .to_owned()
            })
            .collect();
        out.dedup();
        out
    }

    /// Whether `prevResult` goes with `DEL` and `CHECK` runs (spec 0.4.0).
    pub fn has_check(&self) -> bool {
        version(&self.version).is_some_and(|v| v >= (0, 4, 0))
    }

    /// The configuration plugin `i` reads on stdin: its own, with the
    /// list's `name` and `cniVersion`, and `prevResult` when given.
    pub fn plugin_conf(&self, i: usize, prev: Option<&Value>) -> Vec<u8> {
        let mut conf = self.plugins[i].clone();
        conf.insert("cniVersion".into(), Value::String(self.version.clone()));
        conf.insert("name".into(), Value::String(self.name.clone()));
        match prev {
            Some(p) => {
                conf.insert("prevResult".into(), p.clone());
            }
            None => {
                conf.remove("prevResult");
            }
        }
        serde_json::to_vec(&Value::Object(conf)).unwrap_or_default()
    }

    /// The chain as a configuration list, which [`from_value`] reads back.
    pub fn to_value(&self) -> Value {
        json!({
            "cniVersion": self.version,
            "name": self.name,
            "disableCheck": self.disable_check,
            "plugins": self.plugins,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(opts: &[(&str, &str)]) -> Network {
        Network {
            id: "0".repeat(64),
            name: "n1".into(),
            driver: "cni".into(),
            options: opts.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
            ipam: vec![],
            ipv6: false,
            internal: false,
        }
    }

    /// A scratch directory of the test's own, removed when dropped.
    struct Scratch(PathBuf);

    impl std::ops::Deref for Scratch {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn dir() -> Scratch {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("berth-cni-config-{}-{n}", std::process::id()));
        let _ = fs::create_dir_all(&d);
        Scratch(d)
    }

    #[test]
    fn flat_options_make_nested_json() {
        let c = chain(
            &net(&[
                ("cni.plugin", "bridge"),
                ("bridge", "cni0"),
                ("isGateway", "true"),
                ("mtu", "1400"),
                ("ipam.type", "host-local"),
                ("ipam.subnet", "10.88.0.0/16"),
                ("ipam.routes", r#"[{"dst":"0.0.0.0/0"}]"#),
                ("vlanName", r#""42""#),
            ]),
            &dir(),
        )
        .unwrap();
        assert_eq!(c.name, "n1");
        assert_eq!(c.version, DEFAULT_VERSION);
        assert_eq!(
            Value::Object(c.plugins[0].clone()),
            json!({
                "type": "bridge", "bridge": "cni0", "ipam": {"routes": [{"dst": "0.0.0.0/0"}], "subnet": "10.88.0.0/16", "type": "host-local"},
                "isGateway": true, "mtu": 1400, "vlanName": "42",
            })
        );
        assert_eq!(c.bridges(), vec!["cni0"]);
        let conf: Value =
            serde_json::from_slice(&c.plugin_conf(0, Some(&json!({"cniVersion": "1.0.0"})))).unwrap();
        assert_eq!(conf["name"], "n1");
        assert_eq!(conf["cniVersion"], "1.0.0");
        assert_eq!(conf["prevResult"]["cniVersion"], "1.0.0");
        assert_eq!(from_value(&c.to_value(), "state").unwrap().plugins, c.plugins);
    }

    #[test]
    fn bad_options_are_named() {
        let d = dir();
        for (opts, want) in [
            (vec![], "needs -o cni.config=NAME"),
            (vec![("bogus.option", "1")], "given only: bogus.option"),
            (
                vec![("cni.config", "a"), ("cni.plugin", "b")],
                "exclude each other",
            ),
            (
                vec![("cni.plugin", "bridge"), ("cni.colour", "x")],
                "unknown option \"cni.colour\"",
            ),
            (
                vec![("cni.plugin", "bridge"), ("cni.isolate", "maybe")],
                "cni.isolate",
            ),
            (vec![("cni.plugin", "")], "cni.plugin needs a value"),
            (vec![("cni.plugin", "../x")], "not a program's name"),
            (
                vec![("cni.plugin", "bridge"), ("name", "x")],
                "option name is set by berth",
            ),
            (
                vec![("cni.plugin", "bridge"), ("ipam", "dhcp"), ("ipam.type", "x")],
                "option ipam.type clashes",
            ),
            (
                vec![
                    ("cni.plugin", "bridge"),
                    ("ipam", r#"{"type":"a"}"#),
                    ("ipam.type", "x"),
                ],
                "given twice",
            ),
            (vec![("cni.plugin", "bridge"), ("ipam..type", "x")], "empty key"),
            (
                vec![("cni.plugin", "bridge"), ("cni.version", "one")],
                "is not a version",
            ),
            (
                vec![("cni.plugin", "bridge"), ("bridge", "a-bridge-name-too-long")],
                "bridge \"a-bridge-name-too-long\"",
            ),
            (
                vec![("cni.config", "x"), ("mtu", "1")],
                "option mtu does not go with cni.config=x",
            ),
            (vec![("cni.config", "nope")], "unknown CNI configuration \"nope\""),
        ] {
            let e = chain(&net(&opts), &d).unwrap_err().to_string();
            assert!(e.contains(want), "{opts:?}: {e}");
        }
    }

    #[test]
    fn configurations_are_found_by_file_or_name() {
        let scratch = dir();
        let d = scratch.join("found");
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        fs::write(
            d.join("10-a.conflist"),
            r#"{"cniVersion":"0.4.0","name":"alpha","disableCheck":true,"plugins":[{"type":"bridge"},{"type":"tuning"}]}"#,
        )
        .unwrap();
        fs::write(
            d.join("20-b.conf"),
            r#"{"cniVersion":"1.0.0","name":"beta","type":"macvlan","master":"lan0"}"#,
        )
        .unwrap();
        fs::write(d.join("30-broken.conf"), "{ not json").unwrap();
        fs::write(d.join("readme.txt"), "not a configuration").unwrap();
        let a = load(&d, "alpha").unwrap();
        assert_eq!(a.types().collect::<Vec<_>>(), ["bridge", "tuning"]);
        assert!(a.disable_check && a.has_check());
        let b = load(&d, "beta").unwrap();
        assert_eq!(b.plugins[0]["master"], "lan0");
        assert!(!b.plugins[0].contains_key("name"));
        let e = load(&d, "gamma").unwrap_err().to_string();
        assert!(
            e.contains("found: alpha, beta; not parsed: 30-broken.conf"),
            "{e}"
        );
        let e = load(&d, "30-broken").unwrap_err().to_string();
        assert!(e.contains("30-broken.conf does not parse"), "{e}");
        assert!(load(&d, "../x").unwrap_err().to_string().contains("not a path"));
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn versions_compare_as_numbers() {
        assert!(version("0.10.0") > version("0.4.0"));
        assert_eq!(version("1.0"), None);
        assert_eq!(version("1.0.0.0"), None);
    }
}
