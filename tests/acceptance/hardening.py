"""Helpers shared by the hardening acceptance tests: a raw socket client and a server's RSS."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import httpx

from tests.acceptance.conftest import EWS_PATH, ServerProcess

VALID = (Path(__file__).parent.parent / "fixtures" / "ews" / "valid-001.xml").read_bytes()
ACTION = b"http://schemas.microsoft.com/exchange/services/2006/messages/SendNotification"


def head(path: str = EWS_PATH, **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: test"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def raw_status(server: ServerProcess, data: bytes, timeout: float = 10.0) -> int:
    """Send bytes as they are and return the status of the answer (0 if the server closed)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(data)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    match = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
    return int(match.group(1)) if match else 0


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def metric(server: ServerProcess, name: str, **labels: str) -> float:
    """One sample from the admin listener's /metrics (0 if absent)."""
    text = httpx.get(f"http://127.0.0.1:{server.admin_port}/metrics", timeout=5).text
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if wanted else "") + r" (\S+)"
    match = re.search(rf"^{pattern}$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def notification(tag: str) -> bytes:
    """A valid SendNotification whose one event is new each time (redeliveries add no row)."""
    return VALID_TEMPLATE.format(tag=tag).encode()


VALID_TEMPLATE = (
    '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
    '<m:SendNotification xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
    'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><m:ResponseMessages>'
    '<m:SendNotificationResponseMessage ResponseClass="Success"><m:ResponseCode>NoError'
    "</m:ResponseCode><m:Notification><t:SubscriptionId>SUB-HARDENING</t:SubscriptionId>"
    "<t:ModifiedEvent><t:Watermark>WM-{tag}</t:Watermark>"
    "<t:TimeStamp>2026-11-24T10:00:00Z</t:TimeStamp>"
    '<t:ItemId Id="ITEM-{tag}" ChangeKey="CK"/><t:ParentFolderId Id="CAL"/></t:ModifiedEvent>'
    "</m:Notification></m:SendNotificationResponseMessage></m:ResponseMessages>"
    "</m:SendNotification></soap:Body></soap:Envelope>"
)
