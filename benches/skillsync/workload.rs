//! The synthetic skills the benchmark publishes, and the files that point
//! skillsyncd and the baseline script at them.
//!
//! Every skill looks like a real one: a `SKILL.md` of a few KiB (front
//! matter, headings, prose), the `skill.yaml` SkillCard, and 3 to 10
//! reference files in one sub-folder (`references/`), in skillctl's exact
//! image format (see `tests/integration/support/skillimage.rs`). Each skill
//! is its own repository with its own manifest (its name in the
//! annotations). The cold-sync skills each have their own content; the
//! thousands of steady-state skills share their layer and config among a
//! pool of contents, linked into each repository by a cross-repository
//! mount, so that publishing 5,000 takes seconds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::support::skillimage::{BuiltImage, Publisher, SkillImage, MANIFEST_MEDIA_TYPE};

/// Every benchmark repository is `bench/<skill>`.
pub const NAMESPACE: &str = "bench";
/// The version every skill is published at.
pub const VERSION: &str = "1.0.0";
/// Threads publishing at once.
const PUBLISH_THREADS: usize = 8;

/// A small, fast, deterministic generator (xorshift64*), so the same
/// benchmark publishes the same bytes every time.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// `len` incompressible bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

const WORDS: &[&str] = &[
    "the",
    "agent",
    "should",
    "review",
    "each",
    "change",
    "before",
    "merging",
    "tests",
    "must",
    "pass",
    "and",
    "coverage",
    "is",
    "reported",
    "in",
    "summary",
    "when",
    "a",
    "function",
    "returns",
    "an",
    "error",
    "explain",
    "why",
    "with",
    "context",
    "prefer",
    "small",
    "commits",
    "that",
    "describe",
    "intent",
    "check",
    "inputs",
    "from",
    "outside",
    "never",
    "trust",
    "headers",
    "stream",
    "large",
    "files",
    "instead",
    "of",
    "buffering",
    "them",
    "whole",
    "document",
    "public",
    "items",
    "keep",
    "dependencies",
    "lean",
    "measure",
    "first",
    "then",
    "optimise",
    "name",
    "things",
    "for",
    "what",
    "they",
    "do",
];

/// About `bytes` of Markdown prose: a heading, then paragraphs.
fn prose(rng: &mut Rng, bytes: usize) -> String {
    let mut text = String::with_capacity(bytes + 200);
    let mut section = 1;
    while text.len() < bytes {
        text.push_str(&format!("\n## Step {section}\n\n"));
        section += 1;
        for _ in 0..(2 + rng.below(3)) {
            for w in 0..(40 + rng.below(40)) {
                let word = WORDS[rng.below(WORDS.len() as u64) as usize];
                if w == 0 {
                    let mut chars = word.chars();
                    if let Some(first) = chars.next() {
                        text.extend(first.to_uppercase());
                        text.push_str(chars.as_str());
                    }
                } else {
                    text.push(' ');
                    text.push_str(word);
                }
            }
            text.push_str(".\n\n");
        }
    }
    text
}

/// The files of a skill named `title` (besides `skill.yaml`, which
/// [`SkillImage`] writes): `SKILL.md` of 3 to 6 KiB and 3 to 10 files of 1
/// to 6 KiB under `references/`.
pub fn skill_files(seed: u64, title: &str) -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng::new(seed);
    let mut files = Vec::new();
    let size = 3 * 1024 + rng.below(3 * 1024) as usize;
    let body = prose(&mut rng, size);
    files.push((
        "SKILL.md".to_owned(),
        format!(
            "---\nname: {title}\ndescription: Reviews and improves code the way the team \
             does it ({title}).\n---\n\n# {title}\n{body}"
        )
        .into_bytes(),
    ));
    for k in 0..(3 + rng.below(8)) {
        let size = 1024 + rng.below(5 * 1024) as usize;
        let body = prose(&mut rng, size);
        files.push((
            format!("references/topic-{k}.md"),
            format!("# Topic {k}\n{body}").into_bytes(),
        ));
    }
    files
}

/// The image of skill `name` at `version` holding `files`.
pub fn image(name: &str, version: &str, files: &[(String, Vec<u8>)]) -> BuiltImage {
    let mut skill = SkillImage::new(name, version)
        .namespace(NAMESPACE)
        .description("Reviews and improves code the way the team does it.")
        .license("Apache-2.0")
        .tags(&["benchmark", "review"]);
    for (path, bytes) in files {
        skill = skill.file(path, bytes);
    }
    skill.build()
}

