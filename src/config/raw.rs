//! The serde mirror of `skills.toml`: every table as written, unknown keys
//! refused, every key and value with its position ([`toml::Spanned`]).
//!
//! No rule is checked here beyond the shape of the file: that is
//! [`super::check`]'s job.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// A key together with its position in the file.
pub(crate) type Key = Spanned<String>;

/// A list of strings, each with its position, and the list's position.
pub(crate) type SpannedList = Spanned<Vec<Spanned<String>>>;

/// The whole file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    pub(crate) daemon: Option<RawDaemon>,
    pub(crate) defaults: Option<RawDefaults>,
    #[serde(default)]
    pub(crate) registries: BTreeMap<Key, RawRegistry>,
    #[serde(default)]
    pub(crate) targets: BTreeMap<Key, RawTarget>,
    #[serde(default)]
    pub(crate) skills: BTreeMap<Key, RawSkill>,
    #[serde(default)]
    pub(crate) repositories: BTreeMap<Key, RawRepository>,
    #[serde(default)]
    pub(crate) collections: BTreeMap<Key, RawCollection>,
    /// Read by [`crate::config::layers`]; only its shape is checked here.
    #[allow(dead_code)]
    pub(crate) include: Option<SpannedList>,
}

/// `[collections.NAME]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCollection {
    pub(crate) image: Option<Spanned<String>>,
    pub(crate) channel: Option<Spanned<String>>,
    pub(crate) version: Option<Spanned<String>>,
    pub(crate) tag: Option<Spanned<String>>,
    pub(crate) digest: Option<Spanned<String>>,
    pub(crate) targets: Option<SpannedList>,
    pub(crate) enabled: Option<Spanned<bool>>,
}

/// `[repositories."HOST/PREFIX"]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRepository {
    pub(crate) verify: Option<Spanned<toml::Value>>,
}

/// `[daemon]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDaemon {
    pub(crate) poll_interval: Option<Spanned<String>>,
    pub(crate) max_skill_size: Option<Spanned<RawSize>>,
    pub(crate) max_entries: Option<Spanned<i64>>,
    pub(crate) state_dir: Option<Spanned<String>>,
    pub(crate) cache_dir: Option<Spanned<String>>,
    pub(crate) socket: Option<Spanned<String>>,
    pub(crate) generations: Option<Spanned<i64>>,
    pub(crate) prune: Option<bool>,
    pub(crate) jitter: Option<Spanned<f64>>,
    pub(crate) request_timeout: Option<Spanned<String>>,
    pub(crate) durability: Option<Spanned<String>>,
}

/// `[defaults]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDefaults {
    pub(crate) channel: Option<Spanned<String>>,
    pub(crate) targets: Option<SpannedList>,
    pub(crate) on_drift: Option<Spanned<String>>,
    pub(crate) on_archived: Option<Spanned<String>>,
    pub(crate) verify: Option<Spanned<toml::Value>>,
}

/// `[registries.KEY]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRegistry {
    pub(crate) insecure: Option<Spanned<bool>>,
    pub(crate) layout: Option<Spanned<String>>,
    pub(crate) auth_file: Option<Spanned<String>>,
    pub(crate) ca_file: Option<Spanned<String>>,
    pub(crate) mirrors: Option<Vec<Spanned<String>>>,
    pub(crate) max_requests: Option<Spanned<i64>>,
    pub(crate) requests_per_second: Option<Spanned<f64>>,
    pub(crate) verify: Option<Spanned<toml::Value>>,
}

/// `[targets.NAME]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTarget {
    pub(crate) path: Option<Spanned<String>>,
}

/// `[skills.NAME]`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSkill {
    pub(crate) image: Option<Spanned<String>>,
    pub(crate) channel: Option<Spanned<String>>,
    pub(crate) version: Option<Spanned<String>>,
    pub(crate) tag: Option<Spanned<String>>,
    pub(crate) digest: Option<Spanned<String>>,
    pub(crate) targets: Option<SpannedList>,
    pub(crate) on_drift: Option<Spanned<String>>,
    pub(crate) on_archived: Option<Spanned<String>>,
    pub(crate) adopt: Option<bool>,
    pub(crate) verify: Option<Spanned<toml::Value>>,
    /// `false` switches off a skill defined in another layer or listed by
    /// a collection.
    pub(crate) enabled: Option<Spanned<bool>>,
}

/// A size: an integer number of bytes or a string with a unit.
#[derive(Debug)]
pub(crate) enum RawSize {
    Bytes(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawSize;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a size such as \"64MiB\" or an integer number of bytes")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawSize, E> {
                Ok(RawSize::Bytes(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawSize, E> {
                Ok(RawSize::Bytes(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawSize, E> {
                Ok(RawSize::Text(v.to_string()))
            }
        }
        d.deserialize_any(Visitor)
    }
}
