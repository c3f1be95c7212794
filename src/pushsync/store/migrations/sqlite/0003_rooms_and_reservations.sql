-- Rooms (what the subscription manager keeps subscribed and the worker keeps in sync), more
-- subscription bookkeeping, and the reservation table the worker writes.
CREATE TABLE room (
    mailbox          TEXT PRIMARY KEY,
    protocol         TEXT NOT NULL DEFAULT 'ews' CHECK (protocol IN ('ews', 'graph')),
    needs_resync     BOOLEAN NOT NULL DEFAULT TRUE,
    resync_reason    TEXT DEFAULT 'new room',
    sync_state       TEXT,
    last_synced_at   TIMESTAMP,
    last_error       TEXT,
    last_error_at    TIMESTAMP,
    created_at       TIMESTAMP NOT NULL
);

ALTER TABLE subscription ADD COLUMN expires_at TIMESTAMP;
ALTER TABLE subscription ADD COLUMN replaced_by TEXT;
-- the watermark Subscribe returned: a PreviousWatermark equal to it skipped nothing
ALTER TABLE subscription ADD COLUMN start_watermark TEXT;
CREATE INDEX subscription_state ON subscription (state, mailbox);

CREATE TABLE reservation (
    mailbox           TEXT NOT NULL,
    uid               TEXT NOT NULL,
    original_start    TIMESTAMP NOT NULL,
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
    last_synced_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (mailbox, uid, original_start)
);

CREATE INDEX reservation_item ON reservation (mailbox, item_id);
CREATE INDEX reservation_series ON reservation (mailbox, series_master_id);
