//! The conflict rule, as a pure function: which version of a row wins.
//!
//! A local change is *concurrent* with the remote's current version when that version was written
//! by someone else after the change's `seen_rev` (the pull cursor when the row was first changed
//! locally): the local writer could not have seen it. Only concurrent changes conflict; then the
//! newer stamp wins, ties broken by origin id, so every replica picks the same winner. A client
//! never conflicts with itself (its stamps are totally ordered by its own clock), and re-sending a
//! version the remote already has (a crash between remote commit and local acknowledgement)
//! changes nothing. The losing version is kept whole: `conflict_record` is what the remote's
//! conflict log holds of it.

use std::cmp::Ordering;

use crate::remote::LoggedConflict;

/// A version of a row: its stamp and origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp<'a> {
    /// The HLC stamp.
    pub stamp: &'a str,
    /// The origin id of the writer.
    pub origin: &'a str,
}

impl Ord for Stamp<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.stamp, self.origin).cmp(&(other.stamp, other.origin))
    }
}

impl PartialOrd for Stamp<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The remote's current version of a row, from the change log.
#[derive(Debug, Clone, Copy)]
pub struct Current<'a> {
    /// Its stamp and origin.
    pub version: Stamp<'a>,
    /// The change-log revision at which it was written.
    pub rev: i64,
}

/// What a push does with one local change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The remote already holds exactly this version: acknowledge, write nothing.
    AlreadyApplied,
    /// Write the local change. `conflict` is true when it overwrites a concurrent remote version
    /// (which goes to the conflict log).
    Apply {
        /// Whether a concurrent remote version loses.
        conflict: bool,
    },
    /// The remote's concurrent version is newer: the local change goes to the conflict log and the
    /// remote version is applied locally.
    Lose,
}

/// Decides one local change against the remote's current version of the row.
///
/// ```
/// use sharecache::sync::conflict::{decide, Current, Decision, Stamp};
/// let mine = Stamp { stamp: "2026-01-01T00:00:02.000Z", origin: "a" };
/// let theirs = Current { version: Stamp { stamp: "2026-01-01T00:00:01.000Z", origin: "b" }, rev: 9 };
/// // I had pulled up to rev 5 when I edited: their rev-9 version is concurrent, and older.
/// assert_eq!(decide(mine, 5, Some(theirs)), Decision::Apply { conflict: true });
/// // Had I pulled rev 9 before editing, it is a plain overwrite.
/// assert_eq!(decide(mine, 9, Some(theirs)), Decision::Apply { conflict: false });
/// ```
pub fn decide(local: Stamp<'_>, seen_rev: i64, remote: Option<Current<'_>>) -> Decision {
    let Some(remote) = remote else {
        return Decision::Apply { conflict: false };
    };
    if remote.version == local {
        return Decision::AlreadyApplied;
    }
    if remote.version.origin == local.origin || remote.rev <= seen_rev {
        return Decision::Apply { conflict: false };
    }
    if local > remote.version {
        Decision::Apply { conflict: true }
    } else {
        Decision::Lose
    }
}

/// A losing version of a row, as the conflict log keeps it.
pub(crate) struct Loser<'a> {
    /// Its stamp.
    pub stamp: &'a str,
    /// Its origin.
    pub origin: &'a str,
    /// The row as JSON ([`row_to_json`]), `None` for a delete.
    pub row: Option<&'a str>,
}

/// A losing version as the remote's conflict log keeps it. `at`: the table and key text;
/// `decided`: when and by which origin.
pub(crate) fn conflict_record(
    at: (&str, &str),
    winner: (&str, &str),
    loser: &Loser<'_>,
    reason: &str,
    decided: (&str, &str),
) -> LoggedConflict {
    LoggedConflict {
        id: 0,
        tbl: at.0.to_string(),
        pk: at.1.to_string(),
        winner_stamp: winner.0.to_string(),
        winner_origin: winner.1.to_string(),
        loser_stamp: loser.stamp.to_string(),
        loser_origin: loser.origin.to_string(),
        loser_op: if loser.row.is_some() {
            "upsert"
        } else {
            "delete"
        }
        .to_string(),
        loser_row: loser.row.map(str::to_string),
        decided_at: decided.0.to_string(),
        decided_by: decided.1.to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn st<'a>(stamp: &'a str, origin: &'a str) -> Stamp<'a> {
        Stamp { stamp, origin }
    }

    #[test]
    fn equal_stamps_are_broken_by_origin_the_same_way_everywhere() {
        let t = "2026-01-01T00:00:00.000Z";
        let cur_b = Current {
            version: st(t, "b"),
            rev: 3,
        };
        let cur_a = Current {
            version: st(t, "a"),
            rev: 3,
        };
        assert_eq!(decide(st(t, "a"), 0, Some(cur_b)), Decision::Lose);
        assert_eq!(
            decide(st(t, "b"), 0, Some(cur_a)),
            Decision::Apply { conflict: true }
        );
    }

    #[test]
    fn a_resent_version_is_already_applied() {
        let v = st("2026-01-01T00:00:00.000Z", "a");
        assert_eq!(
            decide(
                v,
                0,
                Some(Current {
                    version: v,
                    rev: 10
                })
            ),
            Decision::AlreadyApplied
        );
    }

    #[test]
    fn a_client_never_conflicts_with_itself() {
        let older = Current {
            version: st("2026-01-01T00:00:05.000Z", "a"),
            rev: 10,
        };
        assert_eq!(
            decide(st("2026-01-01T00:00:01.000Z", "a"), 0, Some(older)),
            Decision::Apply { conflict: false }
        );
    }

    proptest! {
        /// Whatever order two concurrent changes reach the remote in, the same one ends up current.
        #[test]
        fn concurrent_changes_converge_to_the_same_winner(
            s1 in 0u32..5, s2 in 0u32..5, o1 in "[ab]", o2 in "[cd]"
        ) {
            let (t1, t2) = (format!("2026-01-01T00:00:0{s1}.000Z"), format!("2026-01-01T00:00:0{s2}.000Z"));
            let (v1, v2) = (st(&t1, &o1), st(&t2, &o2));
            // v1 arrives first (remote empty), then v2 (concurrent: seen_rev 0 < rev 1).
            let after_12 = match decide(v2, 0, Some(Current { version: v1, rev: 1 })) {
                Decision::Apply { .. } => v2,
                Decision::Lose => v1,
                Decision::AlreadyApplied => v1,
            };
            let after_21 = match decide(v1, 0, Some(Current { version: v2, rev: 1 })) {
                Decision::Apply { .. } => v1,
                Decision::Lose => v2,
                Decision::AlreadyApplied => v2,
            };
            prop_assert_eq!(after_12, after_21);
            prop_assert_eq!(after_12, v1.max(v2));
        }
    }
}
