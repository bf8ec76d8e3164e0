//! The remote's client registry and the pruning of the change log.
//!
//! Every client records in `sharecache_clients` its horizon: the revision below which it needs no
//! change-log entry any more (its pull cursor, or the `seen_rev` of its oldest pending change if
//! lower). Entries at or below the lowest horizon of the clients seen in the last 30 days are
//! pruned from the log's head, a bounded number per remote transaction. The cache's own old
//! tombstones ([`super::versions`]) are pruned at a registration too, at most once a day.

use std::time::{Duration, Instant};

use super::{Engine, outbox, push, versions};
use crate::error::Error;

/// Least time between two registrations by a pull alone (a remote write transaction each). A
/// late registration only delays pruning: the horizon a client needs never goes down, since
/// every change is made against the cursor of its moment. Also how often a client that keeps
/// pushing prunes the change log (the same transaction).
pub(super) const REGISTER_EVERY: Duration = Duration::from_secs(60);

/// Most change-log entries pruned in one remote transaction (about 70 pages with row images):
/// pruning holds the remote's write lock, and a log grown long (a client that was away, a remote
/// just upgraded from the first format) is pruned over several syncs instead.
const PRUNE_MAX: i64 = 2000;

/// Least time between two prunings of the cache's old tombstones (a scan of `sync_row_versions`).
const PRUNE_TOMBSTONES_EVERY: Duration = Duration::from_secs(24 * 3600);

impl Engine {
    /// Records this client's pull cursor in the remote registry and prunes the change-log entries
    /// every known client has moved past: pulled, and older than its oldest pending change.
    pub(super) fn register(&mut self, host: &str) -> Result<(), Error> {
        let ctx = push::PushCtx {
            origin: &self.origin,
            lineage: &self.lineage,
            now: self.clock.now_stamp(),
            pulled_rev: outbox::horizon(&self.local, self.pull_rev()?).map_err(self.lerr())?,
            host: host.to_string(),
            batch_size: 0,
        };
        let cutoff = crate::clock::format_stamp(self.clock.now() - chrono::Duration::days(30));
        let more = self
            .remote
            .as_deref_mut()
            .expect("connected")
            .register_and_prune(
                &ctx.client(ctx.pulled_rev),
                None,
                Some((&cutoff, PRUNE_MAX)),
            )?;
        // With more left to prune, the next sync prunes again.
        self.pruned = match more {
            true => Instant::now()
                .checked_sub(REGISTER_EVERY)
                .unwrap_or_else(Instant::now),
            false => Instant::now(),
        };
        if self
            .tombstones_pruned
            .is_none_or(|t| t.elapsed() >= PRUNE_TOMBSTONES_EVERY)
        {
            let before = crate::clock::format_stamp(
                self.clock.now() - chrono::Duration::days(versions::TOMBSTONE_DAYS),
            );
            super::write_tx(&self.local, |c| versions::prune_tombstones(c, &before))
                .map_err(self.lerr())?;
            self.tombstones_pruned = Some(Instant::now());
        }
        Ok(())
    }
}

impl Engine {
    /// Registers the origin this cache just took (it found it is a copy) with its horizon, and
    /// removes `retire`, the origin it had, when the instance that had it cannot be live any more
    /// (so its horizon stops holding back pruning). One remote transaction.
    pub(super) fn register_new_origin(&mut self, retire: Option<&str>) -> Result<(), Error> {
        let ctx = push::PushCtx {
            origin: &self.origin,
            lineage: &self.lineage,
            now: self.clock.now_stamp(),
            pulled_rev: outbox::horizon(&self.local, self.pull_rev()?).map_err(self.lerr())?,
            host: crate::platform::host_name(),
            batch_size: 0,
        };
        self.remote
            .as_deref_mut()
            .expect("connected")
            .register_and_prune(&ctx.client(ctx.pulled_rev), retire, None)?;
        tracing::info!(origin = %self.origin, retired = ?retire, "registered this cache's new origin");
        self.registered = Some(Instant::now());
        Ok(())
    }
}
