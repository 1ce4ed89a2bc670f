//! `[skills.NAME]` and `[collections.NAME]`: image, selector, targets,
//! drift and archive policies, with what `[defaults]` supplies.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use toml::Spanned;

use super::{Checker, KnownTargets, Scope};
use crate::channel::Channel;
use crate::config::raw::{Key, RawCollection, RawDefaults, RawSkill};
use crate::config::{
    Collection, OnArchived, OnDrift, RegistrySettings, Selector, Skill, DEFAULT_TARGETS,
};
use crate::reference::{Digest, ImageRef};

/// What `[defaults]` gives a skill that does not say.
pub(super) struct SkillDefaults {
    pub(super) channel: Option<Channel>,
    pub(super) targets: Option<Vec<String>>,
    pub(super) on_drift: OnDrift,
    pub(super) on_archived: OnArchived,
}

/// The skills of a file: those checked, those switched off, and those
/// without an image that override a skill defined elsewhere.
pub(super) struct Skills {
    pub(super) skills: BTreeMap<String, Skill>,
    /// The targets they use.
    pub(super) used: BTreeSet<String>,
    pub(super) disabled: BTreeSet<String>,
    pub(super) pending: BTreeMap<String, Option<Vec<String>>>,
}

impl Checker<'_> {
    /// `[defaults]`: the channel, targets and policies skills inherit.
    pub(super) fn check_defaults(
        &mut self,
        defaults: Option<&RawDefaults>,
        known: &KnownTargets,
    ) -> SkillDefaults {
        SkillDefaults {
            channel: defaults
                .and_then(|d| d.channel.as_ref())
                .and_then(|c| self.check_channel(c)),
            targets: defaults
                .and_then(|d| d.targets.as_ref())
                .map(|list| self.check_target_list(list, known)),
            on_drift: defaults
                .and_then(|d| d.on_drift.as_ref())
                .and_then(|v| self.check_on_drift(v))
                .unwrap_or_default(),
            on_archived: defaults
                .and_then(|d| d.on_archived.as_ref())
                .and_then(|v| self.check_on_archived(v))
                .unwrap_or_default(),
        }
    }

    /// Every `[skills.NAME]`. With `open`, a skill without an image may
    /// override one a remote include or a collection defines.
    pub(super) fn check_skills(
        &mut self,
        raw: &BTreeMap<Key, RawSkill>,
        open: bool,
        scope: &Scope<'_>,
    ) -> Skills {
        let mut out = Skills {
            skills: BTreeMap::new(),
            used: BTreeSet::new(),
            disabled: BTreeSet::new(),
            pending: BTreeMap::new(),
        };
        for (key, skill) in raw {
            if skill.enabled.as_ref().is_some_and(|e| !*e.get_ref()) {
                // Switched off: only the name is checked.
                self.check_skill_name(key);
                out.disabled.insert(key.get_ref().clone());
                continue;
            }
            if skill.image.is_none() && open {
                // Overrides a skill from a remote include or a collection
                // that is not known yet, or a collection entry.
                self.check_skill_name(key);
                let targets = skill
                    .targets
                    .as_ref()
                    .map(|list| self.check_target_list(list, scope.known));
                out.used.extend(targets.iter().flatten().cloned());
                out.pending.insert(key.get_ref().clone(), targets);
                continue;
            }
            let Some(skill) =
                self.check_skill(key, skill, scope.registries, scope.known, &scope.defaults)
            else {
                continue;
            };
            out.used.extend(skill.targets.iter().cloned());
            out.skills.insert(skill.name.clone(), skill);
        }
        out
    }

    /// Every `[collections.NAME]` not switched off; adds the targets they
    /// use to `used`.
    pub(super) fn check_collections(
        &mut self,
        raw: &BTreeMap<Key, RawCollection>,
        scope: &Scope<'_>,
        used: &mut BTreeSet<String>,
    ) -> BTreeMap<String, Collection> {
        let mut collections = BTreeMap::new();
        for (key, raw_collection) in raw {
            if raw_collection
                .enabled
                .as_ref()
                .is_some_and(|e| !*e.get_ref())
            {
                continue;
            }
            let Some(c) = self.check_collection(
                key,
                raw_collection,
                scope.registries,
                scope.known,
                &scope.defaults,
            ) else {
                continue;
            };
            used.extend(c.targets.iter().cloned());
            collections.insert(c.name.clone(), c);
        }
        collections
    }

    /// A skill's name, reported at its key.
    fn check_skill_name(&mut self, key: &Key) {
        let name = key.get_ref();
        if let Err(why) = crate::name::check(name) {
            self.error(key.span(), format!("invalid skill name {name:?}: {why}"));
        }
    }
}

