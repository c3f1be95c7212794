-- Graph's subscription write budget (src/pushsync/store/write_budget.py). Parameters are :named.
-- Times are seconds since 1970 on SQLite's clock, julianday('now') to the millisecond; the
-- session's BEGIN IMMEDIATE is what makes a draw one process's at a time.

-- name: lock_write_budget
INSERT INTO graph_write_budget (budget_key) VALUES (:key)
ON CONFLICT (budget_key) DO UPDATE SET held_until = held_until
RETURNING held_until, (julianday('now') - 2440587.5) * 86400.0 AS now;

-- name: drop_expired_write_permits
DELETE FROM graph_write_permit WHERE budget_key = :key AND expires_at <= :now;

-- name: write_permits_in_use
SELECT count(*) AS used, min(expires_at) AS first_free
FROM graph_write_permit WHERE budget_key = :key;

-- name: insert_write_permit
INSERT INTO graph_write_permit (permit_id, budget_key, expires_at)
VALUES (:permit_id, :key, :expires_at);

-- name: release_write_permit
UPDATE graph_write_permit
SET expires_at = (julianday('now') - 2440587.5) * 86400.0 + :counts_for
WHERE permit_id = :permit_id;

-- name: hold_write_budget
INSERT INTO graph_write_budget (budget_key, held_until)
VALUES (:key, (julianday('now') - 2440587.5) * 86400.0 + :seconds)
ON CONFLICT (budget_key) DO UPDATE
SET held_until = max(held_until, excluded.held_until);
