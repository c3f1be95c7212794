-- Every write to the reservation table, in order, for the systems that follow it: a removed
-- meeting leaves no row behind in `reservation`, only its `delete` here.
CREATE TABLE reservation_change (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    changed_at      TIMESTAMPTZ NOT NULL,
    mailbox         TEXT NOT NULL,
    uid             TEXT NOT NULL,
    original_start  TIMESTAMPTZ NOT NULL,
    change          TEXT NOT NULL CHECK (change IN ('upsert', 'delete'))
);
CREATE INDEX reservation_change_at ON reservation_change (changed_at);
