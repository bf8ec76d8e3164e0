//! Which origin a change of this cache's own history was made under.
//!
//! A cache that found it is a copy (see `crate::store::instance`) took a new origin, and keeps
//! the ones it had in `sync_origins`, each with the clock at the moment it was replaced. A pending
//! change stamped at or before that moment was made by the instance the cache was copied from:
//! it is that origin's version, and is pushed as such, so the original and the copy pushing the
//! same change make one version, not two that conflict. A remote version of that origin stamped
//! later was written by the original after the copy was made: another client's edit, decided
//! like any other.

use rusqlite::Connection;

/// This cache's former origins, oldest first: `(origin, last stamp made under it)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Lineage {
    former: Vec<(String, String)>,
}

/// Stands for a former origin on versions the original wrote after the copy was made (only
/// compared, never written).
const OTHER_INSTANCE: &str = "\u{1}another instance";

/// A cache that never changed its origin.
#[cfg(test)]
pub(crate) static NO_LINEAGE: Lineage = Lineage { former: Vec::new() };

impl Lineage {
    /// Reads `sync_origins` (a cache not migrated yet has none).
    pub fn read(c: &Connection) -> rusqlite::Result<Lineage> {
        if !crate::schema::has_table(c, "sync_origins")? {
            return Ok(Lineage::default());
        }
        let former = c
            .prepare("SELECT origin, upto FROM sync_origins ORDER BY upto, rowid")?
            .query_map([], |r| {
                Ok((r.get(0)?, crate::clock::stamp_of_ms(r.get::<_, i64>(1)?)))
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(Lineage { former })
    }

    /// The origin a change of this cache stamped `stamp` was made under (`current` when it was
    /// made after the last change of origin).
    pub fn origin_at<'a>(&'a self, stamp: &str, current: &'a str) -> &'a str {
        self.former
            .iter()
            .find(|(_, upto)| stamp <= upto.as_str())
            .map_or(current, |(o, _)| o.as_str())
    }

    /// The origin to decide a remote version `(stamp, origin)` by, against a change made under
    /// `born`: a version of this cache's own history counts as its own (`born`); one of a former
    /// origin written after the copy was made is the original's, someone else's edit.
    pub fn seen_as<'a>(
        &self,
        stamp: &str,
        origin: &'a str,
        born: &'a str,
        current: &str,
    ) -> &'a str {
        if self.is_own(stamp, origin, current) {
            born
        } else if origin == born {
            OTHER_INSTANCE
        } else {
            origin
        }
    }

    /// The origin to decide a remote version `(stamp, origin)` by, against a version `carried`
    /// again by a reconcile under its own stamp and origin (`carried`: that origin): another
    /// version of the same origin is not one its writer made after it, so it is decided by stamp
    /// like anyone else's.
    pub fn seen_by_carried<'a>(stamp: &str, origin: &'a str, carried: (&str, &str)) -> &'a str {
        if origin == carried.1 && stamp != carried.0 {
            OTHER_INSTANCE
        } else {
            origin
        }
    }

    /// Whether the version `(stamp, origin)` belongs to this cache's own history.
    pub fn is_own(&self, stamp: &str, origin: &str, current: &str) -> bool {
        self.origin_at(stamp, current) == origin
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_before_a_change_of_origin_keep_the_origin_they_were_made_under() {
        let l = Lineage {
            former: vec![
                ("o1".into(), "2026-01-01T00:00:01.000Z".into()),
                ("o2".into(), "2026-01-01T00:00:05.000Z".into()),
            ],
        };
        assert_eq!(l.origin_at("2026-01-01T00:00:00.500Z", "o3"), "o1");
        assert_eq!(l.origin_at("2026-01-01T00:00:01.000Z", "o3"), "o1");
        assert_eq!(l.origin_at("2026-01-01T00:00:03.000Z", "o3"), "o2");
        assert_eq!(l.origin_at("2026-01-01T00:00:06.000Z", "o3"), "o3");
        assert!(l.is_own("2026-01-01T00:00:00.500Z", "o1", "o3"));
        assert!(
            !l.is_own("2026-01-01T00:00:06.000Z", "o1", "o3"),
            "o1's later versions are the original's, not ours"
        );
        assert!(NO_LINEAGE.is_own("x", "o3", "o3"));
        // Deciding a change made under o1 against the original's later o1 version: not ours.
        assert_ne!(
            l.seen_as("2026-01-01T00:00:09.000Z", "o1", "o1", "o3"),
            "o1"
        );
        assert_eq!(
            l.seen_as("2026-01-01T00:00:00.900Z", "o1", "o3", "o3"),
            "o3"
        );
        assert_eq!(NO_LINEAGE.seen_as("x", "b", "a", "a"), "b");
    }
}
