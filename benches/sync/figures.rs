//! The figures of issue 4, each measured side by side with its baseline.
//!
//! Every function runs the two sides alternately (`order`), `reps` times, and adds one row to
//! the report (plus share-operation and phase rows). None of them asserts anything about time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use sharecache::Cache;
use slowfs::Stats;

use super::env::{Recorder, Rng, Share, copy_file, copy_parallel};
use super::lockwatch;
use super::measure::{Goal, Ratio, Report, Side, diff, fmt_dur, fmt_ratio, timed};

/// Which side goes first in repetition `rep` (`true`: sharecache).
fn order(rep: usize) -> [bool; 2] {
    if rep % 2 == 0 {
        [true, false]
    } else {
        [false, true]
    }
}

/// Operations per timed batch on the share: about `budget_ms` of latency, within bounds.
fn batch(latency_ms: u64, ops_each: u64, budget_ms: u64, at_zero: u64, min: u64) -> u64 {
    if latency_ms == 0 {
        at_zero
    } else {
        (budget_ms / (latency_ms * ops_each)).clamp(min, at_zero)
    }
}

/// Reads every page of `items` once, so the direct connection's page cache holds the table (the
/// best case for the baseline: only the share's per-transaction checks remain).
pub fn warm(c: &Connection) {
    let _: i64 = c
        .query_row("SELECT sum(length(note)) FROM items", [], |r| r.get(0))
        .unwrap();
}

const READ_SQL: &str = "SELECT name, qty, price, note FROM items WHERE id = ?1";
const WRITE_SQL: &str = "UPDATE items SET qty = qty + 1, note = ?2 WHERE id = ?1";

fn point_read(c: &Connection, id: i64) {
    let _: (String, i64, f64, String) = c
        .prepare_cached(READ_SQL)
        .unwrap()
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap();
}

/// Point read by primary key: cache vs a connection opened directly on the share.
pub fn read(r: &mut Report, share: &Share, cache: &Cache, direct: &Connection, rows: u64, l: u64) {
    let reps = 7;
    let n_direct = batch(l, 3, 150, 300, 5);
    let n_cache = 20_000;
    let mut rng = Rng::new(1);
    warm(direct);
    let (mut ours, mut base) = (Side::default(), Side::default());
    for rep in 0..reps {
        for mine in order(rep) {
            if mine {
                let conn = cache.conn();
                let ids: Vec<i64> = (0..n_cache).map(|_| rng.id(rows)).collect();
                let (_, t, s) = timed(&share.ctl, || {
                    ids.iter().for_each(|&id| point_read(&conn, id))
                });
                ours.add(n_cache, t, &s);
            } else {
                let ids: Vec<i64> = (0..n_direct).map(|_| rng.id(rows)).collect();
                let (_, t, s) = timed(&share.ctl, || {
                    ids.iter().for_each(|&id| point_read(direct, id))
                });
                base.add(n_direct, t, &s);
            }
        }
    }
    r.pair(
        "point read by primary key",
        Some(l),
        ("cache", &ours),
        ("direct on share", &base),
        Ratio::Speedup,
        Goal::AtLeast(if l == 4 { 1000.0 } else { 0.0 }),
        if l == 4 {
            "≥1000× at 4 ms"
        } else {
            "(≥1000× at 4 ms)"
        },
    );
    if l != 4 {
        r.rows.last_mut().unwrap().met = None;
    }
}

/// Single-row autocommit write: cache (tracked table) vs directly on the share.
pub fn write(r: &mut Report, share: &Share, cache: &Cache, direct: &Connection, l: u64) {
    let reps = if l >= 20 { 5 } else { 7 };
    let n_direct = batch(l, 20, 250, 50, 3);
    let n_cache = 2_000;
    let mut rng = Rng::new(2);
    let (mut ours, mut base) = (Side::default(), Side::default());
    let write = |c: &Connection, id: i64, rep: usize| {
        c.prepare_cached(WRITE_SQL)
            .unwrap()
            .execute(params![id, format!("w{rep}-{id}")])
            .unwrap();
    };
    for rep in 0..reps {
        for mine in order(rep) {
            // Rows 1..=200 only: the cache's pending writes stay few, so flushing them is quick.
            if mine {
                let conn = cache.conn();
                let ids: Vec<i64> = (0..n_cache).map(|_| rng.id(200)).collect();
                let (_, t, s) = timed(&share.ctl, || {
                    ids.iter().for_each(|&id| write(&conn, id, rep))
                });
                ours.add(n_cache, t, &s);
            } else {
                let ids: Vec<i64> = (0..n_direct).map(|_| rng.id(200)).collect();
                let (_, t, s) = timed(&share.ctl, || {
                    ids.iter().for_each(|&id| write(direct, id, rep))
                });
                base.add(n_direct, t, &s);
            }
        }
    }
    r.pair(
        "single-row write, autocommit",
        Some(l),
        ("cache", &ours),
        ("direct on share", &base),
        Ratio::Speedup,
        Goal::AtLeast(if l == 4 { 1000.0 } else { 0.0 }),
        if l == 4 {
            "≥1000× at 4 ms"
        } else {
            "(≥1000× at 4 ms)"
        },
    );
    if l != 4 {
        r.rows.last_mut().unwrap().met = None;
    }
}

