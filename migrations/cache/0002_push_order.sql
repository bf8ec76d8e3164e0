-- Push pending changes in the order of the rows' keys on the remote, not in the order of their
-- JSON text: `[1]`, `[2]`, ..., `[10]` rather than `[1]`, `[10]`, `[100]`, `[2]`. Integer keys
-- sort by length first, then text, which is their numeric order; a 500-row batch then touches
-- neighbouring leaves of the remote table instead of leaves all over it.
ALTER TABLE sync_tracking ADD COLUMN pk_len INTEGER GENERATED ALWAYS AS (length(pk)) VIRTUAL;
CREATE INDEX sync_tracking_push_order ON sync_tracking (tbl, pk_len, pk) WHERE op != 'X';
