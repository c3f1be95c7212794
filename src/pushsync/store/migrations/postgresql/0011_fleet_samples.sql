-- The status page's history (src/pushsync/admin/status_page.py): each worker process writes one
-- row a minute of what it did and saw (`fleet_sample`), and notes since when each room has been
-- out of sync (`room_out_of_sync`). Rows older than two days are deleted by the worker.
CREATE TABLE fleet_sample (
    minute_at          TIMESTAMPTZ NOT NULL,  -- the start of the minute (UTC)
    process            TEXT NOT NULL,       -- host:pid of the worker that wrote it
    received           INTEGER NOT NULL DEFAULT 0,  -- notification rows that arrived (fleet)
    worked             INTEGER NOT NULL DEFAULT 0,  -- rows this worker worked off
    lag_p50_seconds    DOUBLE PRECISION,    -- received -> applied, of the rows it applied
    lag_p99_seconds    DOUBLE PRECISION,
    rooms_out_of_sync  INTEGER,             -- of the whole fleet, at the end of the minute
    calls              INTEGER NOT NULL DEFAULT 0,  -- requests to Exchange / Graph
    throttled          INTEGER NOT NULL DEFAULT 0,  -- back-offs a server asked for
    PRIMARY KEY (minute_at, process)
);

CREATE TABLE room_out_of_sync (
    mailbox  TEXT PRIMARY KEY,
    since    TIMESTAMPTZ NOT NULL,  -- the first sample that found the room with a problem
    kind     TEXT NOT NULL        -- that problem's kind (room_status.PROBLEM_KINDS)
);
