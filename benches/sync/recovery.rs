//! What it costs when the trail breaks: the reconcile after a restore of the remote.
//!
//! A cache of a remote of `rows` rows makes one acknowledged write, the remote is put back to a
//! copy taken just before it (not measured), and the next `sync_now` notices the restore and
//! compares every row with the remote (`src/sync/trail.rs`). Its baseline is the least any
//! comparison must do: read the whole table once, directly on the share. Rows compared per second
//! go to the notes.

use rusqlite::Connection;
use sharecache::Cache;

use super::env::Share;
use super::measure::{Goal, Ratio, Report, Side, timed};

/// Which side goes first in repetition `rep` (`true`: sharecache).
fn order(rep: usize) -> [bool; 2] {
    if rep % 2 == 0 {
        [true, false]
    } else {
        [false, true]
    }
}

fn read_all(c: &Connection) -> i64 {
    c.query_row(
        "SELECT count(*) + sum(length(name)) + sum(qty) + sum(length(note)) FROM items",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// The reconcile of a cache of `remote` (`rows` rows) after a restore, `reps` times.
pub fn reconcile(
    r: &mut Report,
    share: &Share,
    (remote, cache, rows): (&str, &Cache, u64),
    l: u64,
    reps: usize,
) {
    let direct = share.direct(remote);
    let backup = share.local(&format!("{remote}.backup"));
    let (mut ours, mut base) = (Side::default(), Side::default());
    let (mut compared, mut took) = (0u64, Vec::new());
    for rep in 0..reps {
        std::fs::copy(share.backing(remote), &backup).unwrap();
        cache
            .conn()
            .execute(
                "UPDATE items SET note = ?1 WHERE id = 1",
                [format!("written before restore {rep} at {l} ms")],
            )
            .unwrap();
        cache.sync_now().unwrap();
        std::fs::copy(&backup, share.backing(remote)).unwrap();
        for mine in order(rep) {
            if mine {
                let (report, t, s) = timed(&share.ctl, || cache.sync_now().unwrap());
                let rec = report
                    .reconciled
                    .expect("the restore is noticed at the next sync");
                assert_eq!(rec.pushed_again, 1, "{rec:?}");
                compared = rec.compared;
                took.push(t.as_secs_f64());
                ours.add(1, t, &s);
            } else {
                let (_, t, s) = timed(&share.ctl, || read_all(&direct));
                base.add(1, t, &s);
            }
        }
    }
    took.sort_by(f64::total_cmp);
    let median = took[took.len() / 2];
    r.pair(
        &format!("reconcile after a restore ({rows} rows)"),
        Some(l),
        ("sync_now that reconciles", &ours),
        ("reading the whole table directly", &base),
        Ratio::Cost,
        Goal::None,
        "—",
    );
    r.notes.push(format!(
        "reconcile at {l} ms: {compared} rows compared in {median:.3} s (median of {reps}): {:.0} rows/s",
        compared as f64 / median
    ));
}
