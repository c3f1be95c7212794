-- A room being resynced is leased to one worker (several share one database), so two workers
-- never read the same calendar at once; the lease also spaces out retries of a failing room.
ALTER TABLE room ADD COLUMN resync_lease_until TIMESTAMP;

-- The status page counts failed rows per room; failed rows are few, so this index costs the
-- receiver nothing (a row enters it only when it fails).
CREATE INDEX sync_notification_failed ON sync_notification (processed_at) WHERE state = 'failed';
