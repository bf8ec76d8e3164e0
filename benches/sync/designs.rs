//! Design experiments: what the engine's costs would be with another change-log layout or other
//! capture triggers. They do not run the engine; they run, by hand, the SQL each design would run,
//! on the same share and data, so the proposals in BENCHMARKS.md rest on measurements.
//!
//! Run them with `SHARECACHE_BENCH_ONLY=designs`.

use std::time::Instant;

use rusqlite::{Connection, params};
use slowfs::Stats;

use super::env::{Rng, Share};
use super::measure::{Goal, Ratio, Report, Side, timed};

/// The remote change-log layouts compared.
#[derive(Clone, Copy, PartialEq)]
enum Log {
    /// No log: the app's own transaction.
    None,
    /// sharecache's first log format (remote format 1, until the append-only log replaced it):
    /// keyed by table and key text, with a unique index on `rev`; a change moves its row's entry.
    Keyed,
    /// Append-only, keyed by `rev` (rowid): a change appends a row at the end of the log.
    Append,
    /// Append-only with the row's values (JSON) in the entry: a pull reads only the log.
    AppendImage,
}

impl Log {
    fn label(self) -> &'static str {
        match self {
            Log::None => "no change log",
            Log::Keyed => "format-1 log (keyed by table+key, unique rev index)",
            Log::Append => "append-only log keyed by rev",
            Log::AppendImage => "append-only log keyed by rev, with row images",
        }
    }

    fn file(self) -> &'static str {
        match self {
            Log::None => "design-none.db",
            Log::Keyed => "design-keyed.db",
            Log::Append => "design-append.db",
            Log::AppendImage => "design-image.db",
        }
    }
}

const KEYED_LOG: &str = "CREATE TABLE meta (rev INTEGER NOT NULL); \
    CREATE TABLE log (tbl TEXT NOT NULL, pk TEXT NOT NULL, rev INTEGER NOT NULL, stamp TEXT NOT NULL, \
    origin TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (tbl, pk)) WITHOUT ROWID; \
    CREATE UNIQUE INDEX log_rev ON log (rev);";

const APPEND_LOG: &str = "CREATE TABLE log (rev INTEGER PRIMARY KEY, tbl TEXT NOT NULL, pk TEXT NOT NULL, \
    stamp TEXT NOT NULL, origin TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, row TEXT);";

/// Creates a remote for `layout` with `rows` rows and a log entry for every row.
fn create(share: &Share, purpose: &str, layout: Log, rows: u64) -> String {
    let name = format!("{purpose}-{rows}-{}", layout.file());
    match layout {
        Log::None => share.create_plain(&name, rows, ""),
        Log::Keyed => {
            share.create_plain(&name, rows, KEYED_LOG);
            share
                .backdoor(&name)
                .execute_batch(
                    "INSERT INTO log (tbl, pk, rev, stamp, origin, deleted) \
                     SELECT 'items', json_array(id), id, '2026-01-01T00:00:00.000Z', 'bench-seed', 0 FROM items;
                     INSERT INTO meta VALUES ((SELECT max(rev) FROM log));",
                )
                .unwrap();
        }
        Log::Append | Log::AppendImage => {
            share.create_plain(&name, rows, APPEND_LOG);
            let image = if layout == Log::AppendImage {
                "json_array(name, qty, price, note)"
            } else {
                "NULL"
            };
            share
                .backdoor(&name)
                .execute_batch(&format!(
                    "INSERT INTO log (rev, tbl, pk, stamp, origin, deleted, row) \
                     SELECT id, 'items', json_array(id), '2026-01-01T00:00:00.000Z', 'bench-seed', 0, {image} FROM items;"
                ))
                .unwrap();
        }
    }
    name
}

