//! Semantic versions of agents and firmware (`MAJOR.MINOR.PATCH`).

use core::fmt;
use core::str::FromStr;
use serde::{Deserialize, Serialize};

/// A `MAJOR.MINOR.PATCH` version. Ordered field by field, so `0.10.0 > 0.9.3`.
///
/// Wire form: three varint `u32`s in order major, minor, patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SemVer {
    /// Incompatible changes.
    pub major: u32,
    /// Compatible additions.
    pub minor: u32,
    /// Fixes.
    pub patch: u32,
}

impl SemVer {
    /// Builds a version from its three parts.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self { major, minor, patch }
    }
}

impl fmt::Display for SemVer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// `SemVer` text was not three dot-separated decimal numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SemVerParseError;

impl fmt::Display for SemVerParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected a version like 1.4.0 (three dot-separated numbers)")
    }
}

#[cfg(feature = "std")]
impl std::error::Error for SemVerParseError {}

impl FromStr for SemVer {
    type Err = SemVerParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.trim().split('.');
        let mut next = || -> Result<u32, SemVerParseError> {
            parts.next().ok_or(SemVerParseError)?.parse().map_err(|_| SemVerParseError)
        };
        let version = SemVer::new(next()?, next()?, next()?);
        if parts.next().is_some() {
            return Err(SemVerParseError);
        }
        Ok(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        let a: SemVer = "0.10.0".parse().unwrap();
        let b: SemVer = "0.9.3".parse().unwrap();
        assert!(a > b);
        assert_eq!(a.to_string(), "0.10.0");
        assert!("1.2".parse::<SemVer>().is_err());
        assert!("1.2.3.4".parse::<SemVer>().is_err());
        assert!("1.x.3".parse::<SemVer>().is_err());
    }
}