/// `f(0..n)` on [`PUBLISH_THREADS`] threads; results in index order.
pub fn parallel<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<T>>> = Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..PUBLISH_THREADS {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let value = f(i);
                results.lock().expect("results lock")[i] = Some(value);
            });
        }
    });
    results
        .into_inner()
        .expect("results lock")
        .into_iter()
        .map(|v| v.expect("every index was computed"))
        .collect()
}

/// Publishes each of `names` with content of its own, tagged `1.0.0` and
/// `latest`; returns each manifest digest.
pub fn publish_unique(publisher: &Publisher, names: &[String]) -> Vec<String> {
    parallel(names.len(), |i| {
        let name = &names[i];
        let built = image(name, VERSION, &skill_files(seed_of(name), name));
        publisher
            .push_to(&built.repository, &built, &[VERSION, "latest"])
            .manifest_digest
    })
}

/// Publishes each of `names` as its own repository and manifest, sharing
/// the layer and config of one of `pool` contents (mounted from
/// `bench/pool-K`); returns each manifest digest.
pub fn publish_pooled(publisher: &Publisher, names: &[String], pool: usize) -> Vec<String> {
    let contents: Vec<Vec<(String, Vec<u8>)>> = (0..pool)
        .map(|k| {
            let title = format!("pool-{k}");
            let mut files = skill_files(k as u64 + 1_000_000, &title);
            let card = SkillImage::new(&title, VERSION)
                .namespace(NAMESPACE)
                .description("Reviews and improves code the way the team does it.")
                .default_skill_yaml();
            files.push(("skill.yaml".to_owned(), card.into_bytes()));
            files
        })
        .collect();
    let sources: Vec<BuiltImage> = parallel(pool, |k| {
        let built = image(&format!("pool-{k}"), VERSION, &contents[k]);
        publisher.push_to(&built.repository, &built, &[VERSION]);
        built
    });
    parallel(names.len(), |i| {
        let k = i % pool;
        let built = image(&names[i], VERSION, &contents[k]);
        let source = &sources[k];
        assert_eq!(built.layer_digest(), source.layer_digest());
        for blob in built.blobs() {
            if !publisher.mount_blob(&built.repository, &blob.digest, &source.repository) {
                publisher.push_blob(&built.repository, blob);
            }
        }
        for tag in [VERSION, "latest"] {
            publisher.put_manifest(
                &built.repository,
                tag,
                MANIFEST_MEDIA_TYPE,
                &built.manifest_bytes,
            );
        }
        built.manifest_digest
    })
}

/// A stable seed from a skill name.
pub fn seed_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// How a configured skill is followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// The `published` semver channel (the default).
    Channel,
    /// `tag = "1.0.0"`.
    Tag,
}

/// A `skills.toml` for `skills` on the plain-HTTP registry `host`,
/// installing into `targets`, polling hourly (so nothing is due while the
/// benchmark watches), with `daemon_extra` lines added under `[daemon]`.
pub fn config(
    host: &str,
    targets: &[&str],
    skills: &[(String, Follow)],
    daemon_extra: &str,
) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("{t:?}")).collect();
    let mut toml = format!(
        "[daemon]\npoll_interval = \"1h\"\n{daemon_extra}\n\n\
         [defaults]\ntargets = [{}]\n\n\
         [registries.\"{host}\"]\ninsecure = true\n",
        targets.join(", ")
    );
    for (name, follow) in skills {
        toml.push_str(&format!(
            "\n[skills.{name}]\nimage = \"{host}/{NAMESPACE}/{name}\"\n"
        ));
        if *follow == Follow::Tag {
            toml.push_str(&format!("tag = \"{VERSION}\"\n"));
        }
    }
    toml
}

/// The baseline script's list: `HOST/bench/NAME:1.0.0 NAME DIGEST`, one
/// skill a line.
pub fn baseline_list(host: &str, names: &[String], digests: &[String]) -> String {
    names
        .iter()
        .zip(digests)
        .map(|(name, digest)| format!("{host}/{NAMESPACE}/{name}:{VERSION} {name} {digest}\n"))
        .collect()
}
