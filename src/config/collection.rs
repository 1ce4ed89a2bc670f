//! Skill collections: skillctl's `SkillCollection` document, parsed as
//! hostile input, and the skills it adds to a config.
//!
//! ```yaml
//! apiVersion: skillimage.io/v1alpha1
//! kind: SkillCollection
//! metadata: {name: dev-skills, version: 0.1.0, description: ...}
//! skills:
//!   - name: document-summarizer
//!     image: quay.io/skillimage/business/document-summarizer:1.0.0-testing
//! ```
//!
//! Each entry becomes a skill that follows the tag (or digest) its `image`
//! names, installed into the collection's targets. A `[skills.NAME]` of the
//! user's wins over an entry of the same name; `enabled = false` drops it.
//! The document comes from the team cache ([`crate::config::remote`]); a collection
//! not fetched yet, or whose document is broken, adds nothing and says why
//! in status.
//!
//! It reads the cache but fetches nothing and writes nothing; it must not
//! depend on [`crate::config::layers`].

use std::path::Path;

use serde::Deserialize;

use crate::config::remote::{collection_key, parse_remote, TeamCache, MAX_DOCUMENT_SIZE};
use crate::config::{CachedCopy, Collection, CollectionInfo, Config, Selector, Skill, SkillOrigin};
use crate::reference::ImageRef;

/// The `apiVersion` skillctl writes.
pub const API_VERSION: &str = "skillimage.io/v1alpha1";
/// The `kind`.
pub const KIND: &str = "SkillCollection";
/// Most skills one collection may list.
pub const MAX_SKILLS: usize = 1000;

