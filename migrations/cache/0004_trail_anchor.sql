-- The newest change-log entry this cache has seen or written (its revision, stamp and origin):
-- every sync checks that the remote still holds it. A remote restored from a backup, or any
-- older copy put at its path, has lost it (or holds another entry at that revision), even when
-- other clients have pushed past the old revision since: the change log went back in time and
-- the cache reconciles with it by key (src/sync/trail.rs). anchor_rev 0: nothing known yet.
ALTER TABLE sync_state ADD COLUMN anchor_rev INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_state ADD COLUMN anchor_stamp TEXT NOT NULL DEFAULT '';
ALTER TABLE sync_state ADD COLUMN anchor_origin TEXT NOT NULL DEFAULT '';
-- The remote's generation (sharecache_meta.generation) when this cache last followed it; NULL
-- until known. A new generation is an admin's declaration that the remote's content is
-- authoritative (`sharecache accept-restore`).
ALTER TABLE sync_state ADD COLUMN generation TEXT;
-- What a run of a special kind did and why (a reconcile: the reason and what it moved).
ALTER TABLE sync_metadata ADD COLUMN note TEXT;
