-- Graph's subscription write limit (create, renew, delete: 500 per 20 s per app and tenant,
-- docs/protocol.md §5a) as one budget every manager process draws on (store/write_budget.py).
-- One row per app and tenant: each draw locks it (the UPSERT's row lock), and it holds the
-- tenant-wide Retry-After Graph gave any of them. One row per write permit, counted until
-- `expires_at`. Times are seconds since 1970 on the database's clock, so that processes on
-- machines whose clocks differ still agree.
CREATE TABLE graph_write_budget (
    budget_key  TEXT PRIMARY KEY,
    held_until  DOUBLE PRECISION NOT NULL DEFAULT 0
);

CREATE TABLE graph_write_permit (
    permit_id   TEXT PRIMARY KEY,
    budget_key  TEXT NOT NULL REFERENCES graph_write_budget (budget_key),
    expires_at  DOUBLE PRECISION NOT NULL
);
CREATE INDEX graph_write_permit_expiry ON graph_write_permit (budget_key, expires_at);
