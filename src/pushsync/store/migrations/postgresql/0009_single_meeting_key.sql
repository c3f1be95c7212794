-- A single meeting is keyed on its UID alone: its original_start is NULL, so moving it keeps
-- its key (an update, not a delete plus an insert). Until now a single's original_start was its
-- start. A primary key cannot hold a NULL, and a plain UNIQUE counts NULLs as distinct, so the
-- key is a unique index that reads NULL as one value (coalesce to -infinity), which the upsert
-- names.
ALTER TABLE reservation DROP CONSTRAINT reservation_pkey;
ALTER TABLE reservation ALTER COLUMN original_start DROP NOT NULL;
ALTER TABLE reservation_change ALTER COLUMN original_start DROP NOT NULL;

-- A follower keyed on the old keys learns of the new ones: each single's old key is deleted
-- and its new key upserted.
INSERT INTO reservation_change (changed_at, mailbox, uid, original_start, change)
SELECT now(), mailbox, uid, original_start, 'delete' FROM reservation WHERE item_type = 'single';
INSERT INTO reservation_change (changed_at, mailbox, uid, original_start, change)
SELECT DISTINCT now(), mailbox, uid, NULL::timestamptz, 'upsert'
FROM reservation WHERE item_type = 'single';

-- two singles of one UID (never both in a calendar at once): the later one stays
DELETE FROM reservation AS r
WHERE item_type = 'single' AND EXISTS (
    SELECT 1 FROM reservation AS o
    WHERE o.mailbox = r.mailbox AND o.uid = r.uid AND o.item_type = 'single'
      AND o.original_start > r.original_start);
UPDATE reservation SET original_start = NULL WHERE item_type = 'single';
CREATE UNIQUE INDEX reservation_key
    ON reservation (mailbox, uid, coalesce(original_start, '-infinity'::timestamptz));

-- Rows a Graph room stored were keyed on the beta-only `uid`, or on v1.0's per-occurrence
-- iCalUId: the room's next resync rewrites them under the series' key.
UPDATE room
SET needs_resync = TRUE, resync_reason = 'reservation key changed',
    resync_generation = resync_generation + 1
WHERE protocol = 'graph';
