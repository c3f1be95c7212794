"""The one place where refusals become HTTP answers, log lines and counters.

Every rejection, whether raised by a handler (`RejectedRequest` and its subclasses in
`pushsync.errors`) or decided by the connection guard in `protocol.py` before a request exists,
goes through `log_rejection`: one structured line with the reason and the source address, and
one increment of the counter for that reason. Rejections close the connection, so a client
that sends garbage pays for a new connection each time and no unread body is parsed.
"""

from __future__ import annotations

import logging

from pushsync.errors import RejectedRequest, RowRejected, StorageError
from pushsync.web.asgi import Send, respond
from pushsync.web.metrics import count_rejection, count_storage_failure
from pushsync.web.request import Request

log = logging.getLogger("pushsync.receiver")

_CLOSE = (b"connection", b"close")
_ALLOW = (b"allow", b"POST")
_RETRY = (b"retry-after", b"30")


def log_rejection(reason: str, status: int, remote_addr: str | None, detail: str) -> None:
    log.warning(
        "rejected",
        extra={"reason": reason, "status": status, "remote_addr": remote_addr, "detail": detail},
    )
    count_rejection(reason)


async def answer_rejection(send: Send, exc: RejectedRequest, request: Request) -> None:
    log_rejection(exc.reason, exc.status, request.remote_addr, exc.detail)
    headers = [_CLOSE, _ALLOW] if exc.status == 405 else [_CLOSE]
    await respond(send, exc.status, f"{exc.detail}\n".encode(), extra_headers=headers)


def unstorable(exc: RowRejected) -> RejectedRequest:
    """A request whose rows the storage refused, alone and while up: 400, like a malformed one
    (the inbox retries a failed group commit request by request before deciding that)."""
    return RejectedRequest(str(exc), status=400, reason="unstorable")


async def answer_storage_failure(send: Send, exc: StorageError, request: Request) -> None:
    """503: Exchange treats it as a failed delivery and retries (docs/protocol.md §2)."""
    log.error(
        "not stored, answered 503", extra={"remote_addr": request.remote_addr, "detail": str(exc)}
    )
    count_storage_failure()
    await respond(send, 503, b"storage unavailable, retry later\n", extra_headers=[_RETRY])
