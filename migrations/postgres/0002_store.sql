-- What the remote-store interface needs beyond 0001 (issue 16): the remote's clock, its
-- generation, the app's schema versions, conflict records numbered in commit order, a push's
-- entries numbered at its end (and refused there when a concurrent write overtook it), and the
-- idle fingerprint in one call.

ALTER TABLE sharecache.meta
    ADD COLUMN hlc             text   COLLATE "C" NOT NULL DEFAULT '', -- at or after every logged stamp
    ADD COLUMN generation      text   NOT NULL DEFAULT '',             -- new when declared authoritative
    ADD COLUMN user_version    bigint NOT NULL DEFAULT 0,              -- the app's schema version, as
    ADD COLUMN application_id  bigint NOT NULL DEFAULT 0,              -- a cache carries it (SQLite pragmas)
    ADD COLUMN rev_floor       bigint NOT NULL DEFAULT 0;              -- revisions handed out stay above it
UPDATE sharecache.meta SET generation = remote_id WHERE generation = '';

-- The log's head: its highest revision, or how far it was pruned, or the floor a reconcile set
-- after a restore (an empty stretch a pull steps over), whichever is highest.
CREATE FUNCTION sharecache.top() RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT greatest((SELECT max(rev) FROM sharecache.log), m.pruned_rev, m.rev_floor)
    FROM sharecache.meta m WHERE m.id = 1
$$;

-- 0001's numbering, above the floor too.
CREATE OR REPLACE FUNCTION sharecache.sequence() RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    head bigint;
    numbered bigint;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'sharecache.sequence() needs READ COMMITTED, not %',
            current_setting('transaction_isolation');
    END IF;
    PERFORM 1 FROM sharecache.meta WHERE id = 1 FOR UPDATE;
    head := sharecache.top();
    WITH todo AS (
        SELECT id, row_number() OVER (ORDER BY id) AS n
        FROM sharecache.log WHERE rev IS NULL
    )
    UPDATE sharecache.log l SET rev = head + todo.n FROM todo WHERE l.id = todo.id;
    GET DIAGNOSTICS numbered = ROW_COUNT;
    RETURN head + numbered;
END
$$;

-- Conflict records get their id when their write ends, under the meta row's lock (like a
-- push's revisions): a reader that has seen id n never finds a smaller id appear later.
ALTER TABLE sharecache.conflicts ALTER COLUMN id DROP DEFAULT;
DROP SEQUENCE IF EXISTS sharecache.conflicts_id_seq;

