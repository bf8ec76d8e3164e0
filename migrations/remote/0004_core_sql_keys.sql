-- Keys in core SQL (README, Known limits: the floor). Other programs keep writing the remote with
-- their own SQLite, as old as 3.7.17 or without JSON functions; the change-log triggers on their
-- tables must call only functions such a SQLite has. Key text is no longer the JSON array
-- `json_array()` built but the key's values as `quote()` writes them, joined by `,`
-- (src/sql/mod.rs). The log and the conflict log are converted by sharecache_rekey(), the Rust
-- conversion, registered by the migration runner; the remote reinstalls the change-log triggers
-- in the same transaction (they differ from the installed ones).
UPDATE sharecache_log SET pk = sharecache_rekey(pk);
UPDATE sharecache_conflicts SET pk = sharecache_rekey(pk);

-- Clients of the previous release do not check the remote's version when they sync an existing
-- cache: they would go on appending JSON keys, which no client could match any more. Their push
-- fails instead, with a message; their writes stay pending in their cache until that computer
-- runs this sharecache, whose cache migration converts them.
CREATE TRIGGER sharecache_log_key_format BEFORE INSERT ON sharecache_log
WHEN substr(NEW.pk, 1, 1) = '['
BEGIN
    SELECT RAISE(ABORT, 'sharecache: this remote was upgraded by a newer sharecache (keys are no longer JSON); upgrade sharecache on this computer, its pending writes are kept');
END;
