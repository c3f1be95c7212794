-- A room moved between protocols by `pushsync rooms migrate` keeps the protocol it was moved to
-- (protocol_override) whatever the settings say; the move's steps are recorded in
-- room_migration, so a restart carries it on where it stopped. A Graph room whose subscription
-- Graph refuses (on-premises mailbox, access policy, the 1,000 cap) is polled: poll_reason says
-- why (poll_detail: in the protocol's words), poll_since since when; all are cleared once a subscription is created.
ALTER TABLE room ADD COLUMN protocol_override TEXT CHECK (protocol_override IN ('ews', 'graph'));
ALTER TABLE room ADD COLUMN poll_reason TEXT;
ALTER TABLE room ADD COLUMN poll_detail TEXT;
ALTER TABLE room ADD COLUMN poll_since TIMESTAMP;

CREATE TABLE room_migration (
    mailbox       TEXT PRIMARY KEY,
    source        TEXT NOT NULL CHECK (source IN ('ews', 'graph')),
    target        TEXT NOT NULL CHECK (target IN ('ews', 'graph')),
    state         TEXT NOT NULL
                  CHECK (state IN ('requested', 'subscribed', 'resynced', 'retired')),
    requested_at  TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL,
    last_error    TEXT
);