/// Idle sync cycle (nothing changed anywhere) vs one direct point read on the share.
pub fn idle(r: &mut Report, share: &Share, cache: &Cache, direct: &Connection, rows: u64, l: u64) {
    cache.sync_now().unwrap();
    cache.sync_now().unwrap();
    warm(direct);
    let reps = 7;
    let k = if l == 0 { 20 } else { 5 };
    let mut rng = Rng::new(3);
    let (mut ours, mut base) = (Side::default(), Side::default());
    let mut not_idle = 0;
    for rep in 0..reps {
        for mine in order(rep) {
            if mine {
                let (reports, t, s) = timed(&share.ctl, || {
                    (0..k)
                        .map(|_| cache.sync_now().unwrap())
                        .collect::<Vec<_>>()
                });
                not_idle += reports.iter().filter(|x| !x.idle).count();
                ours.add(k, t, &s);
            } else {
                let ids: Vec<i64> = (0..k).map(|_| rng.id(rows)).collect();
                let (_, t, s) = timed(&share.ctl, || {
                    ids.iter().for_each(|&id| point_read(direct, id))
                });
                base.add(k, t, &s);
            }
        }
    }
    if not_idle > 0 {
        r.notes.push(format!(
            "idle cycle at {l} ms: {not_idle} of the measured syncs were not idle"
        ));
    }
    if l == 0 {
        r.notes.push(schema_check_cost(cache));
    }
    r.pair(
        "idle sync cycle",
        Some(l),
        ("sync_now, idle", &ours),
        ("one direct point read", &base),
        Ratio::Cost,
        Goal::AtMost(1.0),
        "≤1×",
    );
}

/// The local part every sync adds for schema changes made in the cache (issue 13): the check
/// of the schema cookie on an unchanged cache, alone, on a connection of its own.
fn schema_check_cost(cache: &Cache) -> String {
    let c = Connection::open(cache.cache_path().expect("cached")).unwrap();
    let once = sharecache::store::watch::check(&c, "bench").unwrap();
    assert!(!once.changed, "the cache's schema is recorded after a sync");
    let n = 10_000;
    let mut per_call: Vec<Duration> = (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                std::hint::black_box(sharecache::store::watch::check(&c, "bench").unwrap());
            }
            t.elapsed() / n
        })
        .collect();
    per_call.sort();
    format!(
        "idle cycle: of it, the check of the cache's schema (schema cookie vs the recorded one, outstanding repairs; local, no share request): median {} per sync ({}–{}, n=7 × {n})",
        fmt_dur(per_call[3].as_secs_f64()),
        fmt_dur(per_call[0].as_secs_f64()),
        fmt_dur(per_call[6].as_secs_f64())
    )
}

/// What the push figure runs against.
pub struct PushWorld<'a> {
    /// The main cache (default `batch_size`) and the remote it follows.
    pub cache: &'a Cache,
    /// The same remote data, never set up for sharecache, opened directly on the share.
    pub plain: &'a Connection,
    /// What-ifs (when given): a cache whose `batch_size` makes every push one remote
    /// transaction, and a direct connection on a set-up remote (its triggers write the change
    /// log, as a push must).
    pub what_if: Option<(&'a Cache, &'a Connection)>,
}

