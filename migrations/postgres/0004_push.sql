-- A push in four round trips (issue 16's push goal): BEGIN; the row locks and the batch's
-- versions in one statement (sharecache.versions, called after the locks); the row writes and
-- the end in one statement (sharecache.finish, called after the writes); the registry and
-- COMMIT. And a cheaper end: 0002's race check probed the log once per key of the batch (9 ms
-- of 36 for 5,000 keys); this one reads only the entries that can have raced (see below).

-- The versions of a batch's keys, read after its rows were locked (p_locked: the count of
-- locked rows, an argument only so that the locks are taken before this runs). VOLATILE, so
-- each query here takes its own snapshot, after the locks were granted: a writer the locks
-- waited for has committed and is seen. Returns first the head row (tbl NULL): in `rev` the
-- threshold of the race check (the log's head, read before the versions, or p_after if lower),
-- in `stamp` and `id` how far the log was pruned (pruned_hlc, pruned_rev); then every entry of
-- the keys above the threshold and every unnumbered one (rev NULL), in no particular order.
CREATE FUNCTION sharecache.versions(k_tbl text[], k_pk text[], p_after bigint, p_locked bigint)
RETURNS TABLE (tbl text, pk text, rev bigint, stamp text, origin text, deleted boolean, id bigint,
               write_id bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    head bigint := least(sharecache.top(), p_after);
BEGIN
    RETURN QUERY SELECT NULL::text, NULL::text, head, m.pruned_hlc::text, NULL::text,
        NULL::boolean, m.pruned_rev, NULL::bigint FROM sharecache.meta m WHERE m.id = 1;
    -- Planned with the values (EXECUTE): a cursor near the head reads a short range of revs,
    -- one far behind probes the log once per key.
    RETURN QUERY EXECUTE
        'SELECT l.tbl::text, l.pk::text, l.rev, l.stamp::text, l.origin, l.deleted, l.id, l.write_id '
        'FROM sharecache.log l JOIN unnest($1::text[], $2::text[]) AS k(t, p) '
        'ON l.tbl = k.t AND l.pk = k.p WHERE l.rev > $3 '
        'UNION ALL '
        'SELECT l.tbl::text, l.pk::text, l.rev, l.stamp::text, l.origin, l.deleted, l.id, l.write_id '
        'FROM sharecache.log l JOIN unnest($1::text[], $2::text[]) AS k(t, p) '
        'ON l.tbl = k.t AND l.pk = k.p WHERE l.rev IS NULL'
        USING k_tbl, k_pk, head;
END
$$;

-- 0002's end of a write (0003's sharecache.finish_write: p_write is the write's id, set on each
-- entry it logs), with a race check that reads only what can have raced. k_seen: per key,
-- the highest id among the entries sharecache.versions returned for it (0: none); k_head: its
-- threshold. An entry the push did not see committed after its versions were read: it is
-- unnumbered now, or numbered since, above every revision then visible (numbering is serialised
-- and takes the top), so above k_head; and its id is above every id the push saw for its key
-- (writers of one key are serialised by its row or unique index, so a key's ids grow in commit
-- order). Every entry the push saw that is unnumbered or above k_head now was returned to it,
-- so its id is at most k_seen. The candidates (entries above k_head or unnumbered: the few
-- written since the read) are read by index and joined to the keys, instead of probing the log
-- once per key. p_written: the rows the same statement wrote, an argument only so that the
-- writes are done before this runs (and before the meta row is locked).
DROP FUNCTION sharecache.finish_write(bigint, text[], text[], bigint[], text[], text[], text[],
    text[], boolean[], bytea[], text, text[], text[], text[], text[], text[], text[], text[],
    text[], text[], text[], text[]);
DROP FUNCTION sharecache.finish(text[], text[], bigint[], text[], text[], text[], text[],
    boolean[], bytea[], text, text[], text[], text[], text[], text[], text[], text[], text[],
    text[], text[], text[]);
CREATE FUNCTION sharecache.finish(
    k_tbl text[], k_pk text[], k_seen bigint[], k_head bigint,
    p_tbl text[], p_pk text[], p_stamp text[], p_origin text[], p_deleted boolean[],
    p_image bytea[], p_newest text,
    c_tbl text[], c_pk text[], c_winner_stamp text[], c_winner_origin text[], c_loser_stamp text[],
    c_loser_origin text[], c_loser_op text[], c_loser_row text[], c_decided_at text[],
    c_decided_by text[], c_reason text[], p_written bigint, p_write bigint,
    OUT before bigint, OUT last bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n bigint := coalesce(cardinality(p_tbl), 0);
    top bigint;
    raced boolean;
BEGIN
    PERFORM 1 FROM sharecache.meta WHERE id = 1 FOR UPDATE;
    IF coalesce(cardinality(k_tbl), 0) > 0 THEN
        EXECUTE
            'SELECT EXISTS (SELECT 1 FROM (SELECT l.tbl, l.pk, l.id FROM sharecache.log l '
            'WHERE l.rev > $4 UNION ALL SELECT l.tbl, l.pk, l.id FROM sharecache.log l '
            'WHERE l.rev IS NULL) c JOIN unnest($1::text[], $2::text[], $3::bigint[]) '
            'AS k(t, p, seen) ON c.tbl = k.t AND c.pk = k.p WHERE c.id > k.seen)'
            INTO raced USING k_tbl, k_pk, k_seen, k_head;
        IF raced THEN
            RAISE EXCEPTION 'a concurrent write changed a row of this push after it was read'
                USING ERRCODE = 'serialization_failure';
        END IF;
    END IF;
    before := sharecache.top();
    WITH todo AS (
        SELECT l.id, row_number() OVER (ORDER BY l.id) AS k
        FROM sharecache.log l WHERE l.rev IS NULL
    )
    UPDATE sharecache.log l SET rev = before + todo.k FROM todo WHERE l.id = todo.id;
    GET DIAGNOSTICS top = ROW_COUNT;
    before := before + top;
    INSERT INTO sharecache.log (rev, tbl, pk, stamp, origin, deleted, image, write_id)
        SELECT before + o, t, p, s, g, d, i, p_write
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

-- 0002's schema hash, covering also what a cache mirrors of a column besides its name, type and
-- key (NOT NULL, the default): a client keeps what it read of the schema while the hash it
-- fingerprints stays the same, and reads it again only when it changes.
CREATE OR REPLACE FUNCTION sharecache.schema_hash(p_schema text) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT ('x' || substr(md5(coalesce(string_agg(
               c.relname || '.' || a.attname || ':' || a.atttypid || ':' || a.atttypmod || ':' ||
               coalesce(array_position(i.indkey::int2[], a.attnum), 0) || ':' || a.attnotnull ||
               ':' || coalesce(pg_get_expr(d.adbin, d.adrelid), ''),
               ',' ORDER BY c.relname, a.attnum), '') ||
               (SELECT user_version || ':' || application_id FROM sharecache.meta WHERE id = 1)),
               1, 15))::bit(60)::bigint
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
    LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
    WHERE n.nspname = p_schema AND c.relkind IN ('r', 'p', 'v')
$$;

-- A pull's page of the log in one round trip (it was three: the head, the pruning point, the
-- page): numbers what committed unnumbered (sharecache.head), then returns first the head row
-- (tbl NULL: `rev` the head, `pruned` how far the log was pruned), then, unless p_cursor is below
-- the pruned part, up to p_limit entries after p_cursor up to the head, in revision order. Each
-- query here takes its own snapshot (VOLATILE): the page sees the numbering just done.
CREATE FUNCTION sharecache.changes(p_cursor bigint, p_limit bigint)
RETURNS TABLE (rev bigint, tbl text, pk text, stamp text, origin text, deleted boolean,
               image bytea, pruned bigint, write_id bigint)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    head bigint := sharecache.head();
    pruned_to bigint;
BEGIN
    SELECT m.pruned_rev INTO pruned_to FROM sharecache.meta m WHERE m.id = 1;
    RETURN QUERY SELECT head, NULL::text, NULL::text, NULL::text, NULL::text, NULL::boolean,
        NULL::bytea, pruned_to, NULL::bigint;
    IF p_cursor >= pruned_to THEN
        RETURN QUERY SELECT l.rev, l.tbl::text, l.pk::text, l.stamp::text, l.origin, l.deleted,
            l.image, NULL::bigint, l.write_id
            FROM sharecache.log l WHERE l.rev > p_cursor AND l.rev <= head
            ORDER BY l.rev LIMIT p_limit;
    END IF;
END
$$;
