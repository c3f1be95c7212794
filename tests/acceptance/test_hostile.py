"""Hostile bodies against a real server process: each gets a 4xx and writes no row, and the
server's memory stays bounded over the whole suite."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.acceptance.conftest import EWS_HEADERS, EWS_PATH, ServerProcess
from tests.acceptance.hardening import VALID, rss_bytes

ENVELOPE = (
    '<soap:Envelope xmlns:soap="{soap}"><soap:Body>'
    '<m:SendNotification xmlns:m="{m}" xmlns:t="{t}"><m:ResponseMessages>'
    '<m:SendNotificationResponseMessage ResponseClass="Success"><m:Notification>'
    "<t:SubscriptionId>{subscription}</t:SubscriptionId>"
    "<t:StatusEvent><t:Watermark>WM</t:Watermark></t:StatusEvent>"
    "</m:Notification></m:SendNotificationResponseMessage></m:ResponseMessages>"
    "</m:SendNotification></soap:Body></soap:Envelope>"
)
NS = {
    "soap": "http://schemas.xmlsoap.org/soap/envelope/",
    "m": "http://schemas.microsoft.com/exchange/services/2006/messages",
    "t": "http://schemas.microsoft.com/exchange/services/2006/types",
}


def envelope(subscription: str = "SUB", doctype: str = "", **ns: str) -> bytes:
    return (doctype + ENVELOPE.format(subscription=subscription, **{**NS, **ns})).encode()


def billion_laughs() -> bytes:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    ]
    return envelope("&lol9;", f"<!DOCTYPE soap:Envelope [{''.join(entities)}]>")


def quadratic_blowup() -> bytes:
    doctype = f'<!DOCTYPE soap:Envelope [<!ENTITY a "{"x" * 50_000}">]>'
    return envelope("&a;" * 15_000, doctype)


def deep_nesting(depth: int = 200_000) -> bytes:
    return b"<a>" * depth + b"</a>" * depth


def chunked(total: int) -> Iterator[bytes]:
    block = b"<" * 65536
    for _ in range(total // len(block)):
        yield block


CASES: dict[str, bytes | Callable[[], Iterator[bytes]]] = {
    "xxe_local_file": envelope(
        "&xxe;", '<!DOCTYPE soap:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    ),
    "external_dtd": envelope(
        "SUB", '<!DOCTYPE soap:Envelope SYSTEM "http://127.0.0.1:9/evil.dtd">'
    ),
    "external_parameter_entity": envelope(
        "SUB",
        '<!DOCTYPE soap:Envelope [<!ENTITY % ext SYSTEM "file:///etc/passwd"> %ext;]>',
    ),
    "parameter_entity_dev_zero": envelope(
        "SUB",
        '<!DOCTYPE soap:Envelope [<!ENTITY % z SYSTEM "file:///dev/zero"> %z;]>',
    ),
    "billion_laughs": billion_laughs(),
    "quadratic_blowup": quadratic_blowup(),
    "body_20_mb": b"<" * (20 * 1024 * 1024),
    "chunked_20_mb": lambda: chunked(20 * 1024 * 1024),  # a fresh stream per request
    "nested_200000": deep_nesting(),
    "invalid_utf8": envelope("SUB-X").replace(b"SUB-X", b"SUB-\xff\xfe\xc0\x80"),
    "truncated": VALID[: len(VALID) // 2],
    "https_namespaces": envelope(
        soap="https://schemas.xmlsoap.org/soap/envelope/",
        m="https://schemas.microsoft.com/exchange/services/2006/messages",
        t="https://schemas.microsoft.com/exchange/services/2006/types",
    ),
    "missing_subscription_id": envelope().replace(b"<t:SubscriptionId>SUB</t:SubscriptionId>", b""),
    "empty_subscription_id": envelope(""),
    "not_xml": b"\x00\x01\x02 binary garbage",
    "empty": b"",
}


def send(server: ServerProcess, body: bytes | Callable[[], Iterator[bytes]]) -> httpx.Response:
    content = body() if callable(body) else body
    return httpx.post(server.url + EWS_PATH, content=content, headers=EWS_HEADERS, timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # 2 MiB so the 200,000-element document (1.4 MB) reaches the parser instead of the limit
    process = ServerProcess(
        tmp_path_factory.mktemp("hostile") / "pushsync.db", {"PUSHSYNC_MAX_BODY_BYTES": "2097152"}
    )
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def baseline_rss(server: ServerProcess) -> int:
    assert server.process is not None
    httpx.post(server.url + EWS_PATH, content=b"<x/>", headers=EWS_HEADERS)  # warm up
    return rss_bytes(server.process.pid)


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_body_is_refused_without_a_row(
    server: ServerProcess, baseline_rss: int, case: str
) -> None:
    response = send(server, CASES[case])
    assert 400 <= response.status_code < 500, (case, response.status_code, response.text)
    assert server.rows() == []


def test_memory_grew_less_than_50_mb_over_the_suite(
    server: ServerProcess, baseline_rss: int
) -> None:
    """Runs after the cases above (same module, same process); repeats them to make growth show."""
    assert server.process is not None
    for _ in range(3):
        for body in CASES.values():
            assert send(server, body).status_code < 500
    growth = rss_bytes(server.process.pid) - baseline_rss
    assert growth < 50 * 1024 * 1024, f"RSS grew by {growth / 1e6:.1f} MB"
    assert server.rows() == []
    assert "root:" not in server.logs()  # nothing of /etc/passwd was ever read back