/// Push of `n` pending rows (updates of existing rows) vs one hand-written transaction doing the
/// same updates directly on the share.
pub fn push(
    r: &mut Report,
    share: &Share,
    w: &PushWorld<'_>,
    rows: u64,
    n: u64,
    l: u64,
    reps: usize,
) {
    let stride = (rows / n).max(1) as i64;
    let (mut ours, mut base) = (Side::default(), Side::default());
    let (mut one_tx, mut logged) = (Side::default(), Side::default());
    let mut rec = Recorder::new(&share.ctl);
    let mut phases = None;
    let mut one_tx_phases = None;
    for rep in 0..reps {
        let off = (rep as i64) % stride;
        let tag = format!("p{l}-{rep}");
        let mut sync = |cache: &Cache, side: &mut Side| {
            let changed = cache
                .conn()
                .execute(
                    "UPDATE items SET qty = qty + 1, note = ?1 || '-' || id WHERE id % ?2 = ?3",
                    params![tag, stride, off],
                )
                .unwrap() as u64;
            let start = rec.start();
            let t0 = Instant::now();
            let report = cache.sync_with_progress(&rec).unwrap();
            let t = t0.elapsed();
            let s = diff(&start, &share.ctl.stats());
            assert_eq!(
                report.pushed as u64, changed,
                "push pushed every pending row"
            );
            side.add(1, t, &s);
            push_phases(&rec, &start, t, &s)
        };
        let by_hand = |c: &Connection, side: &mut Side| {
            let (_, t, s) = timed(&share.ctl, || {
                c.execute_batch("BEGIN IMMEDIATE").unwrap();
                let mut st = c
                    .prepare_cached(
                        "UPDATE items SET qty = qty + 1, note = ?1 || '-' || id WHERE id = ?2",
                    )
                    .unwrap();
                for id in (1..=rows as i64).filter(|id| id % stride == off) {
                    st.execute(params![tag, id]).unwrap();
                }
                c.execute_batch("COMMIT").unwrap();
            });
            side.add(1, t, &s);
        };
        for mine in order(rep) {
            if mine {
                phases = Some(sync(w.cache, &mut ours));
            } else {
                by_hand(w.plain, &mut base);
            }
        }
        if let Some((cache, direct)) = w.what_if {
            one_tx_phases = Some(sync(cache, &mut one_tx));
            by_hand(direct, &mut logged);
        }
    }
    let name = format!("push of {n} pending rows");
    r.pair(
        &name,
        Some(l),
        ("sync_now", &ours),
        ("one hand-written remote transaction", &base),
        Ratio::Cost,
        Goal::AtMost(1.5),
        "≤1.5×",
    );
    if w.what_if.is_some() {
        r.pair(
            &format!("  what if: {name} in one remote transaction (batch_size ≥ {n})"),
            Some(l),
            ("sync_now", &one_tx),
            ("the same hand-written transaction", &base),
            Ratio::Cost,
            Goal::None,
            "(≤1.5×)",
        );
        r.ops.remove(r.ops.len() - 1);
        r.pair(
            &format!("  floor: the same {n} updates by hand on a set-up remote (its triggers write the change log)"),
            Some(l),
            ("by hand + change log", &logged),
            ("the same hand-written transaction", &base),
            Ratio::Cost,
            Goal::None,
            "—",
        );
        r.ops.remove(r.ops.len() - 1);
    }
    for (label, p) in [
        ("batch_size 500", phases),
        ("one transaction", one_tx_phases),
    ] {
        for (phase, t, s) in p.unwrap_or_default() {
            r.phase(&name, Some(l), &format!("{label}: {phase}"), t, s);
        }
    }
}

/// Push phases from the progress events; `end` is the whole sync's operations (from `start`).
fn push_phases(
    rec: &Recorder<'_>,
    start: &Stats,
    total: Duration,
    end: &Stats,
) -> Vec<(String, Duration, Stats)> {
    let (Some(first), Some(last)) = (rec.first("push"), rec.last("push")) else {
        return vec![];
    };
    let batches = rec.count("push") as u64;
    let mut out = vec![(
        "start → first batch acknowledged (fingerprint, schema, batch 1)".to_string(),
        first.at,
        diff(start, &first.stats),
    )];
    if batches > 1 {
        let per = diff(&first.stats, &last.stats);
        let mut avg = per.clone();
        macro_rules! div {
            ($($f:ident),*) => { $(avg.$f = per.$f / (batches - 1);)* };
        }
        div!(
            total,
            lookup,
            getattr,
            setattr,
            open,
            create,
            read,
            write,
            fsync,
            flush,
            release,
            unlink,
            rename,
            readdir,
            other,
            bytes_read,
            bytes_written
        );
        out.push((
            format!("each further batch (mean of {})", batches - 1),
            (last.at - first.at) / (batches - 1) as u32,
            avg,
        ));
    }
    // `end` counts from `start` already.
    out.push((
        "after the last batch (pull of own echo, conflict log, records)".to_string(),
        total.saturating_sub(last.at),
        diff(&diff(start, &last.stats), end),
    ));
    out
}

