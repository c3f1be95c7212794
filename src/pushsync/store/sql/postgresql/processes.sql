-- Named SQL for the processes' heartbeats (pushsync.store.processes).

-- name: process_register
INSERT INTO process_heartbeat (kind, protocol, host, pid, started_at, last_beat)
VALUES (%(kind)s, %(protocol)s, %(host)s, %(pid)s, %(now)s, %(now)s)
RETURNING id;

-- name: process_beat
UPDATE process_heartbeat SET last_beat = %(now)s WHERE id = %(id)s AND stopped_at IS NULL;

-- name: process_stopped
UPDATE process_heartbeat SET last_beat = %(now)s, stopped_at = %(now)s WHERE id = %(id)s;

-- name: process_forget
-- Rows of processes gone for long: their restart (or their host's removal) is old news.
DELETE FROM process_heartbeat WHERE last_beat < %(before)s;

-- name: process_rows
SELECT * FROM process_heartbeat ORDER BY kind, protocol, host, started_at;

-- name: room_protocols
-- The protocols a worker is needed for (cheap: /readyz asks at every probe).
SELECT DISTINCT protocol FROM room;
