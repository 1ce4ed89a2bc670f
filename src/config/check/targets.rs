//! `[targets.NAME]` over the built-in targets, and every `targets` list.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Checker, KnownTargets};
use crate::config::diagnostics::edit_distance;
use crate::config::raw::{Key, RawTarget, SpannedList};
use crate::config::BUILTIN_TARGETS;
use crate::paths::expand_tilde;

impl Checker<'_> {
    /// Built-in targets, then `[targets.NAME]` (which may replace a
    /// built-in's directory).
    pub(super) fn check_targets(&mut self, raw: &BTreeMap<Key, RawTarget>) -> KnownTargets {
        let mut known = KnownTargets::new();
        for (name, dir) in BUILTIN_TARGETS {
            let path = expand_tilde(Path::new(dir), self.home);
            known.insert(name.to_string(), Some(path));
        }
        for (key, target) in raw {
            let name = key.get_ref();
            if let Err(why) = crate::name::check(name) {
                self.error(key.span(), format!("invalid target name {name:?}: {why}"));
            }
            let path = match &target.path {
                Some(p) => self.path_setting(p, &format!("path of target {name:?}")),
                None => {
                    self.error(
                        key.span(),
                        format!(
                            "target {name:?} has no path: add path = \"...\" (the agent's skills directory)"
                        ),
                    );
                    None
                }
            };
            known.insert(name.clone(), path);
        }
        known
    }

    /// Checks each name in a `targets` array; returns the names as written
    /// (unknown ones included, so a skill relying on a broken default is
    /// not reported twice).
    pub(super) fn check_target_list(
        &mut self,
        list: &SpannedList,
        known: &KnownTargets,
    ) -> Vec<String> {
        let mut seen: Vec<(&str, Option<&Path>)> = Vec::new();
        for item in list.get_ref() {
            let name = item.get_ref().as_str();
            let Some(target) = known.get(name) else {
                self.error(item.span(), unknown_target_message(name, known));
                continue;
            };
            if seen.iter().any(|(n, _)| *n == name) {
                self.error(item.span(), format!("target {name:?} is listed twice"));
                continue;
            }
            if let Some(path) = target.as_deref() {
                if let Some((other, _)) = seen.iter().find(|(_, p)| *p == Some(path)) {
                    self.error(
                        item.span(),
                        format!(
                            "targets {other:?} and {name:?} are the same directory ({}): list only one",
                            path.display()
                        ),
                    );
                    continue;
                }
            }
            seen.push((name, target.as_deref()));
        }
        list.get_ref().iter().map(|s| s.get_ref().clone()).collect()
    }
}

/// "unknown target" with the known names, and a suggestion when one is
/// close.
fn unknown_target_message(name: &str, known: &KnownTargets) -> String {
    let builtins = BUILTIN_TARGETS
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ");
    let custom: Vec<&str> = known
        .keys()
        .map(String::as_str)
        .filter(|k| !BUILTIN_TARGETS.iter().any(|(b, _)| b == k))
        .collect();
    let mut msg = format!("unknown target {name:?}");
    if let Some(best) = known
        .keys()
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, _)| *d <= 2)
        .min()
    {
        msg.push_str(&format!(" (did you mean {:?}?)", best.1));
    }
    msg.push_str(&format!("; built-in targets are {builtins}"));
    if !custom.is_empty() {
        msg.push_str(&format!(", custom targets are {}", custom.join(", ")));
    }
    msg.push_str("; define custom ones under [targets.NAME]");
    msg
}
