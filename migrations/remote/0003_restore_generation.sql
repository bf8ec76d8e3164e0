-- A remote restored from a backup on purpose, to roll data back (`sharecache accept-restore`),
-- gets a new generation: a client that finds a generation other than the one it recorded
-- takes the remote's content as authoritative (its newer versions go to the conflict log instead
-- of being pushed again). Empty until an admin declares a restore.
ALTER TABLE sharecache_meta ADD COLUMN generation TEXT NOT NULL DEFAULT '';