impl Checker<'_> {
    /// `[collections.NAME]`: checked like a skill (image, selector,
    /// targets); its document is read later.
    pub(super) fn check_collection(
        &mut self,
        key: &Key,
        raw: &RawCollection,
        registries: &BTreeMap<String, RegistrySettings>,
        known: &KnownTargets,
        defaults: &SkillDefaults,
    ) -> Option<Collection> {
        let as_skill = RawSkill {
            image: raw.image.clone(),
            channel: raw.channel.clone(),
            version: raw.version.clone(),
            tag: raw.tag.clone(),
            digest: raw.digest.clone(),
            targets: raw.targets.clone(),
            on_drift: None,
            on_archived: None,
            adopt: None,
            enabled: None,
            verify: None,
        };
        let name = key.get_ref();
        let before = self.diagnostics.len();
        if raw.image.is_none() {
            self.error(
                key.span(),
                format!(
                    "collection {name:?} has no image: add image = \"host[:port]/repository\" (without a tag)"
                ),
            );
            return None;
        }
        // The skill rules, reported with the collection's name.
        let skill = self.check_skill(key, &as_skill, registries, known, defaults);
        for d in &mut self.diagnostics[before..] {
            d.message = d
                .message
                .replace(&format!("skill {name:?}"), &format!("collection {name:?}"));
            d.message = d.message.replace(
                &format!("[skills.{name}]"),
                &format!("[collections.{name}]"),
            );
        }
        let skill = skill?;
        Some(Collection {
            name: skill.name,
            image: skill.image,
            selector: skill.selector,
            targets: skill.targets,
            on_drift: skill.on_drift,
            on_archived: skill.on_archived,
        })
    }

    pub(super) fn check_skill(
        &mut self,
        key: &Key,
        raw: &RawSkill,
        registries: &BTreeMap<String, RegistrySettings>,
        known: &KnownTargets,
        defaults: &SkillDefaults,
    ) -> Option<Skill> {
        let default_channel = defaults.channel;
        let default_targets = defaults.targets.as_deref();
        let default_on_drift = defaults.on_drift;
        let name = key.get_ref();
        let before = self.diagnostics.len();
        self.check_skill_name(key);

        let image = match &raw.image {
            Some(v) => self.check_image(v, registries),
            None => {
                self.error(
                    key.span(),
                    format!(
                        "skill {name:?} has no image: add image = \"host[:port]/repository\" (without a tag)"
                    ),
                );
                None
            }
        };

        let selector = self.check_selector(raw, default_channel);
        let on_drift = match &raw.on_drift {
            Some(v) => self.check_on_drift(v),
            None => Some(default_on_drift),
        };
        let on_archived = match &raw.on_archived {
            Some(v) => self.check_on_archived(v),
            None => Some(defaults.on_archived),
        };

        let targets = match &raw.targets {
            Some(list) if list.get_ref().is_empty() => {
                self.error(
                    list.span(),
                    format!(
                        "skill {name:?} has no targets: list at least one, e.g. targets = [\"claude\"]"
                    ),
                );
                None
            }
            Some(list) => {
                let names = self.check_target_list(list, known);
                Some(names)
            }
            None => match default_targets {
                Some(d) if !d.is_empty() => Some(d.to_vec()),
                // Neither the skill nor [defaults] names targets: Claude Code,
                // as documented.
                None => Some(DEFAULT_TARGETS.iter().map(|t| t.to_string()).collect()),
                Some(_) => {
                    self.error(
                        key.span(),
                        format!(
                            "skill {name:?} has no targets: add targets = [\"claude\"] to [skills.{name}] or to [defaults]"
                        ),
                    );
                    None
                }
            },
        };

        if self.diagnostics.len() != before {
            return None;
        }
        let targets = targets?;
        // A default list with an unknown name was reported at [defaults].
        if targets
            .iter()
            .any(|t| known.get(t).is_none_or(Option::is_none))
        {
            return None;
        }
        Some(Skill {
            name: name.clone(),
            image: image?,
            selector: selector?,
            targets,
            on_drift: on_drift?,
            on_archived: on_archived?,
            adopt: raw.adopt.unwrap_or(false),
            verify: raw.verify.as_ref().and_then(|v| self.check_verify(v)),
        })
    }

    pub(super) fn check_image(
        &mut self,
        value: &Spanned<String>,
        registries: &BTreeMap<String, RegistrySettings>,
    ) -> Option<ImageRef> {
        let s = value.get_ref();
        let image = match ImageRef::from_str(s) {
            Ok(image) => image,
            Err(e) => {
                self.error(value.span(), e.to_string());
                return None;
            }
        };
        let registry = registries.get(&image.registry);
        let is_layout = registry.is_some_and(|r| r.layout.is_some());
        if is_layout {
            return Some(image);
        }
        let looks_like_host = image.registry.contains(['.', ':']) || image.registry == "localhost";
        if registry.is_none() && !looks_like_host {
            self.error(
                value.span(),
                format!(
                    "image {s:?}: {:?} is neither a registry host (a host name has a '.' or a ':port', or is localhost) nor a [registries.{}] layout alias; write the registry host first, e.g. \"quay.io/{s}\"",
                    image.registry, image.registry
                ),
            );
            return None;
        }
        if image.repository.is_empty() {
            self.error(
                value.span(),
                format!(
                    "image {s:?} names a registry but no repository: add the repository path, e.g. \"{s}/team/skill\""
                ),
            );
            return None;
        }
        Some(image)
    }

    pub(super) fn check_selector(
        &mut self,
        raw: &RawSkill,
        default_channel: Option<Channel>,
    ) -> Option<Selector> {
        let before = self.diagnostics.len();
        if let (Some(_), Some(digest)) = (&raw.tag, &raw.digest) {
            self.error(
                digest.span(),
                "`tag` and `digest` both set: follow a tag or pin a digest, not both",
            );
        }
        let fixed = if raw.digest.is_some() {
            Some("digest")
        } else if raw.tag.is_some() {
            Some("tag")
        } else {
            None
        };
        if let (Some(fixed), Some(version)) = (fixed, &raw.version) {
            self.error(
                version.span(),
                format!(
                    "`version` cannot be combined with `{fixed}`: a {fixed} selects one manifest; remove `version` or `{fixed}`"
                ),
            );
        }
        if let (Some(fixed), Some(channel)) = (fixed, &raw.channel) {
            self.error(
                channel.span(),
                format!(
                    "`channel` cannot be combined with `{fixed}`: a {fixed} is followed whatever its status; remove `channel` or `{fixed}`"
                ),
            );
        }

        let channel = match &raw.channel {
            Some(c) => self.check_channel(c),
            None => Some(default_channel.unwrap_or(Channel::Published)),
        };
        let version = match &raw.version {
            Some(v) => match semver::VersionReq::parse(v.get_ref()) {
                Ok(req) => Some(req),
                Err(e) => {
                    self.error(
                        v.span(),
                        format!(
                            "invalid version requirement {:?} ({e}): use e.g. \"^1.0\" or \">=1.2, <2\"",
                            v.get_ref()
                        ),
                    );
                    None
                }
            },
            None => None,
        };
        let digest = match &raw.digest {
            Some(d) => match Digest::from_str(d.get_ref()) {
                Ok(digest) => Some(digest),
                Err(e) => {
                    self.error(d.span(), format!("invalid digest: {e}"));
                    None
                }
            },
            None => None,
        };
        if let Some(tag) = &raw.tag {
            if !is_tag(tag.get_ref()) {
                self.error(
                    tag.span(),
                    format!(
                        "invalid tag {:?}: a tag is 1 to 128 of A-Z a-z 0-9 _ . -, not starting with . or -",
                        tag.get_ref()
                    ),
                );
            }
        }
        if self.diagnostics.len() != before {
            return None;
        }
        Some(match (digest, &raw.tag) {
            (Some(d), _) => Selector::Digest(d),
            (None, Some(tag)) => Selector::Tag(tag.get_ref().clone()),
            (None, None) => Selector::Channel {
                channel: channel?,
                version,
            },
        })
    }

    pub(super) fn check_on_drift(&mut self, value: &Spanned<String>) -> Option<OnDrift> {
        let v = match value.get_ref().as_str() {
            "report" => Some(OnDrift::Report),
            "restore" => Some(OnDrift::Restore),
            "keep" => Some(OnDrift::Keep),
            _ => None,
        };
        if v.is_none() {
            self.error(
                value.span(),
                format!(
                    "unknown on_drift {:?}: use \"report\", \"restore\" or \"keep\"",
                    value.get_ref()
                ),
            );
        }
        v
    }

    pub(super) fn check_on_archived(&mut self, value: &Spanned<String>) -> Option<OnArchived> {
        let v = match value.get_ref().as_str() {
            "keep" => Some(OnArchived::Keep),
            "remove" => Some(OnArchived::Remove),
            _ => None,
        };
        if v.is_none() {
            self.error(
                value.span(),
                format!(
                    "unknown on_archived {:?}: use \"keep\" or \"remove\"",
                    value.get_ref()
                ),
            );
        }
        v
    }

    pub(super) fn check_channel(&mut self, value: &Spanned<String>) -> Option<Channel> {
        let channel = parse_channel(value.get_ref());
        if channel.is_none() {
            self.error(
                value.span(),
                format!(
                    "unknown channel {:?}: use \"published\", \"testing\" or \"draft\"",
                    value.get_ref()
                ),
            );
        }
        channel
    }
}

/// An OCI tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub(crate) fn is_tag(tag: &str) -> bool {
    let valid = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
    tag.len() <= 128
        && tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag.bytes().all(valid)
}

/// `published`, `testing` or `draft`.
fn parse_channel(s: &str) -> Option<Channel> {
    match s {
        "published" => Some(Channel::Published),
        "testing" => Some(Channel::Testing),
        "draft" => Some(Channel::Draft),
        _ => None,
    }
}
