//! `[registries.KEY]`, `[repositories."HOST/PREFIX"]` and every `verify`
//! setting.

use std::collections::BTreeMap;

use toml::Spanned;

use super::Checker;
use crate::config::raw::{Key, RawRegistry, RawRepository};
use crate::config::RegistrySettings;
use crate::reference::ImageRef;
use crate::verify::Setting as VerifySetting;

impl Checker<'_> {
    pub(super) fn check_registries(
        &mut self,
        raw: &BTreeMap<Key, RawRegistry>,
    ) -> BTreeMap<String, RegistrySettings> {
        let mut out = BTreeMap::new();
        for (key, reg) in raw {
            let name = key.get_ref();
            if !is_registry_key(name) {
                self.error(
                    key.span(),
                    format!(
                        "invalid registry key {name:?}: use host[:port] (quoted, e.g. [registries.\"127.0.0.1:5000\"]) or a plain alias name"
                    ),
                );
            }
            let mut settings = RegistrySettings::default();
            if let Some(insecure) = &reg.insecure {
                settings.insecure = *insecure.get_ref();
            }
            if let Some(file) = &reg.auth_file {
                settings.auth_file = self.path_setting(file, "auth_file");
            }
            if let Some(file) = &reg.ca_file {
                settings.ca_file = self.path_setting(file, "ca_file");
            }
            for m in reg.mirrors.iter().flatten() {
                let host = m.get_ref();
                let valid = !host.is_empty()
                    && !host.contains('/')
                    && host
                        .parse::<ImageRef>()
                        .is_ok_and(|r| r.repository.is_empty());
                if valid {
                    settings.mirrors.push(host.clone());
                } else {
                    self.error(
                        m.span(),
                        format!("invalid mirror {host:?}: give a host[:port], e.g. \"mirror.local:5000\""),
                    );
                }
            }
            if let Some(v) = &reg.max_requests {
                match usize::try_from(*v.get_ref()) {
                    Ok(n) if (1..=64).contains(&n) => settings.max_requests = Some(n),
                    _ => self.error(
                        v.span(),
                        format!(
                            "invalid max_requests {}: from 1 to 64 requests in flight at once",
                            v.get_ref()
                        ),
                    ),
                }
            }
            if let Some(v) = &reg.requests_per_second {
                let r = *v.get_ref();
                if r.is_finite() && (0.01..=10_000.0).contains(&r) {
                    settings.requests_per_second = Some(r);
                } else {
                    self.error(
                        v.span(),
                        format!("invalid requests_per_second {r}: from 0.01 to 10000"),
                    );
                }
            }
            if let Some(layout) = &reg.layout {
                settings.layout = self.path_setting(layout, "layout");
                if let Some(insecure) = &reg.insecure {
                    self.error(
                        insecure.span(),
                        format!(
                            "registry {name:?} sets both `insecure` and `layout`: a layout directory is read from disk, so remove `insecure`"
                        ),
                    );
                }
            }
            if let Some(v) = &reg.verify {
                settings.verify = self.check_verify(v);
            }
            out.insert(name.clone(), settings);
        }
        out
    }

    /// `verify = "none"` or `verify = { keys = ["path.pub", ...] }`.
    pub(super) fn check_verify(&mut self, value: &Spanned<toml::Value>) -> Option<VerifySetting> {
        const HINT: &str =
            "use verify = \"none\" or verify = { keys = [\"~/.config/skillsync/keys/acme.pub\"] }";
        match value.get_ref() {
            toml::Value::String(s) if s == "none" => Some(VerifySetting::None),
            toml::Value::Table(t) => {
                if let Some(k) = t.keys().find(|k| k.as_str() != "keys") {
                    self.error(value.span(), format!("unknown key {k:?} in verify; {HINT}"));
                    return None;
                }
                let list = match t.get("keys") {
                    Some(toml::Value::Array(list)) if !list.is_empty() => list,
                    _ => {
                        self.error(
                            value.span(),
                            format!("verify needs a non-empty list of public key files; {HINT}"),
                        );
                        return None;
                    }
                };
                let mut keys = Vec::new();
                for item in list {
                    match item.as_str() {
                        Some(p) if !p.trim().is_empty() => {
                            keys.push(self.resolve_path(p, value.span().start))
                        }
                        _ => {
                            self.error(
                                value.span(),
                                format!("verify keys must be paths of PEM public keys; {HINT}"),
                            );
                            return None;
                        }
                    }
                }
                Some(VerifySetting::Keys(keys))
            }
            other => {
                self.error(value.span(), format!("invalid verify {other:?}; {HINT}"));
                None
            }
        }
    }

    /// `[repositories."HOST/PREFIX"]`: keys must name a repository prefix.
    pub(super) fn check_repositories(
        &mut self,
        raw: &BTreeMap<Key, RawRepository>,
    ) -> BTreeMap<String, VerifySetting> {
        let mut out = BTreeMap::new();
        for (key, repo) in raw {
            let name = key.get_ref();
            let valid = name
                .parse::<ImageRef>()
                .is_ok_and(|r| !r.repository.is_empty() && r.to_string() == *name);
            if !valid {
                self.error(
                    key.span(),
                    format!(
                        "invalid repository prefix {name:?}: use host[:port]/path, e.g. [repositories.\"quay.io/acme\"]"
                    ),
                );
                continue;
            }
            if let Some(setting) = repo.verify.as_ref().and_then(|v| self.check_verify(v)) {
                out.insert(name.clone(), setting);
            }
        }
        out
    }
}

/// A registry key: `host[:port]` or an alias, using the characters an
/// image reference's registry part may use.
fn is_registry_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']'))
}
