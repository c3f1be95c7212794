-- Rooms moved between protocols by `pushsync rooms migrate` (src/pushsync/store/room_migrations.py).

-- name: request_migration
INSERT INTO room_migration (mailbox, source, target, state, requested_at, updated_at)
VALUES (%(mailbox)s, %(source)s, %(target)s, 'requested', %(now)s, %(now)s)
ON CONFLICT (mailbox) DO UPDATE
SET source = excluded.source, target = excluded.target, state = 'requested',
    requested_at = excluded.requested_at, updated_at = excluded.updated_at, last_error = NULL;

-- name: open_migrations
SELECT * FROM room_migration WHERE state <> 'retired' ORDER BY requested_at, mailbox;

-- name: migration_of
SELECT * FROM room_migration WHERE mailbox = %(mailbox)s;

-- name: migration_step
-- One step on, only from the state the caller saw (another worker, or a new request, may have
-- moved it meanwhile).
UPDATE room_migration SET state = %(state)s, updated_at = %(now)s, last_error = NULL
WHERE mailbox = %(mailbox)s AND target = %(target)s AND state = %(seen)s;

-- name: migration_error
UPDATE room_migration SET last_error = %(error)s, updated_at = %(now)s
WHERE mailbox = %(mailbox)s AND state <> 'retired';

-- name: override_protocol
UPDATE room SET protocol_override = %(protocol)s WHERE mailbox = %(mailbox)s;

-- name: switch_protocol
-- The room is read over its new protocol from now on; the old protocol's cursor means nothing
-- to the new one, nor does its refusal to subscribe the room (polling).
UPDATE room
SET protocol = %(protocol)s, sync_state = NULL, poll_reason = NULL, poll_detail = NULL,
    poll_since = NULL
WHERE mailbox = %(mailbox)s;

-- name: overridden_rooms
SELECT mailbox, protocol_override FROM room WHERE protocol_override IS NOT NULL ORDER BY mailbox;
