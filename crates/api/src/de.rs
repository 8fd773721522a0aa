//! Reading Docker clients' habits.
//!
//! Go clients send every field of a struct, absent ones as `null`
//! (`"Options": null`, `"IPAM": {"Config": null}`), and docker-py sends
//! `None` for every keyword left out. Each request field is therefore
//! read with [`nullable`]: `null` and a missing field both give the
//! field's default, so the engine keeps plain `String`s, `Vec`s and maps.

use serde::{Deserialize, Deserializer};

/// Reads `null` as the type's default (use with `#[serde(default)]` so a
/// missing field is the default too).
pub fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize, Default, Debug, PartialEq)]
    struct S {
        #[serde(default, deserialize_with = "super::nullable")]
        a: Vec<String>,
        #[serde(default, deserialize_with = "super::nullable")]
        b: String,
    }

    #[test]
    fn null_and_missing_are_the_default() {
        let s: S = serde_json::from_str(r#"{"a": null}"#).unwrap();
        assert_eq!(s, S::default());
        let s: S = serde_json::from_str(r#"{"a": ["x"], "b": "y"}"#).unwrap();
        assert_eq!(s.a, ["x"]);
        assert_eq!(s.b, "y");
        assert!(serde_json::from_str::<S>(r#"{"a": 5}"#).is_err());
    }
}
