"""The simulator's HTTP face: a raw ASGI app serving EWS at /EWS/Exchange.asmx.

It checks Basic credentials the way IIS does (a 401 with `WWW-Authenticate: Basic`, which is
also how exchangelib learns the auth type), counts requests in flight per operation (taking
`service_ms` over each, so a client's concurrency shows), turns away the configured share of
operations with ErrorServerBusy, and hands the SOAP request to the operation's module.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import Awaitable, Callable

from pushsync.simulator.config import SimulatorConfig
from pushsync.simulator.ews import soap
from pushsync.simulator.ews.operations import OPERATIONS, UNTHROTTLED
from pushsync.simulator.exchange import Exchange
from pushsync.web.asgi import Message, Receive, Scope, Send, respond

log = logging.getLogger(__name__)

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
EWS_PATH = "/ews/exchange.asmx"  # IIS paths are case-insensitive
XML = b"text/xml; charset=utf-8"
MAX_BODY = 10 * 1024 * 1024


class SimulatorApp:
    def __init__(self, exchange: Exchange, graph: ASGIApp | None = None) -> None:
        self.exchange = exchange
        self.graph = graph  # Microsoft Graph under /v1.0 (simulator/graph/api.py)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if self.graph is not None and scope["path"].startswith("/v1.0/"):
            await self.graph(scope, receive, send)
            return
        if scope["path"].lower() != EWS_PATH:
            await respond(send, 404, b"not found")
            return
        if scope["method"] != "POST":
            await respond(send, 405, b"POST only", extra_headers=[(b"allow", b"POST")])
            return
        user = self._authenticate(scope)
        if user is None:
            realm = b'Basic realm="simulator"'
            await respond(send, 401, b"", extra_headers=[(b"www-authenticate", realm)])
            return
        body = await _read_body(receive)
        try:
            request = soap.parse_request(body, user)
        except soap.SoapFault as error:
            await respond(send, 500, soap.fault(error, soap.DEFAULT_VERSION), content_type=XML)
            return
        if request.operation not in UNTHROTTLED and self.exchange.over_concurrency(user):
            self.exchange.calls[request.operation] += 1
            self.exchange.note(request.operation, request.impersonated, True)
            answer = soap.fault(over_concurrency(self.exchange.config), request.version)
            await respond(send, 500, answer, content_type=XML)
            return
        with self.exchange.account_serving(user), self.exchange.serving(request.operation):
            if self.exchange.config.service_ms > 0:  # a real server takes a while to answer
                await asyncio.sleep(self.exchange.config.service_ms / 1000)
            status, answer = self.dispatch(request)
        await respond(send, status, answer, content_type=XML)

    def dispatch(self, request: soap.EwsRequest) -> tuple[int, bytes]:
        try:
            handler = OPERATIONS.get(request.operation)
            if handler is None:
                raise soap.SoapFault("ErrorInvalidRequest", f"{request.operation} is not served")
            self.exchange.calls[request.operation] += 1
            busy = request.operation not in UNTHROTTLED and self.exchange.busy(request.operation)
            self.exchange.note(request.operation, request.impersonated, busy)
            if busy:
                raise soap.SoapFault(
                    "ErrorServerBusy",
                    "The server cannot service this request right now. Try again later.",
                    back_off_ms=self.exchange.config.busy_back_off_ms,
                )
            # The attendant works between requests too (for the room asked about; its own
            # round every second covers the others, and 500 rooms made this loop costly).
            self.exchange.attend(request.impersonated)
            return 200, handler(self.exchange, request)
        except soap.SoapFault as error:
            return 500, soap.fault(error, request.version)

    def _authenticate(self, scope: Scope) -> str | None:
        for name, value in scope["headers"]:
            if name == b"authorization":
                return self._check_basic(value)
        return None

    def _check_basic(self, value: bytes) -> str | None:
        scheme, _, encoded = value.partition(b" ")
        if scheme.lower() != b"basic":
            return None
        try:
            username, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        config = self.exchange.config
        if username.lower() == config.username.lower() and password == config.password:
            return username
        return None


def over_concurrency(config: SimulatorConfig) -> soap.SoapFault:
    """Exchange's answer to a request beyond EWSMaxConcurrency, as reported from Exchange
    Online (docs/simulator.md: the code, message and MessageXml values, with their sources)."""
    limit = config.ews_max_concurrency
    return soap.SoapFault(
        "ErrorExceededConnectionCount",
        "You have exceeded the available concurrent connections for your account.  Try again "
        "once your other requests have completed.",
        details=(
            ("Policy", "MaxConcurrency"),
            ("MaxConcurrencyLimit", str(limit)),
            (
                "ErrorMessage",
                f"This operation exceeds the throttling budget for policy part 'MaxConcurrency',"
                f" policy value '{limit}',  Budget type: 'Ews'.  Suggested backoff time 0 ms.",
            ),
        ),
    )


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= MAX_BODY:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
