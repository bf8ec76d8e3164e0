-- Every entry a sharecache write logs carries the random id that write drew (src/remote/types.rs,
-- EntryId, says why: after a second restore of one backup a reconcile may log a version again at
-- the very revision, stamp and origin it had in the history a first reconcile wrote, and a
-- cache's trail mark must tell the two entries apart). The write sets it, transaction-local, in
-- the call that numbers its entries (sharecache.finish_write); the column's default reads it, so
-- entries the capture triggers log (direct writes, other sessions) get NULL.
ALTER TABLE sharecache.log ADD COLUMN write_id bigint
    DEFAULT nullif(current_setting('sharecache.write_id', true), '')::bigint;

-- sharecache.finish, with the write's id set first (same round trip).
CREATE FUNCTION sharecache.finish_write(p_write bigint,
    k_tbl text[], k_pk text[], k_seen bigint[],
    p_tbl text[], p_pk text[], p_stamp text[], p_origin text[], p_deleted boolean[],
    p_image bytea[], p_newest text,
    c_tbl text[], c_pk text[], c_winner_stamp text[], c_winner_origin text[], c_loser_stamp text[],
    c_loser_origin text[], c_loser_op text[], c_loser_row text[], c_decided_at text[],
    c_decided_by text[], c_reason text[],
    OUT before bigint, OUT last bigint)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM set_config('sharecache.write_id', p_write::text, true);
    SELECT f.before, f.last INTO before, last FROM sharecache.finish(k_tbl, k_pk, k_seen,
        p_tbl, p_pk, p_stamp, p_origin, p_deleted, p_image, p_newest,
        c_tbl, c_pk, c_winner_stamp, c_winner_origin, c_loser_stamp, c_loser_origin, c_loser_op,
        c_loser_row, c_decided_at, c_decided_by, c_reason) f;
END
$$;

-- The fingerprint names the entry at the mark's revision by its write too.
DROP FUNCTION sharecache.fingerprint(text, bigint);
CREATE FUNCTION sharecache.fingerprint(p_schema text, p_mark_rev bigint,
    OUT rev bigint, OUT schema_hash bigint, OUT conflicts bigint, OUT pruned_rev bigint,
    OUT generation text, OUT remote_id text, OUT mark_stamp text, OUT mark_origin text,
    OUT mark_write bigint)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    rev := sharecache.head();
    schema_hash := sharecache.schema_hash(p_schema);
    SELECT coalesce(max(id), 0) INTO conflicts FROM sharecache.conflicts;
    SELECT m.pruned_rev, m.generation, m.remote_id INTO pruned_rev, generation, remote_id
        FROM sharecache.meta m WHERE id = 1;
    SELECT l.stamp, l.origin, l.write_id INTO mark_stamp, mark_origin, mark_write
        FROM sharecache.log l WHERE l.rev = p_mark_rev;
END
$$;
