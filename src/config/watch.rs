//! Hot reload: watch `config.yaml` and hand each valid edit to a callback.
//!
//! The parent directory is watched (editors save by writing a new file and renaming it over the
//! old one), events are debounced, and each change is re-validated: an invalid edit is reported
//! as an error and the caller keeps the previous configuration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify_debouncer_full::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};

use super::{Config, ConfigError};

/// How long edits must settle before the file is re-read.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// A running watch; stops when dropped.
pub struct Watch {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watch")
    }
}

/// Watches the config file at `path`; calls `on_change` with the re-validated config (or the
/// validation error) after each change.
///
/// ```no_run
/// let w = sharecache::config::watch("config.yaml".as_ref(), |c| match c {
///     Ok(c) => println!("new interval: {:?}", c.sync_interval),
///     Err(e) => eprintln!("rejected: {e}"),
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn watch(
    path: &Path,
    on_change: impl Fn(Result<Config, ConfigError>) + Send + 'static,
) -> Result<Watch, notify_debouncer_full::notify::Error> {
    let file: PathBuf = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let name = file.file_name().map(|n| n.to_os_string());
    let target = file.clone();
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
        let Ok(events) = result else { return };
        let touched = events
            .iter()
            .flat_map(|e| e.paths.iter())
            .any(|p| p.file_name().map(|n| n.to_os_string()) == name);
        if touched && target.exists() {
            on_change(Config::load(&target));
        }
    })?;
    debouncer.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(Watch {
        _debouncer: debouncer,
    })
}

/// Keys that only take effect at the next start (they decide which files are used).
const RESTART_KEYS: &str =
    "database.path, database.cache_directory, database.enable_cache, sync.background";

/// Whether a change to `key` (a settable key, whole or the part after its dot) waits for the
/// next start of the app or daemon instead of being applied by a running one.
///
/// ```
/// use sharecache::config::applies_at_next_start;
/// assert!(applies_at_next_start("enable_cache") && applies_at_next_start("database.path"));
/// assert!(!applies_at_next_start("sync_interval"));
/// ```
pub fn applies_at_next_start(key: &str) -> bool {
    let key = key.replace('-', "_");
    RESTART_KEYS
        .split(", ")
        .any(|full| full == key || full.rsplit('.').next() == Some(key.as_str()))
}

impl Config {
    /// The configuration to run with after the file changed to `new`: everything from `new`
    /// except the keys that choose files and threads, which keep their running values (a change
    /// to them is logged and applies at the next start).
    ///
    /// ```
    /// use sharecache::Config;
    /// let running = Config::for_remote("/a/app.db");
    /// let mut edited = Config::for_remote("/b/app.db");
    /// edited.sync_interval = std::time::Duration::from_secs(5);
    /// let applied = running.reloaded(edited);
    /// assert_eq!(applied.sync_interval, std::time::Duration::from_secs(5));
    /// assert_eq!(applied.remote_path, running.remote_path);
    /// ```
    pub fn reloaded(&self, mut new: Config) -> Config {
        if new.remote_path != self.remote_path
            || new.cache_directory != self.cache_directory
            || new.enable_cache != self.enable_cache
            || new.background != self.background
        {
            tracing::warn!(
                keys = RESTART_KEYS,
                "config changes to these keys apply at the next start"
            );
        }
        new.remote_path = self.remote_path.clone();
        new.cache_directory = self.cache_directory.clone();
        new.enable_cache = self.enable_cache;
        new.background = self.background;
        new.source = self.source.clone();
        new
    }
}
