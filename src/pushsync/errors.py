"""The exceptions pushsync raises, all below one root.

    PushsyncError
    ├── ConfigError            settings missing or inconsistent; the process refuses to start
    ├── RejectedRequest        an inbound request we refuse; carries the HTTP status and a reason
    │   ├── MalformedNotification   the body is not a well-formed notification (400)
    │   ├── Forbidden               source address or callback token refused (403)
    │   ├── NotFound                not a notification path (404)
    │   ├── MethodNotAllowed        not POST (405)
    │   ├── RequestTimeout          headers or body too slow (408)
    │   ├── LengthRequired          no Content-Length and not chunked (411)
    │   ├── PayloadTooLarge         body over the limit, announced or streamed (413)
    │   └── UnsupportedMediaType    not XML, or a compressed body (415)
    ├── StorageError           the database could not do what was asked
    │   ├── StorageUnavailable the database is down or cannot write at all: the receiver answers 503
    │   └── RowRejected        these rows cannot be stored (a constraint, a value): answered 400
    └── ExchangeError          a call to Exchange (EWS) or Graph failed
        ├── Throttled          the server asked us to back off (ErrorServerBusy, HTTP 503, 429)
        ├── ExchangeUnavailable    no answer, or a transport failure: retry later
        │   └── TokenUnavailable   the token authority is unreachable or failing (everyone's)
        ├── AuthenticationFailed   credentials refused: an operator must act
        ├── SubscriptionRefused    Subscribe failed for a reason retrying will not fix
        └── SyncStateExpired       Exchange no longer knows a sync state: resync the room in full

Library exceptions (sqlite3, psycopg, lxml) are translated into these where the library is
called, so the web layer maps *our* errors to status codes in one place (`web/errors.py`).
"""

from __future__ import annotations


class PushsyncError(Exception):
    """Root of every error pushsync raises on purpose."""


class ConfigError(PushsyncError):
    """A setting is missing or invalid."""


class RejectedRequest(PushsyncError):
    """An inbound request that is refused; nothing of it is stored."""

    status: int = 400
    reason: str = "rejected"

    def __init__(self, detail: str, *, status: int | None = None, reason: str | None = None):
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        if reason is not None:
            self.reason = reason


class MalformedNotification(RejectedRequest):
    """The body is not a SendNotification (or Graph notification) we can read."""

    status = 400
    reason = "malformed"


class Forbidden(RejectedRequest):
    status = 403
    reason = "forbidden"


class NotFound(RejectedRequest):
    status = 404
    reason = "path"


class MethodNotAllowed(RejectedRequest):
    status = 405
    reason = "method"


class RequestTimeout(RejectedRequest):
    status = 408
    reason = "timeout"


class LengthRequired(RejectedRequest):
    status = 411
    reason = "length_required"


class PayloadTooLarge(RejectedRequest):
    status = 413
    reason = "too_large"


class UnsupportedMediaType(RejectedRequest):
    status = 415
    reason = "content_type"


class StorageError(PushsyncError):
    """The database failed; the caller must not acknowledge anything it was writing."""


class StorageUnavailable(StorageError):
    """The database cannot be reached or cannot write anything now (connection lost, no pooled
    connection in time, locked, out of disk, shut down, schema missing): every request waiting
    would fail alike, and a retry later may succeed."""


class RowRejected(StorageError):
    """The database refused the rows themselves; retrying the same rows will not help."""


class ExchangeError(PushsyncError):
    """A call to Exchange or Graph failed. The worker retries unless a subclass says otherwise."""

    retryable = True


class Throttled(ExchangeError):
    """The server is busy; wait `retry_after` seconds before calling that mailbox again.

    `retry_after` is what the server said, however far ahead; whoever waits bounds it. `code`
    names the limit when the server did (Graph: `SubscriptionCountReached`, …)."""

    def __init__(self, detail: str, retry_after: float, code: str | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.code = code


class ExchangeUnavailable(ExchangeError):
    """No usable answer (connection refused, timeout, 5xx)."""


class TokenUnavailable(ExchangeUnavailable):
    """No token: the authority could not be reached or answered 5xx. Every room of the
    installation on that protocol waits it out; no row is to blame."""


class AuthenticationFailed(ExchangeError):
    """The credentials were refused; retrying with the same ones will not help."""

    retryable = False


class SubscriptionRefused(ExchangeError):
    """Exchange refused to create a subscription (e.g. delegate access, invalid watermark)."""

    retryable = False

    def __init__(self, detail: str, code: str | None = None) -> None:
        super().__init__(detail)
        self.code = code


class SyncStateExpired(ExchangeError):
    """SyncFolderItems refused the stored sync state (ErrorInvalidSyncStateData): too old, or
    not one of this folder's. Retrying it will not help; the room needs a full resync."""

    retryable = False
