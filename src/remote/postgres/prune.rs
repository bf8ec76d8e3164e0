//! Pruning the server's change log: entries at or below the lowest horizon of the recent
//! clients go, at most `max` at a time, and the meta row records how far (a client whose cursor
//! is below it rebuilds) and the newest stamp pruned. Entries not yet numbered are never pruned.

use postgres::Transaction;

use super::PgError;

/// Prunes up to `max` entries at or below `floor`; returns whether some are left for next time.
pub fn prune(tx: &mut Transaction<'_>, floor: i64, max: i64) -> Result<bool, PgError> {
    let upto: i64 = tx
        .query_one(
            "SELECT coalesce((SELECT rev FROM sharecache.log WHERE rev <= $1 ORDER BY rev \
             LIMIT 1 OFFSET $2), $1)",
            &[&floor, &(max.max(1) - 1)],
        )?
        .get(0);
    tx.execute(
        "UPDATE sharecache.meta SET pruned_rev = greatest(pruned_rev, $1), \
         pruned_hlc = greatest(pruned_hlc COLLATE \"C\", coalesce((SELECT max(stamp) FROM \
         sharecache.log WHERE rev <= $1), '')) \
         WHERE id = 1 AND EXISTS (SELECT 1 FROM sharecache.log WHERE rev <= $1)",
        &[&upto],
    )?;
    let n = tx.execute("DELETE FROM sharecache.log WHERE rev <= $1", &[&upto])?;
    if n > 0 {
        tracing::debug!(entries = n, upto, floor, "pruned the server's change log");
    }
    Ok(upto < floor)
}
