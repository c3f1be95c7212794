-- Each long-running process (receiver, worker, subscription manager) has a row it beats on a
-- timer: a row whose last beat is old belongs to a process that is gone (killed, hung, its host
-- down), one with stopped_at exited cleanly. One row per process and protocol; a restarted
-- process gets a new row.
CREATE TABLE process_heartbeat (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('receiver', 'worker', 'manager')),
    protocol    TEXT CHECK (protocol IN ('ews', 'graph')),
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    last_beat   TIMESTAMPTZ NOT NULL,
    stopped_at  TIMESTAMPTZ
);
CREATE INDEX process_heartbeat_last_beat ON process_heartbeat (last_beat);