/// One row change as each design writes it.
fn write_row(c: &Connection, layout: Log, id: i64, tag: &str) {
    c.prepare_cached("UPDATE items SET qty = qty + 1, note = ?1 || '-' || id WHERE id = ?2")
        .unwrap()
        .execute(params![tag, id])
        .unwrap();
    let image = match layout {
        Log::None => return,
        Log::Keyed => {
            // What the format-1 change-log triggers ran for an update.
            c.prepare_cached("UPDATE meta SET rev = rev + 1")
                .unwrap()
                .execute([])
                .unwrap();
            c.prepare_cached(
                "INSERT INTO log (tbl, pk, rev, stamp, origin, deleted) \
                 SELECT 'items', json_array(?1), rev, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 'bench', 0 FROM meta \
                 WHERE true ON CONFLICT (tbl, pk) DO UPDATE SET rev = excluded.rev, stamp = excluded.stamp, \
                 origin = excluded.origin, deleted = excluded.deleted",
            )
            .unwrap()
            .execute([id])
            .unwrap();
            return;
        }
        Log::Append => "NULL",
        Log::AppendImage => "json_array(name, qty, price, note)",
    };
    c.prepare_cached(&format!(
        "INSERT INTO log (tbl, pk, stamp, origin, deleted, row) \
         SELECT 'items', json_array(id), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), 'bench', 0, {image} \
         FROM items WHERE id = ?1"
    ))
    .unwrap()
    .execute([id])
    .unwrap();
}

/// A design remote: file name, rows, a direct connection on it.
type Remote = (String, u64, Connection);

/// The design remotes, created once.
pub struct Designs {
    rows: u64,
    push: Vec<Connection>,
    /// Per layout: the small and the big remote (names, sizes, connections).
    pull: Vec<(Log, [Remote; 2])>,
}

const PUSH_LAYOUTS: [Log; 4] = [Log::None, Log::Keyed, Log::Append, Log::AppendImage];

impl Designs {
    pub fn create(share: &Share, rows: u64, small: u64, big: u64) -> Designs {
        let push = PUSH_LAYOUTS
            .iter()
            .map(|&d| share.direct(&create(share, "push", d, rows)))
            .collect();
        let pull = [Log::Keyed, Log::AppendImage]
            .into_iter()
            .map(|d| {
                let s = create(share, "pull", d, small);
                let b = create(share, "pull", d, big);
                let (cs, cb) = (share.direct(&s), share.direct(&b));
                (d, [(s, small, cs), (b, big, cb)])
            })
            .collect();
        Designs { rows, push, pull }
    }
}

/// Push cost by log layout: `n` updates in one hand-written transaction.
pub fn push_layouts(r: &mut Report, share: &Share, d: &Designs, l: u64) {
    let layouts = PUSH_LAYOUTS;
    let rows = d.rows;
    let conns = &d.push;
    for n in [1_000u64, 10_000] {
        let stride = (rows / n).max(1) as i64;
        let reps = if l == 0 { 5 } else { 3 };
        let mut sides: Vec<Side> = vec![Side::default(); layouts.len()];
        for rep in 0..reps {
            let off = rep as i64 % stride;
            let tag = format!("d{l}-{rep}");
            for k in 0..layouts.len() {
                let k = (k + rep) % layouts.len();
                let c = &conns[k];
                let (_, t, s) = timed(&share.ctl, || {
                    c.execute_batch("BEGIN IMMEDIATE").unwrap();
                    for id in (1..=rows as i64).filter(|id| id % stride == off) {
                        write_row(c, layouts[k], id, &tag);
                    }
                    c.execute_batch("COMMIT").unwrap();
                });
                sides[k].add(1, t, &s);
            }
        }
        for k in 1..layouts.len() {
            r.pair(
                &format!(
                    "design: {n} updates in one transaction, {}",
                    layouts[k].label()
                ),
                Some(l),
                ("with log", &sides[k]),
                ("no log", &sides[0]),
                Ratio::Cost,
                Goal::None,
                "(push ≤1.5×)",
            );
            if k > 1 {
                r.ops.remove(r.ops.len() - 1);
            }
        }
    }
}

