-- Indexes for the queue (src/pushsync/store/notification_queue.py). Claims take pending rows in id order, so the
-- pending index leads with id: a claim walks it from the oldest row and stops after LIMIT rows,
-- where (available_at, id) made it sort the whole backlog on every claim. Rows backing off
-- (available_at in the future) are few and simply skipped.
DROP INDEX sync_notification_pending;

CREATE INDEX sync_notification_pending ON sync_notification (id) WHERE state = 'pending';

-- finding leases held by consumers that died
CREATE INDEX sync_notification_leased
    ON sync_notification (lease_expires_at) WHERE state = 'claimed';

-- purging processed rows after the retention period
CREATE INDEX sync_notification_processed
    ON sync_notification (processed_at) WHERE state IN ('done', 'failed');
