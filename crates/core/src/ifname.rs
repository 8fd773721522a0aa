use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{BadIfName, Error, IfNameFault, Result};

/// A Linux interface name: 1 to 15 bytes, no `/`, `:`, whitespace or NUL,
/// and neither `.` nor `..` (the kernel's `dev_valid_name`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IfName(String);

/// The longest interface name the kernel accepts (`IFNAMSIZ - 1`).
pub const IFNAME_MAX: usize = 15;

impl IfName {
    /// Checks `name` against the kernel's rules.
    pub fn new(name: &str) -> Result<Self> {
        Self::check(name).map_err(Error::IfName)
    }

    /// Checks the value of the option `key`, which names an interface;
    /// the error names the option.
    pub fn for_option(key: &str, value: &str) -> Result<Self> {
        Self::check(value).map_err(|name| Error::OptionIfName {
            key: key.to_owned(),
            name,
        })
    }

    /// Checks `name` against the kernel's rules, saying what is wrong with
    /// it, for callers that name the field it came from.
    pub fn check(name: &str) -> std::result::Result<Self, BadIfName> {
        let bad = |fault| BadIfName {
            name: name.to_owned(),
            fault,
        };
        if name.is_empty() {
            return Err(bad(IfNameFault::Empty));
        }
        if name.len() > IFNAME_MAX {
            return Err(bad(IfNameFault::TooLong(name.len())));
        }
        if name == "." || name == ".." {
            return Err(bad(IfNameFault::PathComponent));
        }
        if let Some(c) = name
            .chars()
            .find(|c| *c == '/' || *c == ':' || c.is_whitespace() || *c == '\0')
        {
            return Err(bad(IfNameFault::Contains(c)));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for IfName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl TryFrom<String> for IfName {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::new(&s)
    }
}

impl From<IfName> for String {
    fn from(n: IfName) -> String {
        n.0
    }
}

impl AsRef<str> for IfName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kernel_names() {
        for n in ["eth0", "berth0", "br-0123456789ab", "a.b", "x"] {
            assert_eq!(IfName::new(n).unwrap().as_str(), n);
        }
    }

    #[test]
    fn rejects_what_the_kernel_rejects() {
        for n in ["", "0123456789abcdef", "a/b", "a:b", "a b", ".", "..", "a\tb"] {
            let err = IfName::new(n).unwrap_err().to_string();
            assert!(err.contains("accepted: 1-15 bytes"), "{n:?}: {err}");
        }
    }
}
