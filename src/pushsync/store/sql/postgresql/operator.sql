-- Named SQL for the operator's commands (pushsync.operator_lookup): ids and rooms as typed.

-- name: subscriptions_by_prefix
-- At most a few more than the CLI names when a prefix is ambiguous.
SELECT subscription_id, protocol, mailbox, state FROM subscription
WHERE starts_with(subscription_id, %(prefix)s::text)
ORDER BY subscription_id LIMIT 6;

-- name: notified_protocol
-- A subscription the table does not hold but whose notifications arrived (an orphan).
SELECT protocol FROM sync_notification WHERE subscription_id = %(subscription_id)s LIMIT 1;

-- name: retire_known_subscription
UPDATE subscription SET state = 'retired', retired_at = %(now)s
WHERE subscription_id = %(subscription_id)s;

-- name: subscription_neighbours
-- Each of the given ids with the ids just before and after it in codepoint order (COLLATE "C",
-- as Python sorts; a language's collation would not keep ids that share a prefix together):
-- what its shortest unique prefix depends on. One sort of the subscription table, for the ids a
-- listing prints.
SELECT subscription_id, before, after FROM (
    SELECT subscription_id,
           lag(subscription_id) OVER (ORDER BY subscription_id COLLATE "C") AS before,
           lead(subscription_id) OVER (ORDER BY subscription_id COLLATE "C") AS after
    FROM subscription
) AS ordered
WHERE subscription_id = ANY(%(ids)s::text[]);

-- name: room_by_mailbox
SELECT * FROM room WHERE lower(mailbox) = lower(%(mailbox)s::text);

-- name: notifications_newest
SELECT n.*, s.mailbox AS mailbox FROM sync_notification n
LEFT JOIN subscription s ON s.subscription_id = n.subscription_id
WHERE (%(state)s::text IS NULL OR n.state = %(state)s::text)
  AND (%(room)s::text IS NULL OR lower(s.mailbox) = lower(%(room)s::text))
ORDER BY n.id DESC LIMIT %(limit)s;

-- name: forget_notifications_of
-- `pushsync doctor`'s self-test row, removed once it has been found (no room owns it).
DELETE FROM sync_notification WHERE subscription_id = %(subscription_id)s;
