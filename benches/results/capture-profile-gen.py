import sys
variant, phase, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
NOW = "CAST(round((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER)"
QUIET = "(SELECT applying FROM sync_state) = 0"
def key(p):
    if variant in ('old', 'new_json'):
        return f"json_array({p}.\"id\")"
    if variant in ('new_quote', 'journal'):
        return f"quote({p}.\"id\")"
    v = f'{p}."id"'
    whole = f"CAST({v} AS INTEGER)"
    frac = f"({v} - {whole}) * 4611686018427387904.0"
    return (f"CASE typeof({v}) WHEN 'real' THEN CASE WHEN abs({v}) < 9223372036854775808.0 AND {frac} = CAST({frac} AS INTEGER) "
            f"THEN 'F' || {whole} || ':' || CAST({frac} AS INTEGER) ELSE RAISE(ABORT, 'x') END ELSE quote({v}) END")
def ordx(p): return f"ifnull({p}.\"id\", '')"
out = ["PRAGMA journal_mode=WAL;", "PRAGMA synchronous=NORMAL;",
       "CREATE TABLE sync_state (id INTEGER PRIMARY KEY, hlc INTEGER, pull_rev INTEGER, applying INTEGER);",
       "INSERT INTO sync_state VALUES (1, 0, 0, 0);",
       "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);"]
JOURNAL = ("CREATE TABLE sync_journal (tbl TEXT NOT NULL, pk TEXT NOT NULL, op TEXT NOT NULL, "
           "stamp INTEGER NOT NULL, seen_rev INTEGER NOT NULL);")
if variant == 'old':
    out += ["CREATE TABLE sync_tracking (tbl TEXT NOT NULL, pk TEXT NOT NULL, op TEXT NOT NULL CHECK (op = 'I' OR op = 'U' OR op = 'D' OR op = 'X'), stamp INTEGER NOT NULL, seq INTEGER NOT NULL DEFAULT 1, seen_rev INTEGER NOT NULL, ord NOT NULL DEFAULT '', PRIMARY KEY (tbl, pk)) WITHOUT ROWID;",
            "CREATE INDEX sync_tracking_order ON sync_tracking (tbl, ord);"]
else:
    out += ["CREATE TABLE sync_tracking (tbl TEXT NOT NULL, pk TEXT NOT NULL, op TEXT NOT NULL CHECK (op = 'I' OR op = 'U' OR op = 'D' OR op = 'X'), stamp INTEGER NOT NULL, seq INTEGER NOT NULL DEFAULT 1, seen_rev INTEGER NOT NULL, ord NOT NULL DEFAULT '');",
            "CREATE UNIQUE INDEX sync_tracking_order ON sync_tracking (tbl, ord, pk);", JOURNAL]
def upsert(p, op, cond, conflict_op):
    k, o = key(p), ordx(p)
    if variant == 'old':
        return (f"INSERT INTO sync_tracking (tbl, pk, ord, op, stamp, seq, seen_rev) SELECT 't', {k}, {o}, {op}, hlc, 1, pull_rev FROM sync_state WHERE {cond} "
                f"ON CONFLICT (tbl, pk) DO UPDATE SET op = {conflict_op}, stamp = excluded.stamp, seq = seq + 1;")
    if variant == 'upsert_rowid':
        return (f"INSERT INTO sync_tracking (tbl, pk, ord, op, stamp, seq, seen_rev) SELECT 't', {k}, {o}, {op}, hlc, 1, pull_rev FROM sync_state WHERE {cond} "
                f"ON CONFLICT (tbl, ord, pk) DO UPDATE SET op = {conflict_op}, stamp = excluded.stamp, seq = seq + 1;")
    return (f"UPDATE sync_tracking SET op = {conflict_op}, stamp = (SELECT hlc FROM sync_state), seq = seq + 1 WHERE tbl = 't' AND ord = {o} AND pk = {k} AND {cond}; "
            f"INSERT INTO sync_tracking (tbl, pk, ord, op, stamp, seq, seen_rev) SELECT 't', {k}, {o}, {op}, hlc, 1, pull_rev FROM sync_state WHERE {cond} AND changes() = 0;")
tick = f"UPDATE sync_state SET hlc = max(hlc + 1, {NOW});"
keep = "CASE WHEN op = 'I' THEN 'I' ELSE 'U' END"
dele = "CASE WHEN op = 'I' THEN 'X' ELSE 'D' END"
def append(k, op, cond=''):
    return f"INSERT INTO sync_journal (tbl, pk, op, stamp, seen_rev) SELECT 't', {k}, {op}, hlc, pull_rev FROM sync_state{cond};"
changed = '(OLD."id" IS NOT NEW."id")'
if variant == 'journal':
    # As cache migration 9 installs them (src/store/capture.rs): one appended event per row.
    out.append(f"CREATE TRIGGER ai AFTER INSERT ON t WHEN {QUIET} BEGIN {tick} {append(key('NEW'), chr(39)+'I'+chr(39))} END;")
    out.append(f"CREATE TRIGGER au AFTER UPDATE ON t WHEN {QUIET} BEGIN {tick} {append(key('OLD'), chr(39)+'D'+chr(39), ' WHERE '+changed)} "
               f"{append(key('NEW'), 'CASE WHEN '+changed+' THEN '+chr(39)+'I'+chr(39)+' ELSE '+chr(39)+'U'+chr(39)+' END')} END;")
    out.append(f"CREATE TRIGGER ad AFTER DELETE ON t WHEN {QUIET} BEGIN {tick} {append(key('OLD'), chr(39)+'D'+chr(39))} END;")
elif variant != 'none':
    out.append(f"CREATE TRIGGER ai AFTER INSERT ON t WHEN {QUIET} BEGIN {tick} {upsert('NEW', chr(39)+'I'+chr(39), '1', keep)} END;")
    out.append(f"CREATE TRIGGER au AFTER UPDATE ON t WHEN {QUIET} BEGIN {tick} {upsert('NEW', chr(39)+'U'+chr(39), '1', keep)} END;")
    out.append(f"CREATE TRIGGER ad AFTER DELETE ON t WHEN {QUIET} BEGIN {tick} {upsert('OLD', chr(39)+'D'+chr(39), '1', dele)} END;")
# Pre-populate 8000 rows untracked (pending entries exist for 'hit' phases only when asked).
out.append("UPDATE sync_state SET applying = 1;")
out.append("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 8000) INSERT INTO t SELECT i, 'seed' FROM n;")
out.append("UPDATE sync_state SET applying = 0;")
out.append("BEGIN;")
if phase == 'insert': out.append(f"WITH RECURSIVE n(i) AS (SELECT 100001 UNION ALL SELECT i+1 FROM n WHERE i < {100000+n}) INSERT INTO t SELECT i, 'v' || i FROM n;")
elif phase == 'update': out.append(f"UPDATE t SET v = 'u' || id WHERE id <= {n};")
elif phase == 'update2':
    out.append(f"UPDATE t SET v = 'u' || id WHERE id <= {n};"); out.append(f"UPDATE t SET v = 'w' || id WHERE id <= {n};")
elif phase == 'delete': out.append(f"DELETE FROM t WHERE id <= {n};")
out.append("COMMIT;")
print("\n".join(out))
