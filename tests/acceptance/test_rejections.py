"""Every rejection of the public listener: its status, one log line with the reason and the
source address, a counter for the reason, and no row."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.acceptance.conftest import CALLBACK_TOKEN, EWS_PATH, SOAP_ACTION, ServerProcess
from tests.acceptance.hardening import VALID, head, metric, raw_status

TOKEN_PATH = f"{EWS_PATH}?Default&token={CALLBACK_TOKEN}"
GOOD = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": SOAP_ACTION}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(
        tmp_path_factory.mktemp("rejections") / "pushsync.db",
        {
            "PUSHSYNC_ALLOW_CALLBACKS_WITHOUT_TOKEN": "false",
            "PUSHSYNC_HEADER_TIMEOUT_SECONDS": "1",
            "PUSHSYNC_BODY_TIMEOUT_SECONDS": "1",
            "PUSHSYNC_MAX_BODY_BYTES": "65536",
        },
    )
    process.start()
    yield process
    process.stop()


def post(server: ServerProcess, path: str = TOKEN_PATH, **kwargs: object) -> httpx.Response:
    kwargs.setdefault("content", VALID)
    kwargs.setdefault("headers", GOOD)
    return httpx.request("POST", server.url + path, timeout=10, **kwargs)  # type: ignore[arg-type]


def chunks(total: int) -> Iterator[bytes]:
    for _ in range(total // 8192):
        yield b"<" * 8192


NOT_SEND_NOTIFICATION = VALID.replace(b"SendNotification>", b"GetEvents>")
WRONG_NS = VALID.replace(b"/2006/messages", b"/2006/messagez")

# reason -> (expected status, how to provoke it)
CASES: dict[str, tuple[int, Callable[[ServerProcess], int]]] = {
    "method": (405, lambda s: httpx.get(s.url + TOKEN_PATH).status_code),
    "path": (404, lambda s: post(s, "/Default/Calendar/Calendar/Find").status_code),
    "token_missing": (403, lambda s: post(s, EWS_PATH + "?Default").status_code),
    "token_invalid": (403, lambda s: post(s, EWS_PATH + "?token=guess").status_code),
    "soap_action": (
        400,
        lambda s: post(s, headers={**GOOD, "SOAPAction": '"urn:Subscribe"'}).status_code,
    ),
    "content_type": (
        415,
        lambda s: post(s, headers={**GOOD, "Content-Type": "application/json"}).status_code,
    ),
    "content_encoding": (
        415,
        lambda s: post(s, headers={**GOOD, "Content-Encoding": "gzip"}).status_code,
    ),
    "length_required": (
        411,
        lambda s: raw_status(s, head(TOKEN_PATH, Content_Type="text/xml", SOAPAction=SOAP_ACTION)),
    ),
    "too_large": (413, lambda s: post(s, content=b"<" * 70000).status_code),
    "malformed": (400, lambda s: post(s, content=NOT_SEND_NOTIFICATION).status_code),
    "headers_too_large": (
        431,
        lambda s: post(s, headers={**GOOD, "X-Pad": "a" * 20000}).status_code,
    ),
    "header_timeout": (408, lambda s: raw_status(s, b"POST / HTTP/1.1\r\nHost: slow\r\n")),
    "body_timeout": (
        408,
        lambda s: raw_status(
            s,
            head(
                TOKEN_PATH,
                Content_Type="text/xml",
                SOAPAction=SOAP_ACTION,
                Content_Length="5000",
            )
            + b"<soap:Envelope",
        ),
    ),
    "bad_http": (400, lambda s: raw_status(s, b"GARBAGE\x00\x01 / HTTP/9\r\n\r\n")),
}


@pytest.mark.parametrize("reason", sorted(CASES))
def test_rejection(server: ServerProcess, reason: str) -> None:
    status, provoke = CASES[reason]
    counted = metric(server, "pushsync_requests_rejected_total", reason=reason)
    assert provoke(server) == status
    assert server.rows() == []
    line = _log_line(server, reason)
    assert f"status={status}" in line and "remote_addr=127.0.0.1" in line
    assert metric(server, "pushsync_requests_rejected_total", reason=reason) == counted + 1


def test_405_names_the_allowed_method(server: ServerProcess) -> None:
    response = httpx.put(server.url + TOKEN_PATH, content=VALID, headers=GOOD)
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert server.rows() == []


@pytest.mark.parametrize(
    "action",
    [
        "",
        "SendNotification",
        '"urn:x/SendNotification"',
        SOAP_ACTION.replace("http:", "https:"),
        SOAP_ACTION + "Response",
    ],
)
def test_any_other_soap_action_is_400(server: ServerProcess, action: str) -> None:
    assert post(server, headers={**GOOD, "SOAPAction": action}).status_code == 400
    assert server.rows() == []


def test_chunked_body_over_the_limit_is_413(server: ServerProcess) -> None:
    assert post(server, content=chunks(200_000)).status_code == 413
    assert server.rows() == []


def test_envelope_in_the_wrong_namespace_is_400(server: ServerProcess) -> None:
    assert post(server, content=WRONG_NS).status_code == 400
    assert server.rows() == []


def test_a_conforming_notification_still_gets_in(server: ServerProcess) -> None:
    """The checks above can fail: the same request with everything right is stored."""
    unquoted = {**GOOD, "SOAPAction": SOAP_ACTION.strip('"')}
    assert post(server, headers=unquoted).status_code == 200
    assert len(server.rows()) > 0
    chunked = post(server, content=iter([VALID[:100], VALID[100:]]))
    assert chunked.status_code == 200


def _log_line(server: ServerProcess, reason: str) -> str:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [x for x in server.logs().splitlines() if f"reason={reason} " in x + " "]
        if lines:
            return lines[-1]
        time.sleep(0.05)
    raise AssertionError(f"no log line with reason={reason}:\n{server.logs()[-2000:]}")


def test_log_never_shows_the_token(server: ServerProcess) -> None:
    post(server, EWS_PATH + "?token=guess-that-must-not-be-logged")
    assert "guess-that-must-not-be-logged" not in server.logs()
    assert CALLBACK_TOKEN not in server.logs()
