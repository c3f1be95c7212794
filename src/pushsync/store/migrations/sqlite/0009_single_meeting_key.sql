-- A single meeting is keyed on its UID alone: its original_start is NULL, so moving it keeps
-- its key (an update, not a delete plus an insert). Until now a single's original_start was its
-- start. The primary key cannot hold a NULL, so the key is a unique index that reads NULL as one
-- value (coalesce to ''), which the upsert names; SQLite cannot drop a NOT NULL or a primary
-- key in place, so both tables are rebuilt (renamed away, created anew, copied).
ALTER TABLE reservation RENAME TO reservation_old;
ALTER TABLE reservation_change RENAME TO reservation_change_old;
DROP INDEX reservation_item;
DROP INDEX reservation_series;
DROP INDEX reservation_change_at;

CREATE TABLE reservation (
    mailbox           TEXT NOT NULL,
    uid               TEXT NOT NULL,
    original_start    TIMESTAMP,
    item_id           TEXT NOT NULL,
    series_master_id  TEXT,
    item_type         TEXT NOT NULL,
    subject           TEXT NOT NULL DEFAULT '',
    organizer         TEXT NOT NULL DEFAULT '',
    start_at          TIMESTAMP NOT NULL,
    end_at            TIMESTAMP NOT NULL,
    time_zone         TEXT,
    is_all_day        BOOLEAN NOT NULL DEFAULT FALSE,
    location          TEXT NOT NULL DEFAULT '',
    sensitivity       TEXT NOT NULL DEFAULT 'normal',
    response_state    TEXT NOT NULL,
    is_cancelled      BOOLEAN NOT NULL DEFAULT FALSE,
    change_key        TEXT,
    last_modified     TIMESTAMP,
    last_synced_at    TIMESTAMP NOT NULL
);
INSERT INTO reservation
SELECT mailbox, uid, CASE WHEN item_type = 'single' THEN NULL ELSE original_start END,
       item_id, series_master_id, item_type, subject, organizer, start_at, end_at, time_zone,
       is_all_day, location, sensitivity, response_state, is_cancelled, change_key,
       last_modified, last_synced_at
FROM reservation_old AS r
-- two singles of one UID (never both in a calendar at once): the later one stays
WHERE NOT (item_type = 'single' AND EXISTS (
    SELECT 1 FROM reservation_old AS o
    WHERE o.mailbox = r.mailbox AND o.uid = r.uid AND o.item_type = 'single'
      AND o.original_start > r.original_start));

CREATE TABLE reservation_change (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    changed_at      TIMESTAMP NOT NULL,
    mailbox         TEXT NOT NULL,
    uid             TEXT NOT NULL,
    original_start  TIMESTAMP,
    change          TEXT NOT NULL CHECK (change IN ('upsert', 'delete'))
);
INSERT INTO reservation_change (id, changed_at, mailbox, uid, original_start, change)
SELECT id, changed_at, mailbox, uid, original_start, change FROM reservation_change_old;
-- A follower keyed on the old keys learns of the new ones: each single's old key is deleted
-- and its new key upserted.
INSERT INTO reservation_change (changed_at, mailbox, uid, original_start, change)
SELECT strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'), mailbox, uid, original_start, 'delete'
FROM reservation_old WHERE item_type = 'single';
INSERT INTO reservation_change (changed_at, mailbox, uid, original_start, change)
SELECT DISTINCT strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'), mailbox, uid, NULL, 'upsert'
FROM reservation_old WHERE item_type = 'single';

DROP TABLE reservation_old;
DROP TABLE reservation_change_old;
CREATE UNIQUE INDEX reservation_key ON reservation (mailbox, uid, coalesce(original_start, ''));
CREATE INDEX reservation_item ON reservation (mailbox, item_id);
CREATE INDEX reservation_series ON reservation (mailbox, series_master_id);
CREATE INDEX reservation_change_at ON reservation_change (changed_at);

-- Rows a Graph room stored were keyed on the beta-only `uid`, or on v1.0's per-occurrence
-- iCalUId: the room's next resync rewrites them under the series' key.
UPDATE room
SET needs_resync = TRUE, resync_reason = 'reservation key changed',
    resync_generation = resync_generation + 1
WHERE protocol = 'graph';