/// Pull of 100 changes from a small remote vs the same from a remote with `big/small` times more
/// rows. The changes are written on the remote directly (its change-log triggers log them).
#[allow(clippy::too_many_arguments)]
///
/// `writers`: the changes are made by another sharecache client (a cache of the same remote
/// opened on the share's backing directory, so its push costs nothing measured) and pushed, as in
/// normal use; without, they are written directly on the remote (another program: the log's
/// triggers record them without the rows' values, so the pull reads the rows from the table).
pub fn pull(
    r: &mut Report,
    share: &Share,
    small: (&str, &Cache, u64),
    big: (&str, &Cache, u64),
    writers: Option<(&Cache, &Cache)>,
    l: u64,
) {
    let reps = if l >= 20 { 3 } else { 5 };
    let changes = 100;
    let mut rng = Rng::new(4 + l);
    let (mut s_side, mut b_side) = (Side::default(), Side::default());
    let mut phases = vec![];
    for rep in 0..reps {
        for (k, (name, _, rows)) in [small, big].into_iter().enumerate() {
            let ids = rng.distinct(changes, rows);
            let writer = writers.map(|w| if k == 0 { w.0 } else { w.1 });
            let write = |c: &Connection| {
                c.execute_batch("BEGIN").unwrap();
                for &id in &ids {
                    c.execute(WRITE_SQL, params![id, format!("c{l}-{rep}")])
                        .unwrap();
                }
                c.execute_batch("COMMIT").unwrap();
            };
            match writer {
                Some(w) => write(&w.conn()),
                None => write(&share.backdoor(name)),
            }
            if let Some(w) = writer {
                assert_eq!(w.sync_now().unwrap().pushed, changes, "pushed every change");
            }
        }
        for first_big in [rep % 2 == 1, rep % 2 == 0] {
            let (_, cache, rows) = if first_big { big } else { small };
            let mut rec = Recorder::new(&share.ctl);
            let start = rec.start();
            let t0 = Instant::now();
            let rep_ = cache.sync_with_progress(&rec).unwrap();
            let t = t0.elapsed();
            let s = diff(&start, &share.ctl.stats());
            assert_eq!(rep_.pulled, changes, "pulled every change");
            if first_big {
                b_side.add(1, t, &s);
            } else {
                s_side.add(1, t, &s);
            }
            if rep == reps - 1 {
                if let Some(e) = rec.last("pull") {
                    let label = format!("{rows} rows: ");
                    phases.push((
                        label.clone()
                            + "start → changes applied (fingerprint, schema, fetch, apply)",
                        e.at,
                        diff(&start, &e.stats),
                    ));
                    phases.push((
                        label + "after apply (conflict log, client registration write)",
                        t.saturating_sub(e.at),
                        diff(&e.stats, &share.ctl.stats()),
                    ));
                }
            }
        }
    }
    let name = format!(
        "pull of 100 changes{}, {}k-row vs {}k-row remote",
        if writers.is_some() {
            " pushed by another client"
        } else {
            " written directly on the remote"
        },
        small.2 / 1000,
        big.2 / 1000
    );
    r.pair(
        &name,
        Some(l),
        (&format!("{}k rows", big.2 / 1000), &b_side),
        (&format!("{}k rows", small.2 / 1000), &s_side),
        Ratio::Cost,
        Goal::AtMost(1.2),
        "≤1.2×",
    );
    for (p, t, s) in phases {
        r.phase(&name, Some(l), &p, t, s);
    }
}

/// Watches the share's counters from another thread: when did the last share *read* happen, and
/// what had the share done by then? (The snapshot's bulk transfer ends with its last read; the
/// remote file is closed later, after the local work.)
struct LastRead {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<(Duration, Stats)>,
}

