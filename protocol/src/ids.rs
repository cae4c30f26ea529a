//! Identities that cross boundaries: devices, models, content digests and signing keys.
//!
//! Each is a newtype validated on construction *and* on deserialization, so a decoded message
//! never carries an identity that could not have been built locally (for example a device id
//! containing MQTT wildcards).

use alloc::string::String;
use core::fmt;
use core::str::FromStr;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// Longest device id or model name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Why a string or hex text is not a valid identity.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdError {
    /// Empty, or longer than [`MAX_NAME_LEN`] bytes.
    Length {
        /// What kind of identity.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// Contains a character outside `[A-Za-z0-9._-]`.
    Character {
        /// What kind of identity.
        what: &'static str,
        /// The offending character.
        found: char,
    },
    /// Not the expected number of hex digits.
    Hex {
        /// What kind of identity.
        what: &'static str,
        /// Hex digits expected.
        expected_digits: usize,
    },
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdError::Length { what, len } => {
                write!(f, "{what} must be 1 to {MAX_NAME_LEN} bytes long, got {len}")
            }
            IdError::Character { what, found } => {
                write!(f, "{what} may only contain letters, digits, '.', '_' and '-', found {found:?}")
            }
            IdError::Hex { what, expected_digits } => {
                write!(f, "{what} must be exactly {expected_digits} hex digits")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for IdError {}

fn validate_name(what: &'static str, s: &str) -> Result<(), IdError> {
    if s.is_empty() || s.len() > MAX_NAME_LEN {
        return Err(IdError::Length { what, len: s.len() });
    }
    if let Some(found) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(IdError::Character { what, found });
    }
    Ok(())
}

macro_rules! name_newtype {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        ///
        /// 1 to 64 bytes of `[A-Za-z0-9._-]`: safe as an MQTT topic level and a file name.
        /// Wire form: a postcard string (varint length, UTF-8 bytes).
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `s`.
            pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                validate_name($what, &s)?;
                Ok(Self(s))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_newtype!(
    /// A device's identity, unique within a fleet namespace.
    DeviceId,
    "device id"
);
name_newtype!(
    /// A model's name (all versions of one model share it).
    ModelName,
    "model name"
);

macro_rules! bytes_newtype {
    ($(#[$doc:meta])* $name:ident, $len:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Lower-case hex.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for byte in self.0 {
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                let mut out = [0u8; $len];
                hex::decode_to_slice(s.trim(), &mut out)
                    .map_err(|_| IdError::Hex { what: $what, expected_digits: 2 * $len })?;
                Ok(Self(out))
            }
        }

        /// Hex text in human-readable formats (JSON, TOML); raw bytes in postcard.
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                if serializer.is_human_readable() {
                    serializer.collect_str(self)
                } else {
                    self.0.serialize(serializer)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                if deserializer.is_human_readable() {
                    let s = String::deserialize(deserializer)?;
                    s.parse().map_err(serde::de::Error::custom)
                } else {
                    <[u8; $len]>::deserialize(deserializer).map(Self)
                }
            }
        }
    };
}

bytes_newtype!(
    /// A SHA-256 digest. Blobs, package heads and datasets are addressed by it.
    ///
    /// Wire form: 32 raw bytes (no length prefix). Text form: 64 lower-case hex digits.
    Digest,
    32,
    "SHA-256 digest"
);

bytes_newtype!(
    /// Identifies an ed25519 public key: the first 8 bytes of SHA-256 over its 32 raw bytes.
    ///
    /// Wire form: 8 raw bytes. Text form: 16 lower-case hex digits.
    KeyId,
    8,
    "key id"
);

bytes_newtype!(
    /// A raw ed25519 public key (32 bytes, RFC 8032 encoding).
    ///
    /// Wire form: 32 raw bytes. Text form: 64 lower-case hex digits.
    PublicKey,
    32,
    "ed25519 public key"
);

impl PublicKey {
    /// This key's id.
    pub fn key_id(&self) -> KeyId {
        KeyId::of_public_key(&self.0)
    }
}

impl Digest {
    /// SHA-256 of `bytes`.
    pub fn sha256(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }
}

impl KeyId {
    /// The id of a raw 32-byte ed25519 public key.
    pub fn of_public_key(public_key: &[u8; 32]) -> Self {
        let digest = Sha256::digest(public_key);
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        Self(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_reject_topic_wildcards_and_bad_lengths() {
        assert!(DeviceId::new("pump-07.site_3").is_ok());
        for bad in ["", "a/b", "a+b", "a#", "space here", "ü"] {
            assert!(DeviceId::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(ModelName::new("x".repeat(64)).is_ok());
        assert!(ModelName::new("x".repeat(65)).is_err());
    }

    #[test]
    fn digest_text_and_wire_forms() {
        let d = Digest::sha256(b"abc");
        assert_eq!(d.to_string(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        assert_eq!(postcard::to_allocvec(&d).unwrap(), d.0.to_vec());
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{d}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!("abcd".parse::<Digest>().is_err());
    }

    #[test]
    fn decoding_validates_names() {
        let bytes = postcard::to_allocvec("a/b").unwrap();
        assert!(postcard::from_bytes::<DeviceId>(&bytes).is_err());
    }
}
