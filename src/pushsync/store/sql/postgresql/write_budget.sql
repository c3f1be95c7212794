-- Graph's subscription write budget (src/pushsync/store/write_budget.py). Parameters are %(named)s (psycopg).
-- Times are seconds since 1970 on the server's clock (clock_timestamp(): the moment of the
-- statement, not of the transaction); the UPSERT's row lock makes a draw one process's at a time.

-- name: lock_write_budget
INSERT INTO graph_write_budget (budget_key) VALUES (%(key)s)
ON CONFLICT (budget_key) DO UPDATE SET held_until = graph_write_budget.held_until
RETURNING held_until, extract(epoch FROM clock_timestamp())::double precision AS now;

-- name: drop_expired_write_permits
DELETE FROM graph_write_permit WHERE budget_key = %(key)s AND expires_at <= %(now)s;

-- name: write_permits_in_use
SELECT count(*) AS used, min(expires_at) AS first_free
FROM graph_write_permit WHERE budget_key = %(key)s;

-- name: insert_write_permit
INSERT INTO graph_write_permit (permit_id, budget_key, expires_at)
VALUES (%(permit_id)s, %(key)s, %(expires_at)s);

-- name: release_write_permit
UPDATE graph_write_permit
SET expires_at = extract(epoch FROM clock_timestamp())::double precision + %(counts_for)s
WHERE permit_id = %(permit_id)s;

-- name: hold_write_budget
INSERT INTO graph_write_budget (budget_key, held_until)
VALUES (%(key)s, extract(epoch FROM clock_timestamp())::double precision + %(seconds)s)
ON CONFLICT (budget_key) DO UPDATE
SET held_until = GREATEST(graph_write_budget.held_until, excluded.held_until);