/// A parsed collection.
#[derive(Debug, Clone, PartialEq)]
pub struct CollectionDoc {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.version`.
    pub version: Option<String>,
    /// Each entry, in order.
    pub skills: Vec<Entry>,
}

/// One skill of a collection.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The skill (folder) name.
    pub name: String,
    /// Its repository.
    pub image: ImageRef,
    /// The tag or digest its image names.
    pub selector: Selector,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDoc {
    api_version: String,
    kind: String,
    metadata: RawMeta,
    #[serde(default)]
    skills: Vec<RawEntry>,
}

#[derive(Deserialize)]
struct RawMeta {
    name: String,
    #[serde(default)]
    version: Option<String>,
}

#[derive(Deserialize)]
struct RawEntry {
    name: String,
    image: String,
}

/// Parses a collection document; every problem is an error naming the
/// entry.
pub fn parse(text: &str) -> Result<CollectionDoc, String> {
    if text.len() as u64 > MAX_DOCUMENT_SIZE {
        return Err("the document is too large".into());
    }
    let raw: RawDoc =
        yaml_serde::from_str(text).map_err(|e| format!("not a SkillCollection: {e}"))?;
    if raw.api_version != API_VERSION || raw.kind != KIND {
        return Err(format!(
            "apiVersion {:?} kind {:?} is not {API_VERSION} {KIND}",
            raw.api_version, raw.kind
        ));
    }
    if raw.skills.len() > MAX_SKILLS {
        return Err(format!(
            "it lists {} skills; the limit is {MAX_SKILLS}",
            raw.skills.len()
        ));
    }
    let mut skills: Vec<Entry> = Vec::new();
    for (i, e) in raw.skills.into_iter().enumerate() {
        let which = format!("skills[{i}] ({:?})", e.name);
        crate::name::check(&e.name).map_err(|why| format!("{which}: invalid name: {why}"))?;
        if skills.iter().any(|s| s.name == e.name) {
            return Err(format!("{which}: listed twice"));
        }
        let (image, selector) =
            split_image(&e.image).map_err(|why| format!("{which}: image {:?}: {why}", e.image))?;
        skills.push(Entry {
            name: e.name,
            image,
            selector,
        });
    }
    Ok(CollectionDoc {
        name: raw.metadata.name,
        version: raw.metadata.version,
        skills,
    })
}

/// `host/repo:tag` or `host/repo@sha256:...`.
fn split_image(image: &str) -> Result<(ImageRef, Selector), String> {
    let (image, selector) = parse_remote(image)?;
    Ok((image, selector))
}

/// Adds the skills of every collection whose document is in the cache.
pub fn expand(config: &mut Config, team_cache: Option<&Path>) {
    let cache = team_cache.map(TeamCache::new);
    let collections: Vec<_> = config.collections.values().cloned().collect();
    for c in collections {
        let mut info = CollectionInfo {
            name: c.name.clone(),
            image: describe(&c),
            cached: None,
            version: None,
            skills: Vec::new(),
            refresh_error: None,
            error: None,
        };
        if let Some((doc, digest)) = cached_doc(cache.as_ref(), &c, &mut info) {
            add_skills(config, &c, doc, &digest, &mut info);
        }
        config.layers.collections.push(info);
    }
}

/// `HOST/REPO` and what the collection follows, for status.
fn describe(c: &Collection) -> String {
    match &c.selector {
        Selector::Tag(t) => format!("{}:{t}", c.image),
        Selector::Digest(d) => format!("{}@{d}", c.image),
        Selector::Channel {
            channel,
            version: Some(v),
        } => format!("{} ({channel} {v})", c.image),
        Selector::Channel {
            channel,
            version: None,
        } => format!("{} ({channel})", c.image),
    }
}

/// The collection's document and its manifest digest, from the cache;
/// `None` when there is no usable copy (`info` says why).
fn cached_doc(
    cache: Option<&TeamCache>,
    c: &Collection,
    info: &mut CollectionInfo,
) -> Option<(CollectionDoc, String)> {
    let Some(cache) = cache else {
        info.error = Some("not fetched yet".into());
        return None;
    };
    let record = match cache.read(&collection_key(&c.image, &c.selector)) {
        Ok(r) => r,
        Err(e) => {
            info.error = Some(e.to_string());
            return None;
        }
    };
    info.refresh_error = record.last_error.clone();
    let (Some(text), Some(digest), Some(fetched_at)) =
        (record.content, record.digest, record.fetched_at)
    else {
        if info.refresh_error.is_none() {
            info.error = Some("not fetched yet".into());
        }
        return None;
    };
    info.cached = Some(CachedCopy {
        digest: digest.clone(),
        fetched_at,
    });
    match parse(&text) {
        Ok(doc) => Some((doc, digest)),
        Err(e) => {
            info.error = Some(format!("{}@{digest}: {e}", c.image));
            None
        }
    }
}

/// Adds the entries of collection `c`'s document that no skill of the
/// user's (or of an earlier collection) already names.
fn add_skills(
    config: &mut Config,
    c: &Collection,
    doc: CollectionDoc,
    digest: &str,
    info: &mut CollectionInfo,
) {
    info.version = Some(match &doc.version {
        Some(v) => format!("{} {v}", doc.name),
        None => doc.name.clone(),
    });
    let mut notes = Vec::new();
    for entry in doc.skills {
        if config.layers.disabled.contains(&entry.name) {
            continue;
        }
        if config.skills.contains_key(&entry.name) {
            if config
                .layers
                .origins
                .get(&entry.name)
                .is_some_and(|o| o.defined_at.starts_with("collection "))
            {
                notes.push(format!(
                    "{} is also in an earlier collection, whose entry is used",
                    entry.name
                ));
            }
            continue;
        }
        if !entry.image.registry.contains(['.', ':'])
            && entry.image.registry != "localhost"
            && !config.registries.contains_key(&entry.image.registry)
        {
            notes.push(format!(
                "{}: {} is not a registry host",
                entry.name, entry.image
            ));
            continue;
        }
        // A user's `[skills.NAME] targets = [...]` without an image.
        let targets = config
            .layers
            .pending
            .get(&entry.name)
            .cloned()
            .flatten()
            .unwrap_or_else(|| c.targets.clone());
        let skill = Skill {
            name: entry.name.clone(),
            image: entry.image.clone(),
            selector: entry.selector.clone(),
            targets,
            on_drift: c.on_drift,
            on_archived: c.on_archived,
            adopt: false,
            verify: crate::config::verify_for(
                &entry.image,
                &config.repositories,
                &config.registries,
                &config.default_verify,
            ),
        };
        config.layers.origins.insert(
            entry.name.clone(),
            SkillOrigin {
                defined_at: format!("collection {} ({}@{})", c.name, c.image, digest),
                settings: Vec::new(),
            },
        );
        info.skills.push(entry.name.clone());
        config.skills.insert(entry.name, skill);
    }
    if !notes.is_empty() {
        info.error = Some(notes.join("; "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "apiVersion: skillimage.io/v1alpha1
kind: SkillCollection
metadata: {name: dev-skills, version: 0.1.0, description: Team skills}
skills:
  - name: document-summarizer
    image: quay.io/skillimage/business/document-summarizer:1.0.0-testing
  - name: pinned
    image: r.io/a/pinned@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
";

    #[test]
    fn parses_the_skillctl_format() {
        let doc = parse(DOC).unwrap();
        assert_eq!(doc.name, "dev-skills");
        assert_eq!(doc.version.as_deref(), Some("0.1.0"));
        assert_eq!(doc.skills.len(), 2);
        assert_eq!(doc.skills[0].name, "document-summarizer");
        assert_eq!(
            doc.skills[0].image.to_string(),
            "quay.io/skillimage/business/document-summarizer"
        );
        assert_eq!(
            doc.skills[0].selector,
            Selector::Tag("1.0.0-testing".into())
        );
        assert!(matches!(doc.skills[1].selector, Selector::Digest(_)));
    }

    #[test]
    fn hostile_documents_are_refused() {
        for (text, part) in [
            ("kind: Other\napiVersion: x\nmetadata: {name: a}\n", "is not"),
            ("apiVersion: skillimage.io/v1alpha1\nkind: SkillCollection\nmetadata: {name: a}\nskills:\n  - {name: ../x, image: r.io/a:1}\n", "invalid name"),
            ("apiVersion: skillimage.io/v1alpha1\nkind: SkillCollection\nmetadata: {name: a}\nskills:\n  - {name: a, image: r.io/a}\n", "no tag"),
            ("apiVersion: skillimage.io/v1alpha1\nkind: SkillCollection\nmetadata: {name: a}\nskills:\n  - {name: a, image: r.io/a:1}\n  - {name: a, image: r.io/b:1}\n", "listed twice"),
            ("[1, 2", "not a SkillCollection"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(part), "{e:?} lacks {part:?}");
        }
    }
}
