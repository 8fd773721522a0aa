//! API versions: the `/v1.41` of a Docker client's paths.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// A Docker Engine API version, `MAJOR.MINOR` (`1.41`), ordered as
/// numbers (1.5 < 1.24).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    /// Always 1 so far.
    pub major: u16,
    /// 24 to 47 for berth.
    pub minor: u16,
}

/// The API version berth speaks: the newest path prefix it accepts, and
/// what `/_ping` and `/version` announce.
pub const API_VERSION: ApiVersion = ApiVersion::new(1, 47);

/// The oldest API version berth accepts, as Docker's daemon does.
pub const MIN_API_VERSION: ApiVersion = ApiVersion::new(1, 24);

impl ApiVersion {
    /// `MAJOR.MINOR`.
    pub const fn new(major: u16, minor: u16) -> Self {
        Self { major, minor }
    }

    /// Whether berth serves this version: an [`Error::VersionTooOld`] or
    /// [`Error::VersionTooNew`] in Docker's words when it does not.
    pub fn check(self) -> Result<(), Error> {
        if self < MIN_API_VERSION {
            Err(Error::VersionTooOld(self))
        } else if self > API_VERSION {
            Err(Error::VersionTooNew(self))
        } else {
            Ok(())
        }
    }

    /// Why a client asking for this version is refused, as
    /// [`ApiVersion::check`] says it, or `None` when berth serves it.
    pub fn unsupported(self) -> Option<String> {
        self.check().err().map(|e| e.to_string())
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for ApiVersion {
    type Err = Error;

    /// `MAJOR.MINOR` (or `MAJOR`); anything else is an
    /// [`Error::BadVersion`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || Error::BadVersion(s.to_owned());
        let (major, minor) = s.split_once('.').unwrap_or((s, "0"));
        let num = |p: &str| {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            p.parse::<u16>().map_err(|_| bad())
        };
        Ok(Self::new(num(major)?, num(minor)?))
    }
}

impl Serialize for ApiVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ApiVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_as_numbers() {
        let v = |s: &str| s.parse::<ApiVersion>().unwrap();
        assert!(v("1.5") < v("1.24"));
        assert_eq!(v("1.41").to_string(), "1.41");
        assert_eq!(v("1"), ApiVersion::new(1, 0));
        assert!("1.2.3".parse::<ApiVersion>().is_err());
        assert!("1.x".parse::<ApiVersion>().is_err());
        assert!(".5".parse::<ApiVersion>().is_err());
    }

    #[test]
    fn the_range_is_dockers_words() {
        assert_eq!(ApiVersion::new(1, 41).unsupported(), None);
        assert_eq!(API_VERSION.unsupported(), None);
        assert_eq!(MIN_API_VERSION.unsupported(), None);
        assert_eq!(
            ApiVersion::new(1, 48).unsupported().unwrap(),
            "client version 1.48 is too new. Maximum supported API version is 1.47"
        );
        assert!(
            ApiVersion::new(1, 23)
                .unsupported()
                .unwrap()
                .starts_with("client version 1.23 is too old. Minimum supported API version is 1.24")
        );
    }
}