/// Pull read cost by log layout: the share operations (and time) to read 100 changes after
/// another client changed the file, small remote vs big remote.
pub fn pull_layouts(r: &mut Report, share: &Share, d: &Designs, l: u64) {
    for (layout, remotes) in &d.pull {
        let layout = *layout;
        let (small, big) = (remotes[0].1, remotes[1].1);
        let mut sides = [Side::default(), Side::default()];
        let mut rng = Rng::new(11);
        let reps = if l >= 20 { 3 } else { 5 };
        for _ in 0..reps {
            for (k, (name, rows, c)) in remotes.iter().enumerate() {
                let rows = *rows;
                // Another client changes 100 random rows (directly in the backing file).
                let b = share.backdoor(name);
                let ids = rng.distinct(100, rows);
                b.execute_batch("BEGIN").unwrap();
                for id in &ids {
                    write_row(&b, layout, *id, "x");
                }
                b.execute_batch("COMMIT").unwrap();
                let (_, t, s) = timed(&share.ctl, || read_changes(c, layout));
                sides[k].add(1, t, &s);
            }
        }
        r.pair(
            &format!(
                "design: read 100 changes, {}k vs {}k rows, {}",
                big / 1000,
                small / 1000,
                layout.label()
            ),
            Some(l),
            (&format!("{}k rows", big / 1000), &sides[1]),
            (&format!("{}k rows", small / 1000), &sides[0]),
            Ratio::Cost,
            Goal::None,
            "(pull ≤1.2×)",
        );
    }
}

/// Reads the last 100 changes with their rows, as a pull's fetch would with this layout.
fn read_changes(c: &Connection, layout: Log) {
    c.execute_batch("BEGIN").unwrap();
    match layout {
        Log::Keyed => {
            let top: i64 = c
                .query_row("SELECT rev FROM meta", [], |r| r.get(0))
                .unwrap();
            // The columns the format-1 fetch read, then each row by key.
            let keys: Vec<String> = c
                .prepare_cached(
                    "SELECT tbl, pk, rev, stamp, origin, deleted FROM log WHERE rev > ?1 ORDER BY rev",
                )
                .unwrap()
                .query_map([top - 100], |r| r.get(1))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(keys.len(), 100);
            for k in keys {
                let id: i64 = k.trim_matches(['[', ']']).parse().unwrap();
                let _: String = c
                    .prepare_cached("SELECT note FROM items WHERE id = ?1")
                    .unwrap()
                    .query_row([id], |r| r.get(0))
                    .unwrap();
            }
        }
        _ => {
            let n: i64 = c
                .query_row(
                    "SELECT count(row) FROM (SELECT row FROM log ORDER BY rev DESC LIMIT 100)",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 100);
        }
    }
    c.execute_batch("COMMIT").unwrap();
}

/// Push order: inserting `n` new rows in batches of 500 (one transaction each, as a push does) in
/// the outbox's order — the key's JSON text, `[1]`, `[10]`, `[100]`, … — vs in key order, with a
/// remote page cache smaller than the table (4 MiB for ~17 MB at 100k rows: the engine's 32 MiB
/// against a 1M-row remote is the same proportion). 0 ms only: the text order re-reads hundreds of
/// thousands of pages.
pub fn push_order(r: &mut Report, share: &Share, n: u64) {
    let mut sides = [Side::default(), Side::default()];
    for (k, name) in ["order-text.db", "order-key.db"].into_iter().enumerate() {
        share.create_plain(name, 0, "");
        let c = share.direct(name);
        c.execute_batch("PRAGMA cache_size = -4096").unwrap();
        let mut ids: Vec<i64> = (1..=n as i64).collect();
        if k == 0 {
            ids.sort_by_key(|id| format!("[{id}]"));
        }
        let (_, t, s) = timed(&share.ctl, || {
            for batch in ids.chunks(500) {
                c.execute_batch("BEGIN IMMEDIATE").unwrap();
                let mut st = c
                    .prepare_cached(
                        "INSERT INTO items (id, name, qty, price, note) VALUES (?1, 'item ' || ?1, ?1 % 100, ?1 * 0.25, 'pending row written by the rss benchmark')",
                    )
                    .unwrap();
                for id in batch {
                    st.execute([id]).unwrap();
                }
                c.execute_batch("COMMIT").unwrap();
            }
        });
        sides[k].add(1, t, &s);
    }
    r.pair(
        &format!("design: {}k inserts in 500-row transactions, outbox (key text) order vs key order, 4 MiB page cache", n / 1000),
        Some(0),
        ("key text order", &sides[0]),
        ("key order", &sides[1]),
        Ratio::Cost,
        Goal::None,
        "—",
    );
}

