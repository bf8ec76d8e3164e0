use super::*;
use crate::schema;

/// A cache-shaped database with sharecache's tables and captured tables `t` (integer key) and
/// `c` (composite key).
fn setup() -> Connection {
    let c = Connection::open_in_memory().unwrap();
    crate::migrate::CACHE.apply(&c, "t").unwrap();
    c.execute_batch(
        "INSERT INTO sync_state (id, origin, hlc, remote_id, remote_path, created_at, snapshot_at) \
         VALUES (1, 'o', 946684800000, 'r', 'p', 't', 't'); \
         CREATE TABLE t(id INTEGER PRIMARY KEY, v); \
         CREATE TABLE c(a TEXT, b INTEGER, v, PRIMARY KEY (a, b)) WITHOUT ROWID;",
    )
    .unwrap();
    for e in schema::read(&c).unwrap() {
        crate::store::capture::install(&c, &e.table).unwrap();
    }
    c
}

/// The outbox as (table, key text, op, seq, seen_rev), in key order.
fn outbox(c: &Connection) -> Vec<(String, String, String, i64, i64)> {
    c.prepare("SELECT tbl, pk, op, seq, seen_rev FROM sync_tracking ORDER BY tbl, pk")
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn events(c: &Connection) -> i64 {
    c.query_row("SELECT count(*) FROM sync_journal", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn each_event_does_what_the_triggers_did_to_the_entry() {
    let e = |op, seq, seen_rev| Entry {
        op,
        stamp: 7,
        seq,
        seen_rev,
    };
    let run = |start: Option<Entry>, ops: &[&str]| {
        ops.iter()
            .enumerate()
            .fold(start, |s, (i, op)| apply(s, op, 7, 10 + i as i64).unwrap())
    };
    assert_eq!(
        run(None, &["I", "U", "U"]),
        Some(e("I", 3, 10)),
        "insert + updates = insert"
    );
    assert_eq!(
        run(None, &["I", "U", "D"]),
        None,
        "insert + delete = nothing"
    );
    assert_eq!(
        run(None, &["D", "I"]),
        Some(e("U", 2, 10)),
        "delete + insert = update"
    );
    assert_eq!(
        run(None, &["X", "I"]),
        Some(e("U", 1, 10)),
        "INSERT OR REPLACE over a row"
    );
    assert_eq!(
        run(None, &["X"]),
        Some(e("X", 0, 10)),
        "a marker until its insert comes"
    );
    assert_eq!(
        run(Some(e("U", 4, 2)), &["X", "D"]),
        Some(e("D", 5, 2)),
        "seen_rev stays the first change's"
    );
    assert_eq!(
        run(Some(e("I", 1, 2)), &["D", "I"]),
        Some(e("I", 1, 11)),
        "a new entry after nothing"
    );
    assert!(
        apply(None, "Z", 7, 0).is_err(),
        "an unknown event is refused"
    );
}

/// A small deterministic generator (no seed file, the same writes on every run).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Random writes of every kind an app makes (insert, update, delete, a key changed, `INSERT OR
/// REPLACE`, `INSERT OR IGNORE`) over rows that exist at the start or not, the pull cursor moving,
/// folded at random moments on one cache and once at the end on the other.
fn write(c: &Connection, rng: &mut Lcg, fold_now: bool) {
    let id = rng.below(40) as i64;
    let other = rng.below(40) as i64;
    let sql = match rng.below(8) {
        0 => "INSERT OR IGNORE INTO t VALUES (?1, 'i')",
        1 => "INSERT OR REPLACE INTO t VALUES (?1, 'r')",
        2 => "UPDATE t SET v = v || 'u' WHERE id = ?1",
        3 => "DELETE FROM t WHERE id = ?1",
        4 => "UPDATE OR IGNORE t SET id = ?2 WHERE id = ?1",
        5 => "INSERT OR REPLACE INTO c VALUES ('k', ?1 % 5, 'r')",
        6 => "DELETE FROM c WHERE b = ?1 % 5",
        _ => "UPDATE sync_state SET pull_rev = pull_rev + 1 WHERE ?1 >= 0 AND ?2 >= 0",
    };
    let sql = sql.replace("?2", &other.to_string());
    c.execute(&sql, [id]).unwrap();
    if fold_now {
        fold(c).unwrap();
    }
}

fn seed(c: &Connection) {
    c.execute_batch(
        "UPDATE sync_state SET applying = 1; \
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 2 FROM n WHERE i < 38) \
         INSERT INTO t SELECT i, 'synced' FROM n; \
         INSERT INTO c VALUES ('k', 1, 'synced'), ('k', 3, 'synced'); \
         UPDATE sync_state SET applying = 0;",
    )
    .unwrap();
}

fn rows(c: &Connection, sql: &str) -> Vec<String> {
    c.prepare(sql)
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn folding_now_and_then_or_once_leaves_the_outbox_the_rows_say() {
    let (often, once) = (setup(), setup());
    seed(&often);
    seed(&once);
    let key = "SELECT quote(id) FROM t UNION ALL SELECT quote(a) || ',' || b FROM c";
    let before = rows(&once, key);
    let (mut r1, mut r2, mut pick) = (Lcg(18), Lcg(18), Lcg(7));
    // More writes than a chunk, so one fold spans several of them.
    for _ in 0..(CHUNK as u64 * 3 / 2) {
        let fold_now = pick.below(100) == 0;
        write(&often, &mut r1, fold_now);
        write(&once, &mut r2, false);
    }
    assert!(events(&once) > CHUNK as i64, "{}", events(&once));
    let counted = pending(&once).unwrap();
    let mut seen = HashMap::new();
    for (k, (_, after)) in overlay(&once).unwrap() {
        seen.insert(k, after);
    }
    fold(&once).unwrap();
    fold(&often).unwrap();
    assert_eq!((events(&once), events(&often)), (0, 0));
    assert_eq!(
        outbox(&often),
        outbox(&once),
        "where the folds fell changes nothing"
    );
    let now = rows(&once, key);
    let entries = outbox(&once);
    let pushed: Vec<&(String, String, String, i64, i64)> =
        entries.iter().filter(|e| e.2 != "X").collect();
    assert_eq!(
        counted,
        pushed.len() as i64,
        "the count without folding is the fold's"
    );
    for (tbl, pk, op, seq, seen_rev) in &entries {
        let after = seen[&(tbl.clone(), pk.clone())].clone().unwrap();
        assert_eq!(
            (after.op, after.seq, after.seen_rev),
            (op.as_str(), *seq, *seen_rev)
        );
        if op == "X" {
            // An INSERT OR IGNORE that met a synced row: a marker, never pushed.
            assert!(before.contains(pk) && now.contains(pk), "{tbl} {pk}");
            continue;
        }
        // What a push must do to the remote, from the rows alone: the row was there before the
        // writes (synced) or not, and is there now or not.
        let (was, is) = (before.contains(pk), now.contains(pk));
        let want = match (was, is) {
            (false, true) => "I",
            (true, true) => "U",
            (true, false) => "D",
            (false, false) => "nothing",
        };
        assert_eq!(op, want, "{tbl} {pk}");
        assert!(*seq >= 1);
    }
    assert!(pushed.len() > 20, "{pushed:?}");
    for pk in now.iter().filter(|k| !before.contains(*k)) {
        assert!(
            entries.iter().any(|e| &e.1 == pk),
            "new row {pk} has an entry"
        );
    }
    for pk in before.iter().filter(|k| !now.contains(*k)) {
        assert!(
            entries.iter().any(|e| &e.1 == pk && e.2 == "D"),
            "gone row {pk} is a delete"
        );
    }
}

#[test]
fn an_app_s_outer_conflict_clause_cannot_touch_an_event() {
    let c = setup();
    seed(&c);
    // Under INSERT OR IGNORE / OR REPLACE every statement of the triggers runs with that clause;
    // the journal has no constraint it could apply to.
    c.execute_batch(
        "INSERT OR IGNORE INTO t VALUES (1, 'a'); INSERT OR IGNORE INTO t VALUES (1, 'b'); \
         INSERT OR REPLACE INTO t VALUES (1, 'c'); INSERT OR REPLACE INTO t VALUES (2, 'd');",
    )
    .unwrap();
    assert_eq!(
        events(&c),
        6,
        "four inserts, two of them over a row: two X events"
    );
    fold(&c).unwrap();
    let ops: Vec<(String, String)> = outbox(&c).into_iter().map(|e| (e.1, e.2)).collect();
    assert_eq!(ops, [("1".into(), "I".into()), ("2".into(), "U".into())]);
}

#[test]
fn folding_deletes_what_it_folded_and_a_write_transaction_folds_first() {
    let c = setup();
    c.execute_batch("INSERT INTO t VALUES (1, 'a'); INSERT INTO t VALUES (2, 'b');")
        .unwrap();
    assert_eq!((events(&c), outbox(&c).len()), (2, 0));
    assert_eq!(pending(&c).unwrap(), 2, "counted before they are folded");
    let seen = crate::store::write_tx(&c, |c| {
        c.query_row("SELECT count(*) FROM sync_tracking", [], |r| {
            r.get::<_, i64>(0)
        })
    })
    .unwrap();
    assert_eq!(
        seen, 2,
        "a write transaction's work sees every write as an entry"
    );
    assert_eq!(events(&c), 0);
    assert_eq!(fold(&c).unwrap(), 0);
}
