"""Stopping: `pushsync serve` on SIGTERM stops accepting, lets the request in flight finish
(its rows committed, its answer sent), exits 0 and leaves no metrics folder; the demo on
Ctrl-C still checks, prints its summary and names its database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.acceptance.conftest import EWS_PATH, SOAP_ACTION, ServerProcess, pushsync_command
from tests.acceptance.simulated_exchange import wait_for

EWS_CORPUS = Path(__file__).parent.parent / "fixtures" / "ews"


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_exits_0_and_removes_the_metrics_folder(
    server_factory, tmp_path: Path, workers: str
) -> None:
    server: ServerProcess = server_factory(tmpdir=str(tmp_path), pushsync_workers=workers)
    assert [p.name for p in tmp_path.glob("pushsync-metrics-*")]  # made while serving

    server.process.send_signal(signal.SIGTERM)

    assert server.process.wait(30) == 0, server.logs()
    assert list(tmp_path.glob("pushsync-metrics-*")) == []


def test_sigterm_finishes_the_request_in_flight_then_exits(server_factory, tmp_path) -> None:
    server: ServerProcess = server_factory(tmpdir=str(tmp_path))
    body = (EWS_CORPUS / "valid-001.xml").read_bytes()
    head = (
        f"POST {EWS_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml; charset=utf-8\r\n"
        f"SOAPAction: {SOAP_ACTION}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    client = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    client.sendall(head + body[: len(body) // 2])
    time.sleep(0.5)  # the request is being read

    server.process.send_signal(signal.SIGTERM)
    wait_for(lambda: _refused(server.port), timeout=20)  # no new connection is accepted
    assert server.process.poll() is None  # still finishing the one in flight
    client.sendall(body[len(body) // 2 :])
    answer = client.recv(65536).decode(errors="replace")
    client.close()

    assert answer.startswith("HTTP/1.1 200"), answer
    assert "<m:SubscriptionStatus>OK</m:SubscriptionStatus>" in answer
    assert server.process.wait(30) == 0
    assert len(server.rows()) > 0  # acknowledged, so committed


def test_ctrl_c_on_the_demo_prints_its_summary_and_names_its_database(tmp_path: Path) -> None:
    demo = subprocess.Popen(
        pushsync_command("demo", "--rooms", "3", "--duration", "300"),
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log = tmp_path / "var/demo/pushsync.log"
    try:
        wait_for(lambda: log.exists() and "room resynced" in log.read_text(), timeout=90)
        demo.send_signal(signal.SIGINT)
        output = demo.communicate(timeout=120)[0]
    finally:
        if demo.poll() is None:
            demo.kill()

    assert demo.returncode == 130, output
    assert "pushsync demo: summary" in output and "Ctrl-C" in output
    assert "sqlite:///var/demo/pushsync.db" in output
    assert "Traceback" not in output
