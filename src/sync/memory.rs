//! Keeping a long sync's memory flat: the page caches are emptied every so many rows.
//!
//! The bundled SQLite is built with `SQLITE_ENABLE_MEMORY_MANAGEMENT`, which puts the page
//! caches of every connection in the process into one shared pool with one LRU list: a
//! connection may take pages from another's share. Each cache holds every page a push or pull
//! touched, up to its `cache_size` (the remote's is 32 MiB), so without this the peak memory of
//! a sync grows with the number of rows it moves until those limits are reached. Giving the
//! cached pages back every [`RELEASE_EVERY_ROWS`] rows keeps the peak at what that many rows
//! touch, for any size of sync; the price is re-reading the few B-tree pages the next batch needs
//! (measured: about 70 share reads per release; see BENCHMARKS.md, Peak memory).
//!
//! A smaller remote `cache_size` is not the way to the same end: measured at 4 MiB, the shared
//! pool went over its total while the local connection held pages taken from the remote's share,
//! and from then on every page the remote used was dropped as soon as it was released, so each
//! row re-read the roots of its table and of the change log from the share (99,894 reads
//! instead of 1,017 for 100,000 rows).

use rusqlite::Connection;

use crate::remote::RemoteStore;

/// Rows pushed or pulled between two releases of the page caches (32 batches of the default
/// size).
pub(crate) const RELEASE_EVERY_ROWS: usize = 16_000;

/// Counts the rows a sync moved and empties the page caches of both sides every
/// [`RELEASE_EVERY_ROWS`].
#[derive(Debug, Default)]
pub(crate) struct PageCaches {
    since: usize,
}

impl PageCaches {
    /// Records `rows` more rows moved, outside any transaction of either connection; empties the
    /// page caches when enough have moved since the last time.
    pub fn moved(&mut self, rows: usize, local: &Connection, remote: &dyn RemoteStore) {
        self.since += rows;
        if self.since < RELEASE_EVERY_ROWS {
            return;
        }
        self.since = 0;
        // Only memory: a failure changes nothing else, and the next release tries again.
        if let Err(e) = local.release_memory() {
            tracing::debug!(error = %e, "could not release the cache's page cache");
        }
        remote.release_memory();
    }
}