-- The end of a push (or of any sharecache write): under the meta row's lock, first checks that
-- no entry of the batch's keys committed since the push read them (k_seen: the newest entry id
-- it saw per key; a row it could not lock, because it did not exist yet, may have been written
-- meanwhile, and the push then overwrote a version it never decided against) and fails with
-- serialization_failure if one did, so the push runs again and decides against it. (Writers
-- of one key are serialised by its row or its unique index, so its entries' ids grow in commit
-- order; pruning removes only old ones.) Then
-- numbers the log entries other writers committed unnumbered (direct writes), the push's own
-- entries consecutively above them, and its conflict records; moves the clock past p_newest.
-- The lock is held from here to the push's COMMIT, a round trip: revisions and conflict ids
-- become visible in order. Returns the revision before the push's entries and the last one.
CREATE FUNCTION sharecache.finish(
    k_tbl text[], k_pk text[], k_seen bigint[],
    p_tbl text[], p_pk text[], p_stamp text[], p_origin text[], p_deleted boolean[],
    p_image bytea[], p_newest text,
    c_tbl text[], c_pk text[], c_winner_stamp text[], c_winner_origin text[], c_loser_stamp text[],
    c_loser_origin text[], c_loser_op text[], c_loser_row text[], c_decided_at text[],
    c_decided_by text[], c_reason text[],
    OUT before bigint, OUT last bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n bigint := coalesce(cardinality(p_tbl), 0);
    top bigint;
BEGIN
    PERFORM 1 FROM sharecache.meta WHERE id = 1 FOR UPDATE;
    IF EXISTS (
        SELECT 1 FROM unnest(k_tbl, k_pk, k_seen) AS k(t, p, seen)
        WHERE EXISTS (SELECT 1 FROM sharecache.log l WHERE l.tbl = k.t AND l.pk = k.p AND l.id > k.seen)
    ) THEN
        RAISE EXCEPTION 'a concurrent write changed a row of this push after it was read'
            USING ERRCODE = 'serialization_failure';
    END IF;
    before := sharecache.top();
    WITH todo AS (
        SELECT id, row_number() OVER (ORDER BY id) AS k
        FROM sharecache.log WHERE rev IS NULL
    )
    UPDATE sharecache.log l SET rev = before + todo.k FROM todo WHERE l.id = todo.id;
    GET DIAGNOSTICS top = ROW_COUNT;
    before := before + top;
    INSERT INTO sharecache.log (rev, tbl, pk, stamp, origin, deleted, image)
        SELECT before + o, t, p, s, g, d, i
        FROM unnest(p_tbl, p_pk, p_stamp, p_origin, p_deleted, p_image)
             WITH ORDINALITY AS u(t, p, s, g, d, i, o);
    last := before + n;
    IF coalesce(cardinality(c_tbl), 0) > 0 THEN
        SELECT coalesce(max(id), 0) INTO top FROM sharecache.conflicts;
        INSERT INTO sharecache.conflicts (id, tbl, pk, winner_stamp, winner_origin, loser_stamp,
                loser_origin, loser_op, loser_row, decided_at, decided_by, reason)
            SELECT top + o, a, b, c, d, e, f, g, h, i, j, k
            FROM unnest(c_tbl, c_pk, c_winner_stamp, c_winner_origin, c_loser_stamp,
                        c_loser_origin, c_loser_op, c_loser_row, c_decided_at, c_decided_by,
                        c_reason) WITH ORDINALITY AS u(a, b, c, d, e, f, g, h, i, j, k, o);
    END IF;
    UPDATE sharecache.meta SET hlc = greatest(hlc, p_newest COLLATE "C") WHERE id = 1;
END
$$;

-- The head of the log, numbering unnumbered entries first only when there are some (an idle
-- remote takes no lock).
CREATE FUNCTION sharecache.head() RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM sharecache.log WHERE rev IS NULL) THEN
        RETURN sharecache.sequence();
    END IF;
    RETURN sharecache.top();
END
$$;

-- A hash of the app's schema (tables, columns, types, keys) and the app's schema versions:
-- changes with any change a cache would mirror.
CREATE FUNCTION sharecache.schema_hash(p_schema text) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT ('x' || substr(md5(coalesce(string_agg(
               c.relname || '.' || a.attname || ':' || a.atttypid || ':' || a.atttypmod || ':' ||
               coalesce(array_position(i.indkey::int2[], a.attnum), 0),
               ',' ORDER BY c.relname, a.attnum), '') ||
               (SELECT user_version || ':' || application_id FROM sharecache.meta WHERE id = 1)),
               1, 15))::bit(60)::bigint
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
    WHERE n.nspname = p_schema AND c.relkind IN ('r', 'p', 'v')
$$;

-- Everything an idle sync compares, in one round trip.
CREATE FUNCTION sharecache.fingerprint(p_schema text, p_mark_rev bigint,
    OUT rev bigint, OUT schema_hash bigint, OUT conflicts bigint, OUT pruned_rev bigint,
    OUT generation text, OUT remote_id text, OUT mark_stamp text, OUT mark_origin text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    rev := sharecache.head();
    schema_hash := sharecache.schema_hash(p_schema);
    SELECT coalesce(max(id), 0) INTO conflicts FROM sharecache.conflicts;
    SELECT m.pruned_rev, m.generation, m.remote_id INTO pruned_rev, generation, remote_id
        FROM sharecache.meta m WHERE id = 1;
    SELECT l.stamp, l.origin INTO mark_stamp, mark_origin FROM sharecache.log l
        WHERE l.rev = p_mark_rev;
END
$$;
