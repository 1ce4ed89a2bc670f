//! Upkeep between passes: repairing what a crash left, and collecting
//! cached layers nothing uses any more.
//!
//! Must NOT install or change a state record: recovery only finishes or
//! undoes interrupted work, garbage collection only deletes cache entries.

use crate::error::{blocking, Result};
use crate::install;

use super::Engine;

impl Engine {
    /// Repairs what a crash left: interrupted swaps and staging dirs in every
    /// target, partial downloads in the cache. Returns lines for the log.
    pub fn recover(&self) -> Result<Vec<String>> {
        let mut notes = Vec::new();
        for target in self.config.targets.values() {
            let r = install::recover(&target.path)?;
            for name in r.completed {
                notes.push(format!(
                    "completed an interrupted install of {name} in {}",
                    target.path.display()
                ));
            }
            if r.removed > 0 {
                notes.push(format!(
                    "removed {} leftover staging dirs in {}",
                    r.removed,
                    target.path.display()
                ));
            }
        }
        crate::cache::remove_temporaries(&self.state_dir)?;
        if let Some(dir) = self.state.dir() {
            crate::cache::remove_temporaries(dir)?;
        }
        let n = self.cache.clean_partials()?;
        if n > 0 {
            notes.push(format!("removed {n} partial downloads from the cache"));
        }
        Ok(notes)
    }

    /// Deletes cached layers no target uses any more.
    pub async fn collect_garbage(&self) -> Result<usize> {
        if self.dry_run {
            return Ok(0);
        }
        let store = self.state.clone();
        let keep = blocking("reading the state", move || {
            let mut keep = std::collections::HashSet::new();
            store
                .visit(|_, s| {
                    keep.extend(
                        s.targets
                            .values()
                            .filter_map(|t| t.installed.as_ref())
                            .chain(s.current.as_ref())
                            .chain(s.history.iter())
                            .chain(s.hold.as_ref().map(|h| &h.installed))
                            .flat_map(|i| [i.layer_digest.clone(), i.manifest_digest.clone()])
                            .chain(s.ref_digest.clone()),
                    );
                })
                .map(|()| keep)
        })
        .await??;
        self.cache.collect_garbage(&keep)
    }
}
