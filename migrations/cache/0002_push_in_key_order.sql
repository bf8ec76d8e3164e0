-- The outbox is read in each table's key order, not in the order of the key text ('[1]', '[10]',
-- '[100]', ...): 500 consecutive pending rows then land on neighbouring pages of the remote
-- table, so each remote transaction journals and writes fewer pages (BENCHMARKS.md, Peak memory).
-- `ord` is the value of the row's first key column (what the table's own key index sorts by
-- first), set by the capture triggers. Only the order depends on it, never which row an entry is.
ALTER TABLE sync_tracking ADD COLUMN ord NOT NULL DEFAULT '';
UPDATE sync_tracking SET ord = CASE json_type(pk, '$[0]')
    WHEN 'object' THEN unhex(json_extract(pk, '$[0]."$blob"'))
    WHEN 'null' THEN ''
    ELSE json_extract(pk, '$[0]') END;
CREATE INDEX sync_tracking_order ON sync_tracking (tbl, ord);
