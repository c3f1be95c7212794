"""What a simulated Exchange organisation looks like: its rooms, accounts and failure rates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pushsync.simulator.booking import BookingSettings, Room
from pushsync.simulator.clock import DEFAULT_EPOCH

# Rooms spread over zones with different daylight-saving rules (and one without any).
ZONES = (
    "Europe/Berlin",
    "America/New_York",
    "Europe/London",
    "Asia/Tokyo",
    "Australia/Sydney",
    "America/Los_Angeles",
)
DOMAIN = "contoso.example"


@dataclass(frozen=True, slots=True)
class RoomList:
    """A room list (a distribution group of rooms) as GetRoomLists and GetRooms show it."""

    email: str
    name: str
    members: tuple[str, ...] | None = None  # room addresses; None: every room

    def holds(self, room: str) -> bool:
        return self.members is None or room.lower() in {m.lower() for m in self.members}


ALL_ROOMS = RoomList("all-rooms@" + DOMAIN, "All Rooms")


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """Everything the simulator needs; the defaults give a small, friendly organisation."""

    rooms: tuple[Room, ...] = ()
    seed: int = 1
    scale: float = 1.0  # Exchange seconds per real second
    epoch: datetime = DEFAULT_EPOCH
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port, reported by `url`
    username: str = "svc-pushsync@" + DOMAIN
    password: str = "simulator"  # noqa: S105 - a test double's well-known password
    # Accounts allowed to impersonate rooms (the ApplicationImpersonation role).
    impersonators: frozenset[str] = frozenset({"svc-pushsync@" + DOMAIN})
    busy_rate: float = 0.0  # share of operations answered ErrorServerBusy
    busy_back_off_ms: int = 2000  # BackOffMilliseconds hint (Exchange time)
    # Wall-clock milliseconds each EWS request takes before it is answered (0: at once). Not
    # scaled: it is there so a client's concurrency shows in `exchange.max_in_flight`.
    service_ms: float = 0.0
    # EWSMaxConcurrency: requests of one service account served at once; beyond it the request
    # is answered ErrorExceededConnectionCount (docs/simulator.md). 0: no limit.
    ews_max_concurrency: int = 27
    # Graph's Outlook limits per app and mailbox (docs/protocol.md §5): requests at once, and
    # requests per window of Exchange seconds; beyond them 429 with Retry-After. 0: no limit.
    graph_mailbox_concurrency: int = 4
    graph_mailbox_requests: int = 10_000
    graph_mailbox_window_seconds: float = 600.0
    # Subscription writes (create, renew, delete) per app and tenant per window (§5a). 0: none.
    graph_subscription_writes: int = 500
    graph_subscription_window_seconds: float = 20.0
    max_subscriptions_per_mailbox: int = 20  # EWSMaxSubscriptions in Exchange Online
    max_events_per_notification: int = 50
    # Share of item events left out of push notifications: the change shows only as its
    # folder's ModifiedEvent, as Exchange does when it coalesces a burst (SyncFolderItems
    # still finds it). 1.0: every change is notified as the folder event alone.
    folder_only_rate: float = 0.0
    room_lists: tuple[RoomList, ...] = (ALL_ROOMS,)
    activity_per_minute: float = 0.0  # random booking actions per Exchange minute (0: none)
    # Graph: rooms whose mailbox is still on premises in a hybrid tenant (a subscription is
    # refused, 404 MailboxNotEnabledForRESTAPI, while reads work), and rooms an application
    # access policy keeps from this app (every Graph call about them is 403 ErrorAccessDenied).
    on_premises_rooms: frozenset[str] = frozenset()
    denied_rooms: frozenset[str] = frozenset()

    def on_premises(self, email: str) -> bool:
        return email.lower() in {room.lower() for room in self.on_premises_rooms}

    def denied(self, email: str) -> bool:
        return email.lower() in {room.lower() for room in self.denied_rooms}

    def room(self, email: str) -> Room | None:
        return next((r for r in self.rooms if r.email.lower() == email.lower()), None)


def generated_rooms(count: int, booking: BookingSettings | None = None) -> tuple[Room, ...]:
    """`count` rooms named room-001@… cycling through the time zones."""
    settings = booking or BookingSettings()
    return tuple(
        Room(
            email=f"room-{n:03d}@{DOMAIN}",
            name=f"Room {n:03d}",
            time_zone=ZONES[(n - 1) % len(ZONES)],
            booking=settings,
        )
        for n in range(1, count + 1)
    )
