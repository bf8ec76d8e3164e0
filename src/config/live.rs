//! The configuration in force, shared by a handle, its sync thread and its engine: one copy,
//! replaced whole when the config file is reloaded. A reader takes the current version
//! ([`Live::get`]) and keeps it for what it is doing (a sync runs on the version it started
//! with); a reload never edits a version someone holds.

use std::sync::{Arc, RwLock};

use super::Config;

/// The one copy of a handle's configuration (clones share it).
#[derive(Debug, Clone)]
pub(crate) struct Live(Arc<RwLock<Arc<Config>>>);

impl Live {
    /// Shares `config`.
    pub fn new(config: Config) -> Live {
        Live(Arc::new(RwLock::new(Arc::new(config))))
    }

    /// The version in force.
    pub fn get(&self) -> Arc<Config> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the version in force with what `f` makes of it, if anything; returns the new
    /// version. Readers see the old version or the new one, never a mix.
    pub fn update(&self, f: impl FnOnce(&Config) -> Option<Config>) -> Option<Arc<Config>> {
        let mut current = self.0.write().unwrap_or_else(|e| e.into_inner());
        let new = Arc::new(f(&current)?);
        *current = new.clone();
        Some(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_is_seen_by_every_clone_and_leaves_held_versions_alone() {
        let live = Live::new(Config::for_remote("/a.db"));
        let other = live.clone();
        let held = live.get();
        assert!(live.update(|_| None).is_none());
        let new = live
            .update(|c| {
                let mut c = c.clone();
                c.batch_size = 7;
                Some(c)
            })
            .unwrap();
        assert_eq!(new.batch_size, 7);
        assert_eq!(other.get().batch_size, 7);
        assert!(Arc::ptr_eq(&new, &other.get()), "one copy, not two");
        assert_ne!(held.batch_size, 7);
    }
}
