-- What each outbox entry was queued for (true: a pin, false: an unpin; NULL: queued
-- before this migration), and whether a pass has called the store for its key.
-- Applying an entry still sets the object to what `pins` says; these two columns only
-- let a pass prove the store never saw a pin (the key's oldest entry is a pin and no
-- pass has tried it), so a pin withdrawn before it was applied costs no request.
ALTER TABLE pin_outbox ADD COLUMN pinned boolean;
ALTER TABLE pin_outbox ADD COLUMN tried boolean NOT NULL DEFAULT false;
CREATE INDEX pin_outbox_by_key ON pin_outbox (object_key, id);
