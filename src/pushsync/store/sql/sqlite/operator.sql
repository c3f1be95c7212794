-- Named SQL for the operator's commands (pushsync.operator_lookup): ids and rooms as typed.

-- name: subscriptions_by_prefix
-- At most a few more than the CLI names when a prefix is ambiguous.
SELECT subscription_id, protocol, mailbox, state FROM subscription
WHERE substr(subscription_id, 1, length(:prefix)) = :prefix
ORDER BY subscription_id LIMIT 6;

-- name: notified_protocol
-- A subscription the table does not hold but whose notifications arrived (an orphan).
SELECT protocol FROM sync_notification WHERE subscription_id = :subscription_id LIMIT 1;

-- name: retire_known_subscription
UPDATE subscription SET state = 'retired', retired_at = :now
WHERE subscription_id = :subscription_id;

-- name: subscription_neighbours
-- Each of the given ids (:ids, a JSON list) with the ids just before and after it in the table's
-- order (codepoint order, as Python sorts): what its shortest unique prefix depends on. One pass
-- along the primary key, whatever the number of subscriptions, for the ids a listing prints.
SELECT subscription_id, before, after FROM (
    SELECT subscription_id,
           lag(subscription_id) OVER (ORDER BY subscription_id) AS before,
           lead(subscription_id) OVER (ORDER BY subscription_id) AS after
    FROM subscription
) AS ordered
WHERE subscription_id IN (SELECT value FROM json_each(:ids));

-- name: room_by_mailbox
SELECT * FROM room WHERE lower(mailbox) = lower(:mailbox);

-- name: notifications_newest
SELECT n.*, s.mailbox AS mailbox FROM sync_notification n
LEFT JOIN subscription s ON s.subscription_id = n.subscription_id
WHERE (:state IS NULL OR n.state = :state)
  AND (:room IS NULL OR lower(s.mailbox) = lower(:room))
ORDER BY n.id DESC LIMIT :limit;

-- name: forget_notifications_of
-- `pushsync doctor`'s self-test row, removed once it has been found (no room owns it).
DELETE FROM sync_notification WHERE subscription_id = :subscription_id;