impl LastRead {
    fn start(ctl: &slowfs::Control, t0: Instant) -> LastRead {
        let stop = Arc::new(AtomicBool::new(false));
        let (ctl, s) = (ctl.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            let mut last = (Duration::ZERO, ctl.stats());
            while !s.load(Ordering::Relaxed) {
                let now = ctl.stats();
                if now.read != last.1.read {
                    last = (t0.elapsed(), now);
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            last
        });
        LastRead { stop, handle }
    }

    fn finish(self) -> (Duration, Stats) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}

/// Initial snapshot (first `Cache::open`) vs copying the file over the same share.
pub fn snapshot(r: &mut Report, share: &Share, remote: &str, l: u64, reps: usize) {
    let size = share.size(remote);
    let (mut ours, mut base) = (Side::default(), Side::default());
    let mut split = None;
    for rep in 0..reps {
        for mine in order(rep) {
            if mine {
                let name = format!("snap-{l}-{rep}");
                let cfg = share.config(remote, &name);
                let before = share.ctl.stats();
                let t0 = Instant::now();
                let watch = LastRead::start(&share.ctl, t0);
                let (cache, t, s) = timed(&share.ctl, || Cache::open(cfg).unwrap());
                let (last, at_last) = watch.finish();
                drop(cache);
                let _ = std::fs::remove_dir_all(share.local(&format!("cache-{name}")));
                ours.add(1, t, &s);
                split = Some((last, diff(&before, &at_last), t, s));
            } else {
                let to = share.local("copy.db");
                let (n, t, s) = timed(&share.ctl, || copy_file(&share.shared(remote), &to));
                assert_eq!(n, size);
                let _ = std::fs::remove_file(&to);
                base.add(1, t, &s);
            }
        }
    }
    // What-if: the same copy with four reads in flight (what a pipelined snapshot could do).
    let mut par = Side::default();
    for _ in 0..reps {
        let to = share.local("copy4.db");
        let (n, t, s) = timed(&share.ctl, || copy_parallel(&share.shared(remote), &to, 4));
        assert_eq!(n, size);
        let _ = std::fs::remove_file(&to);
        par.add(1, t, &s);
    }
    let name = format!("initial snapshot of a {:.0} MB remote", size as f64 / 1e6);
    r.pair(
        &name,
        Some(l),
        ("Cache::open, first", &ours),
        ("copy the file (1 MiB reads, fsync)", &base),
        Ratio::Cost,
        Goal::AtMost(1.5),
        "≤1.5×",
    );
    r.pair(
        &format!("  what if: {name}, copied with 4 reads in flight"),
        Some(l),
        ("copy, 4 reads in flight", &par),
        ("copy the file (1 MiB reads, fsync)", &base),
        Ratio::Cost,
        Goal::None,
        "—",
    );
    r.ops.remove(r.ops.len() - 1);
    if let Some((last, upto, t, s)) = split {
        r.phase(
            &name,
            Some(l),
            "until the last read from the share (checks, lease, transfer)",
            last,
            upto.clone(),
        );
        r.phase(
            &name,
            Some(l),
            "after it (quick_check, WAL, drop remote tables, triggers; closing the remote)",
            t.saturating_sub(last),
            diff(&upto, &s),
        );
    }
}

/// The capture triggers' cost: insert/update/delete in a tracked table vs an untracked copy of
/// it in the same cache file (so the same journal mode and settings). The triggers append to the
/// capture journal; folding it into the outbox is sharecache's work, not the app's write, and is
/// timed on its own line (per captured write, after each tracked run).
pub fn capture(r: &mut Report, cache: &Cache) {
    let path = cache.cache_path().expect("cached").to_path_buf();
    let c = Connection::open(&path).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c.execute_batch("PRAGMA synchronous = NORMAL").unwrap();
    for (table, label) in [
        ("items", "no updated_at"),
        ("stamped", "updated_at stamped by the trigger"),
    ] {
        let tracked = table.to_string();
        let untracked = format!("{table}_untracked");
        for (mode, n, reps) in [
            ("autocommit", 500u64, 9usize),
            ("in one 1000-row transaction", 1000, 9),
        ] {
            let tx = mode != "autocommit";
            let mut sides = [
                (Side::default(), Side::default()),
                (Side::default(), Side::default()),
                (Side::default(), Side::default()),
            ];
            let mut folds = [Side::default(), Side::default(), Side::default()];
            // Repetition 0 warms up (statements and trigger programs compiled) and is not kept.
            for rep in 0..=reps {
                let base = 1_000_000 + (rep as i64) * n as i64;
                for (k, op) in ["insert", "update", "delete"].iter().enumerate() {
                    for mine in order(rep + k) {
                        c.execute_batch("DELETE FROM sync_tracking; DELETE FROM sync_journal;")
                            .unwrap();
                        let t = if mine { &tracked } else { &untracked };
                        let sql = match *op {
                            "insert" => format!(
                                "INSERT INTO {t} (id, name, qty, price, note) VALUES (?1, 'item ' || ?1, ?1 % 100, ?1 * 0.25, 'a row written by the capture benchmark')"
                            ),
                            "update" => format!(
                                "UPDATE {t} SET qty = qty + 1, note = 'updated by the capture benchmark' WHERE id = ?1"
                            ),
                            _ => format!("DELETE FROM {t} WHERE id = ?1"),
                        };
                        let t0 = Instant::now();
                        if tx {
                            c.execute_batch("BEGIN").unwrap();
                        }
                        let mut st = c.prepare_cached(&sql).unwrap();
                        for id in base..base + n as i64 {
                            assert_eq!(st.execute([id]).unwrap(), 1);
                        }
                        if tx {
                            c.execute_batch("COMMIT").unwrap();
                        }
                        let took = t0.elapsed();
                        let t1 = Instant::now();
                        let folded = sharecache::store::journal::fold(&c).unwrap() as u64;
                        let fold_took = t1.elapsed();
                        if rep == 0 {
                            continue;
                        }
                        if mine {
                            assert_eq!(folded, n, "one event per write");
                            folds[k].add(n, fold_took, &Stats::default());
                        }
                        let side = if mine {
                            &mut sides[k].0
                        } else {
                            &mut sides[k].1
                        };
                        side.add(n, took, &Stats::default());
                    }
                }
            }
            c.execute_batch("DELETE FROM sync_tracking; DELETE FROM sync_journal;")
                .unwrap();
            let goal = if tx { 2.0 } else { 1.5 };
            for (k, op) in ["insert", "update", "delete"].iter().enumerate() {
                r.pair(
                    &format!("capture overhead: {op}, {mode} ({label})"),
                    None,
                    ("tracked", &sides[k].0),
                    ("untracked copy", &sides[k].1),
                    Ratio::Cost,
                    Goal::AtMost(goal),
                    &format!("≤{goal}×"),
                );
                r.ops.pop();
                r.ops.pop();
                r.single(
                    &format!(
                        "  folding the journal after it (sharecache's side): {op}, {mode} ({label})"
                    ),
                    None,
                    format!("{} per captured write", fmt_dur(folds[k].median())),
                    "—".into(),
                    (Goal::None, 0.0, "—"),
                );
            }
        }
    }
}

/// Local apply rate while pulling `changes` changes, and the waits of app writes made on another
/// connection to the cache meanwhile.
pub fn apply(r: &mut Report, share: &Share, remote: &str, cache: &Cache, changes: u64, l: u64) {
    let c = share.backdoor(remote);
    let logged = c
        .execute(
            "UPDATE items SET qty = qty + 1, note = 'bulk change' WHERE id <= ?1",
            [changes as i64],
        )
        .unwrap() as u64;
    drop(c);
    assert_eq!(logged, changes);
    let path = cache.cache_path().unwrap().to_path_buf();
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let writer = std::thread::Builder::new()
        .name("app-writer".into())
        .spawn(move || {
            let w = Connection::open(&path).unwrap();
            w.busy_timeout(Duration::from_secs(10)).unwrap();
            // A table only the cache has (not synced): waiting for the write lock is the same
            // for every table, and the writes must not be pushed by later syncs of this cache.
            w.execute_batch(
                "CREATE TABLE IF NOT EXISTS app_local_notes (id INTEGER PRIMARY KEY, at TEXT NOT NULL, what TEXT)",
            )
            .unwrap();
            let mut waits = vec![];
            let mut i = 0u64;
            while !s2.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let at = t0;
                w.prepare_cached(
                    "INSERT INTO app_local_notes (at, what) VALUES (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ?1)",
                )
                .unwrap()
                .execute([format!("app write {i} during the pull")])
                .unwrap();
                waits.push((at, t0.elapsed()));
                i += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
            waits
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    lockwatch::take();
    let me = std::thread::current().id();
    let mut rec = Recorder::new(&share.ctl);
    let start = rec.start();
    let t0 = Instant::now();
    let report = cache.sync_with_progress(&rec).unwrap();
    let wall = t0.elapsed();
    let ops = diff(&start, &share.ctl.stats());
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    let writes = writer.join().unwrap();
    let holds = lockwatch::take();
    let write_holds = |engine: bool| {
        holds
            .iter()
            .filter(move |h| !h.checkpoint && (h.thread == me) == engine)
    };
    let engine: Vec<Duration> = write_holds(true)
        .filter(|h| h.start >= t0)
        .map(|h| h.held)
        .collect();
    let checkpoints = holds.iter().filter(|h| h.checkpoint).count();
    let held: Duration = engine.iter().sum();
    let max_hold = engine.iter().max().copied().unwrap_or_default();
    let pulled = report.pulled as f64;
    let rate = pulled / held.as_secs_f64();
    let e2e = pulled / wall.as_secs_f64();
    // Per app write: the statement's time, and how long of it was spent waiting for the write
    // lock (until its own hold began) — the part the sync is responsible for.
    let app: Vec<&lockwatch::Hold> = write_holds(false).collect();
    let mut lock_waits = vec![];
    let mut own_max = Duration::ZERO;
    for (at, took) in &writes {
        if let Some(h) = app
            .iter()
            .find(|h| h.start >= *at && h.start <= *at + *took)
        {
            lock_waits.push(h.start - *at);
            own_max = own_max.max(h.held);
        }
    }
    let mut stmt: Vec<Duration> = writes.iter().map(|w| w.1).collect();
    stmt.sort();
    lock_waits.sort();
    let pct = |v: &[Duration], p: usize| v[(v.len() * p / 100).min(v.len() - 1)];
    let worst_wait = lock_waits.last().copied().unwrap_or_default();
    let over = lock_waits
        .iter()
        .filter(|w| **w > Duration::from_millis(10))
        .count();
    r.single(
        &format!("local apply rate while pulling {}k changes", changes / 1000),
        Some(l),
        format!(
            "{} rows in {} write transactions holding the lock {} in all (longest {})",
            report.pulled,
            engine.len(),
            fmt_dur(held.as_secs_f64()),
            fmt_dur(max_hold.as_secs_f64())
        ),
        format!("**{:.0} rows/s**", rate),
        (Goal::AtLeast(50_000.0), rate, "≥50k rows/s"),
    );
    r.single(
        "  the same pull end to end (fetch over the share + apply)",
        Some(l),
        format!("{} for {} rows", fmt_dur(wall.as_secs_f64()), report.pulled),
        format!("{e2e:.0} rows/s"),
        (Goal::None, 0.0, "—"),
    );
    r.single(
        "app writes on another connection during that pull: longest wait for the write lock",
        Some(l),
        format!(
            "{} writes; lock wait p99 {}, {} over 10 ms; whole statement median {}, p99 {}, max {}",
            writes.len(),
            fmt_dur(pct(&lock_waits, 99).as_secs_f64()),
            over,
            fmt_dur(pct(&stmt, 50).as_secs_f64()),
            fmt_dur(pct(&stmt, 99).as_secs_f64()),
            fmt_dur(stmt.last().copied().unwrap_or_default().as_secs_f64()),
        ),
        format!("**{}**", fmt_dur(worst_wait.as_secs_f64())),
        (Goal::AtMost(0.010), worst_wait.as_secs_f64(), "≤10 ms"),
    );
    r.notes.push(format!(
        "apply ({l} ms share): {} changes written on the remote directly (its change-log triggers logged them); \
         {} rows pulled, {} deferred; the app writer's own commits held the lock {} at most \
         (a statement's time beyond its lock wait is its own work, including the machine descheduling it); \
         {} WAL checkpoints; {} share operations in all ({} per pulled row).",
        changes,
        report.pulled,
        report.deferred,
        fmt_dur(own_max.as_secs_f64()),
        checkpoints,
        ops.total,
        fmt_ratio(ops.total as f64 / pulled.max(1.0)),
    ));
    r.phase(
        &format!("pull of {}k changes", changes / 1000),
        Some(l),
        "whole sync",
        wall,
        ops,
    );
    r.phase(
        &format!("pull of {}k changes", changes / 1000),
        Some(l),
        "of which the sync's connection held the cache's write lock",
        held,
        Stats::default(),
    );
}