/// The capture triggers' per-row cost, part by part, in a 1000-row transaction (local, CPU only).
pub fn capture_anatomy(r: &mut Report, dir: &std::path::Path) {
    let path = dir.join("anatomy.db");
    let _ = std::fs::remove_file(&path);
    let c = Connection::open(&path).unwrap();
    c.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
        .unwrap();
    for step in [
        include_str!("../../migrations/cache/0001_init.sql"),
        include_str!("../../migrations/cache/0002_push_in_key_order.sql"),
        include_str!("../../migrations/cache/0003_cheaper_capture.sql"),
    ] {
        c.execute_batch(step).unwrap();
    }
    c.execute(
        "INSERT INTO sync_state (id, origin, hlc, remote_id, remote_path, created_at, snapshot_at) \
         VALUES (1, '0123456789abcdef', 1767225600000, 'r', 'p', 't', 't')",
        [],
    )
    .unwrap();
    c.execute_batch(
        "CREATE TABLE clock_text (id INTEGER PRIMARY KEY, hlc TEXT NOT NULL);
         INSERT INTO clock_text VALUES (1, '2026-01-01T00:00:00.000Z');
         CREATE TABLE tracking_int (tbl TEXT NOT NULL, pk NOT NULL, op TEXT NOT NULL, stamp INTEGER NOT NULL, seq INTEGER NOT NULL, seen_rev INTEGER NOT NULL, PRIMARY KEY (tbl, pk)) WITHOUT ROWID;",
    )
    .unwrap();
    let cols =
        "(id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER NOT NULL, price REAL, note TEXT)";
    let key = "json_array(CASE WHEN typeof(NEW.id) = 'blob' THEN json_object('$blob', hex(NEW.id)) ELSE NEW.id END)";
    let tick = "UPDATE sync_state SET hlc = max(hlc + 1, CAST(round((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER));";
    let text_tick = "UPDATE clock_text SET hlc = max(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', hlc, '+0.001 seconds'));";
    let upsert = format!(
        "INSERT INTO sync_tracking (tbl, pk, ord, op, stamp, seq, seen_rev) SELECT 'T', {key}, NEW.id, 'I', hlc, 1, pull_rev FROM sync_state WHERE true \
         ON CONFLICT (tbl, pk) DO UPDATE SET op = CASE WHEN op = 'I' THEN 'I' ELSE 'U' END, stamp = excluded.stamp, seq = seq + 1;"
    );
    let quiet = "WHEN (SELECT applying FROM sync_state) = 0";
    // (name, setup SQL with T as the table name)
    let variants: Vec<(&str, String)> = vec![
        ("untracked", String::new()),
        ("sharecache's triggers (as installed)", "CAPTURE".into()),
        (
            "AFTER INSERT only: clock tick + tracking upsert (no BEFORE INSERT trigger)",
            format!("CREATE TRIGGER T_ai AFTER INSERT ON T {quiet} BEGIN {tick} {upsert} END;"),
        ),
        (
            "tracking upsert only (no clock tick)",
            format!("CREATE TRIGGER T_ai AFTER INSERT ON T {quiet} BEGIN {upsert} END;"),
        ),
        (
            "clock tick only, integer milliseconds (as installed)",
            format!("CREATE TRIGGER T_ai AFTER INSERT ON T {quiet} BEGIN {tick} END;"),
        ),
        (
            "clock tick only, text stamps (before: parse one, format two)",
            format!("CREATE TRIGGER T_ai AFTER INSERT ON T {quiet} BEGIN {text_tick} END;"),
        ),
        (
            "floor: a trigger whose body does nothing (SELECT 1 WHERE 0)",
            format!("CREATE TRIGGER T_ai AFTER INSERT ON T {quiet} BEGIN SELECT 1 WHERE 0; END;"),
        ),
        (
            "floor: one plain insert into a tracking table per row, nothing else",
            "CREATE TRIGGER T_ai AFTER INSERT ON T BEGIN \
             INSERT OR IGNORE INTO tracking_int (tbl, pk, op, stamp, seq, seen_rev) VALUES ('T', NEW.id, 'I', 0, 1, 0); END;"
                .into(),
        ),
    ];
    let reps = 9;
    // Per mode: rows per repetition, one transaction or autocommit.
    let modes = [(1000i64, true), (300, false)];
    let mut sides: Vec<Vec<Side>> = vec![vec![Side::default(); variants.len()]; modes.len()];
    for (k, (_, sql)) in variants.iter().enumerate() {
        let t = format!("t{k}");
        c.execute_batch(&format!("CREATE TABLE {t} {cols};"))
            .unwrap();
        if sql == "CAPTURE" {
            let e = sharecache::schema::read(&c)
                .unwrap()
                .into_iter()
                .find(|e| e.table.name == t)
                .unwrap();
            sharecache::store::capture::install(&c, &e.table).unwrap();
        } else if !sql.is_empty() {
            c.execute_batch(
                &sql.replace("T_ai", &format!("{t}_ai"))
                    .replace(" ON T ", &format!(" ON {t} "))
                    .replace("'T'", &format!("'{t}'")),
            )
            .unwrap();
        }
    }
    let mut next_id = 0i64;
    for (m, &(n, tx)) in modes.iter().enumerate() {
        // Repetition 0 warms up and is not kept.
        for rep in 0..=reps {
            for j in 0..variants.len() {
                let k = (j + rep) % variants.len();
                let t = format!("t{k}");
                c.execute_batch("DELETE FROM sync_tracking; DELETE FROM tracking_int;")
                    .unwrap();
                let base = next_id;
                next_id += n;
                let t0 = Instant::now();
                if tx {
                    c.execute_batch("BEGIN").unwrap();
                }
                let mut st = c
                    .prepare_cached(&format!(
                        "INSERT INTO {t} (id, name, qty, price, note) VALUES (?1, 'item ' || ?1, ?1 % 100, ?1 * 0.25, 'a row written by the capture benchmark')"
                    ))
                    .unwrap();
                for id in base..base + n {
                    st.execute([id]).unwrap();
                }
                if tx {
                    c.execute_batch("COMMIT").unwrap();
                }
                let took = t0.elapsed();
                if rep > 0 {
                    sides[m][k].add(n as u64, took, &Stats::default());
                }
            }
        }
    }
    for (m, &(n, tx)) in modes.iter().enumerate() {
        let mode = if tx {
            format!("in a {n}-row transaction")
        } else {
            "autocommit".to_string()
        };
        for k in 1..variants.len() {
            r.pair(
                &format!("design: insert {mode}, {}", variants[k].0),
                None,
                ("tracked", &sides[m][k]),
                ("untracked", &sides[m][0]),
                Ratio::Cost,
                Goal::None,
                if tx {
                    "(capture ≤2×)"
                } else {
                    "(capture ≤1.5×)"
                },
            );
            r.ops.pop();
            r.ops.pop();
        }
    }
}
