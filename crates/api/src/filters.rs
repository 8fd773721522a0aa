//! The `filters` query parameter of list and prune requests.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The `filters` of `GET /networks` and `POST /networks/prune`: each key
/// (`driver`, `name`, `label`, …) with its values. A request sends it as
/// JSON in the query string, in either of Docker's two encodings, and
/// both are read: `{"name": {"web": true}}` (the Go client's, which
/// [`Serialize`] writes too) and `{"name": ["web"]}` (docker-py's and old
/// clients'). Values of one key are alternatives; keys must all match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filters(BTreeMap<String, Vec<String>>);

impl Filters {
    /// No filters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one `key=value` filter.
    pub fn add(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let values = self.0.entry(key.into()).or_default();
        let value = value.into();
        if let Err(at) = values.binary_search(&value) {
            values.insert(at, value);
        }
    }

    /// The values given for `key`, sorted (none when the key is absent).
    pub fn get(&self, key: &str) -> &[String] {
        self.0.get(key).map(Vec::as_slice).unwrap_or_default()
    }

    /// Whether `key` was given.
    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// The keys given, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Each key with its values.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// No filters at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Filters {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(
            self.0
                .iter()
                .map(|(k, vs)| (k, vs.iter().map(|v| (v, true)).collect::<BTreeMap<_, _>>())),
        )
    }
}

/// The values of one key: `["a", "b"]` or `{"a": true, "b": true}`.
struct Values(Vec<String>);

impl<'de> Deserialize<'de> for Values {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Values;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a list of values (["v"]) or an object of values ({"v": true})"#)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Values, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = a.next_element::<String>()? {
                    out.push(v);
                }
                Ok(Values(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Values, A::Error> {
                let mut out = Vec::new();
                // Docker keeps a value whatever its boolean says; so does berth.
                while let Some((v, _)) = a.next_entry::<String, bool>()? {
                    out.push(v);
                }
                Ok(Values(out))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Values, E> {
                Ok(Values(Vec::new()))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Filters {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = Option::<BTreeMap<String, Values>>::deserialize(d)?.unwrap_or_default();
        let mut f = Filters::new();
        for (k, Values(vs)) in m {
            f.0.entry(k.clone()).or_default();
            for v in vs {
                f.add(k.clone(), v);
            }
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_encodings_read_the_same() {
        let go: Filters =
            serde_json::from_str(r#"{"name":{"web":true,"db":true},"driver":{"bridge":true}}"#).unwrap();
        let py: Filters = serde_json::from_str(r#"{"name":["db","web"],"driver":["bridge"]}"#).unwrap();
        assert_eq!(go, py);
        assert_eq!(go.get("name"), ["db", "web"]);
        assert_eq!(go.get("label"), [] as [String; 0]);
        assert_eq!(
            serde_json::to_string(&go).unwrap(),
            r#"{"driver":{"bridge":true},"name":{"db":true,"web":true}}"#
        );
        let back: Filters = serde_json::from_str(&serde_json::to_string(&go).unwrap()).unwrap();
        assert_eq!(back, go);
    }

    #[test]
    fn other_shapes_are_refused() {
        assert!(serde_json::from_str::<Filters>(r#"{"name":"web"}"#).is_err());
        assert!(serde_json::from_str::<Filters>(r#"["name"]"#).is_err());
        assert!(serde_json::from_str::<Filters>("null").unwrap().is_empty());
    }
}
