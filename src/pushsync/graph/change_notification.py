"""Read a Microsoft Graph change-notification POST and check its clientState.

https://learn.microsoft.com/graph/change-notifications-delivery-webhooks
https://learn.microsoft.com/graph/change-notifications-lifecycle-events

A POST holds `{"value": [...]}`, items of possibly several subscriptions. A resource item has
`changeType` and `resource`; a lifecycle item has `lifecycleEvent` instead. Every item carries
the clientState we gave at subscribe time; an item whose clientState does not match is forged
and is dropped (never stored), and the endpoint refuses a POST with nothing genuine in it.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pushsync.errors import MalformedNotification
from pushsync.model.notification import Notification

CHANGE_TYPES = frozenset({"created", "updated", "deleted"})
# The lifecycle events, stored as the row's event_type (graph/lifecycle.py says what each does)
REAUTHORIZATION_REQUIRED = "reauthorizationRequired"
SUBSCRIPTION_REMOVED = "subscriptionRemoved"
MISSED = "missed"
LIFECYCLE_EVENTS = frozenset({REAUTHORIZATION_REQUIRED, SUBSCRIPTION_REMOVED, MISSED})
MAX_ITEMS = 1000  # Graph batches far fewer; a larger "batch" is not from Graph
MAX_FIELD_LENGTH = 2048

# Given (subscription id, clientState as received), is it the one we registered?
ClientStateCheck = Callable[[str, str | None], bool]


@dataclass(frozen=True, slots=True)
class ParsedBatch:
    rows: list[Notification]  # the genuine items, one row each
    forged: int  # items dropped for a wrong or missing clientState


def client_state_matches(expected: str, *previous: str) -> ClientStateCheck:
    """A check against the installation-wide secret (and any still accepted while it is being
    rotated), each compared in constant time; every candidate is compared, match or not."""
    wanted = [secret.encode() for secret in (expected, *previous)]

    def check(_subscription_id: str, received: str | None) -> bool:
        if received is None:
            return False
        given = received.encode()
        return sum(hmac.compare_digest(given, secret) for secret in wanted) > 0

    return check


def parse_change_notifications(
    body: bytes, check: ClientStateCheck, *, remote_addr: str | None = None
) -> ParsedBatch:
    """Parse a Graph notification batch or raise MalformedNotification."""
    items = _items(body)
    rows: list[Notification] = []
    forged = 0
    for item in items:
        row = _row(item, remote_addr)
        if check(row.subscription_id, _optional_str(item, "clientState")):
            rows.append(row)
        else:
            forged += 1
    return ParsedBatch(rows, forged)


def _items(body: bytes) -> list[dict[str, Any]]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise MalformedNotification(f"not JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("value"), list):
        raise MalformedNotification('a Graph notification is an object with a "value" array')
    items: list[dict[str, Any]] = document["value"]
    if not items:
        raise MalformedNotification('"value" holds no notification')
    if len(items) > MAX_ITEMS:
        raise MalformedNotification(f"more than {MAX_ITEMS} notifications in one POST")
    if not all(isinstance(item, dict) for item in items):
        raise MalformedNotification('every item of "value" must be an object')
    return items


def _row(item: dict[str, Any], remote_addr: str | None) -> Notification:
    subscription_id = _required_str(item, "subscriptionId")
    lifecycle = _optional_str(item, "lifecycleEvent")
    if lifecycle is not None:
        if lifecycle not in LIFECYCLE_EVENTS:
            raise MalformedNotification(f"unknown lifecycleEvent {lifecycle!r}")
        return Notification(
            protocol="graph",
            subscription_id=subscription_id,
            event_type=lifecycle,
            remote_addr=remote_addr,
        )
    change_type = _required_str(item, "changeType")
    if change_type not in CHANGE_TYPES:
        raise MalformedNotification(f"unknown changeType {change_type!r}")
    data = item.get("resourceData")
    item_id = _optional_str(data, "id") if isinstance(data, dict) else None
    etag = _optional_str(data, "@odata.etag") if isinstance(data, dict) else None
    return Notification(
        protocol="graph",
        subscription_id=subscription_id,
        event_type=change_type,
        resource=_required_str(item, "resource"),
        item_id=item_id,
        item_change_key=etag,  # the event's version: with it a redelivery adds no row
        remote_addr=remote_addr,
    )


def _optional_str(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_FIELD_LENGTH:
        raise MalformedNotification(
            f"{name} must be a string of at most {MAX_FIELD_LENGTH} characters"
        )
    return value


def _required_str(item: dict[str, Any], name: str) -> str:
    value = _optional_str(item, name)
    if not value:
        raise MalformedNotification(f"a notification without {name}")
    return value
