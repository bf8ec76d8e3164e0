-- sharecache's own tables on a PostgreSQL remote, in their own schema (the app's tables stay in
-- database.schema). Versioned in sharecache.migrations. Mirrors migrations/remote/ (the share's
-- sharecache_* tables), with one difference: a change gets its rev when it becomes visible, not
-- when it is written (see sharecache.sequence below and src/remote/postgres/log.rs).

CREATE TABLE sharecache.meta (
    id         integer PRIMARY KEY CHECK (id = 1),
    remote_id  text    NOT NULL,           -- caches record it and refuse any other server
    pruned_rev bigint  NOT NULL DEFAULT 0, -- entries at or below this rev were pruned
    pruned_hlc text    NOT NULL DEFAULT '',-- the newest stamp among them
    created_at text    NOT NULL
);

-- The change log, append-only: one entry per change. `id` is the order of writing, which is not
-- the order of commit; `rev` is NULL until sharecache.sequence() numbers the entry, which it does
-- only once the entry's transaction has committed, so revs become visible in order.
CREATE TABLE sharecache.log (
    id      bigserial PRIMARY KEY,
    rev     bigint  UNIQUE,
    tbl     text    COLLATE "C" NOT NULL,
    pk      text    COLLATE "C" NOT NULL,  -- key text as src/sql encode_key writes it
    stamp   text    COLLATE "C" NOT NULL,  -- HLC stamp, src/clock.rs (compared bytewise)
    origin  text    NOT NULL,              -- a client's origin, or 'direct'
    deleted boolean NOT NULL DEFAULT false,
    image   bytea                          -- the row as pushed (src/remote/image.rs), or NULL
);
CREATE INDEX log_unsequenced ON sharecache.log (id) WHERE rev IS NULL;
CREATE INDEX log_row ON sharecache.log (tbl, pk, id);

-- Known clients and how far each has pulled (for pruning).
CREATE TABLE sharecache.clients (
    origin     text   PRIMARY KEY,
    pulled_rev bigint NOT NULL,
    last_seen  text   NOT NULL,
    host       text
);

-- Every losing version of a conflict, kept.
CREATE TABLE sharecache.conflicts (
    id            bigserial PRIMARY KEY,
    tbl           text NOT NULL,
    pk            text NOT NULL,
    winner_stamp  text NOT NULL,
    winner_origin text NOT NULL,
    loser_stamp   text NOT NULL,
    loser_origin  text NOT NULL,
    loser_op      text NOT NULL,
    loser_row     text,
    decided_at    text NOT NULL,
    decided_by    text NOT NULL,
    reason        text NOT NULL
);

-- Numbers every committed, unnumbered entry after the highest rev, in write order, and returns
-- the head rev. One caller at a time: the meta row's lock serialises callers, and is held only
-- for this short statement's transaction, never by a writer. Must run in READ COMMITTED, outside
-- any other transaction, so that its UPDATE's snapshot is taken after the lock is granted and
-- sees the previous caller's numbers (checked).
CREATE FUNCTION sharecache.sequence() RETURNS bigint
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
    SELECT coalesce(max(rev), (SELECT pruned_rev FROM sharecache.meta WHERE id = 1))
        INTO head FROM sharecache.log;
    WITH todo AS (
        SELECT id, row_number() OVER (ORDER BY id) AS n
        FROM sharecache.log WHERE rev IS NULL
    )
    UPDATE sharecache.log l SET rev = head + todo.n FROM todo WHERE l.id = todo.id;
    GET DIAGNOSTICS numbered = ROW_COUNT;
    RETURN head + numbered;
END
$$;

-- Whether the current transaction is a sharecache push: its triggers then stay silent (the push
-- logs its own entries, with images). A transaction-local setting, invisible to other sessions.
CREATE FUNCTION sharecache.quiet() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('sharecache.writer', true), '') <> ''
$$;

-- The stamp of a direct write to one row: the server's clock, but never before the newest stamp
-- logged for that row (a client's clock running ahead must not make a later direct edit lose).
-- Per row, not a global newest stamp: a global one would be a row every writer updates.
CREATE FUNCTION sharecache.direct_stamp(p_tbl text, p_pk text) RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT greatest(
        to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') COLLATE "C",
        (SELECT stamp FROM sharecache.log WHERE tbl = p_tbl AND pk = p_pk ORDER BY id DESC LIMIT 1)
    )
$$;
