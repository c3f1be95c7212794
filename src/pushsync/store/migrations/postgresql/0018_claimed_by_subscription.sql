-- A claim passes over the pending rows of a subscription another consumer holds rows of (a
-- room's rows go to one worker at a time: queue.sql), looked up among the claimed rows alone.
CREATE INDEX sync_notification_claimed_subscription
    ON sync_notification (subscription_id) WHERE state = 'claimed';
