"""The shipped nginx site (deploy/nginx/) in a real nginx, with TLS (a certificate made here),
in front of a real `pushsync serve`: only the notification paths pass, POST only, and the
client's address reaches pushsync through the one forwarding header it trusts (a header the
client forges changes nothing). nginx is Debian's package; .ci/run installs it."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pushsync.simulator.authority import self_signed_certificate
from tests.acceptance.conftest import CALLBACK_TOKEN, EWS_HEADERS, EWS_PATH, free_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "nginx"
EWS_BODY = (Path(__file__).parent.parent / "fixtures" / "ews" / "valid-001.xml").read_bytes()
CLIENT = "127.0.0.5"  # where "Exchange" connects from; nginx reaches pushsync from 127.0.0.1
STATE = "nginx-test-client-state"


def _replace(text: str, old: str, new: str) -> str:
    assert old in text, f"the shipped site no longer holds {old!r}: update this test"
    return text.replace(old, new)


def _site(folder: Path, port: int, upstream: int, cert: Path, key: Path) -> Path:
    """The shipped files with this test's ports, certificate and include path."""
    proxy = folder / "pushsync-proxy.conf"
    shutil.copy(DEPLOY / "pushsync-proxy.conf", proxy)
    site = (DEPLOY / "pushsync.conf").read_text()
    site = _replace(site, "listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;")
    site = _replace(site, "listen [::]:443 ssl;", "")
    site = _replace(site, "server 127.0.0.1:8080;", f"server 127.0.0.1:{upstream};")
    site = _replace(site, "/etc/ssl/pushsync/fullchain.pem", str(cert))
    site = _replace(site, "/etc/ssl/pushsync/privkey.pem", str(key))
    site = _replace(site, "/etc/nginx/pushsync-proxy.conf", str(proxy))
    (folder / "site.conf").write_text(site)
    main = folder / "nginx.conf"
    temp = " ".join(f"{kind}_temp_path {folder}/{kind};" for kind in ("client_body", "proxy"))
    main.write_text(
        f"daemon off; master_process off; pid {folder}/nginx.pid;\n"
        f"error_log {folder}/error.log info;\n"
        "events { worker_connections 64; }\n"
        f"http {{ {temp} fastcgi_temp_path {folder}/f; uwsgi_temp_path {folder}/u;"
        f" scgi_temp_path {folder}/s; include {folder}/site.conf; }}\n"
    )
    return main


@pytest.fixture
def published(server_factory, tmp_path: Path) -> Iterator[tuple[str, object, Path]]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx is missing: apt-get install nginx-light (.ci/run does)"
    server = server_factory(
        pushsync_allowed_networks=f"{CLIENT}/32",  # nginx's own 127.0.0.1 is not allowed
        pushsync_trusted_proxies="127.0.0.1",
        pushsync_forwarded_header="x-forwarded-for",
        pushsync_allow_callbacks_without_token="false",
        pushsync_graph_client_state=STATE,
    )
    folder = tmp_path / "nginx"
    folder.mkdir()
    cert, key = self_signed_certificate(folder)  # for 127.0.0.1, as the test authority's
    port = free_port()
    config = _site(folder, port, server.port, cert, key)
    subprocess.run([nginx, "-t", "-p", str(folder), "-c", str(config)], check=True)
    process = subprocess.Popen([nginx, "-p", str(folder), "-c", str(config)])
    try:
        base = f"https://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(base, verify=_trust(cert), timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and process.poll() is None, "nginx did not start"
                time.sleep(0.1)
        yield base, server, cert
    finally:
        process.terminate()
        process.wait(10)


def _trust(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


def _client(cert: Path) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=CLIENT, verify=_trust(cert))
    return httpx.Client(transport=transport, timeout=10)


def test_a_notification_passes_with_the_clients_address(published) -> None:
    base, server, cert = published
    with _client(cert) as client:
        answer = client.post(
            f"{base}{EWS_PATH}?token={CALLBACK_TOKEN}",
            content=EWS_BODY,
            headers={**EWS_HEADERS, "X-Forwarded-For": "10.9.9.9"},  # forged: overwritten
        )
    assert answer.status_code == 200, answer.text
    assert "<m:SubscriptionStatus>OK</m:SubscriptionStatus>" in answer.text
    rows = server.rows()
    assert rows and {row["remote_addr"] for row in rows} == {CLIENT}


def test_graph_validation_passes(published) -> None:
    base, _, cert = published
    with _client(cert) as client:
        answer = client.post(f"{base}/graph/notifications?validationToken=check-me-42")
    assert (answer.status_code, answer.text) == (200, "check-me-42")


@pytest.mark.parametrize(
    "path", ["/", "/metrics", "/status", "/readyz", "/healthz", f"{EWS_PATH}/x", "/graph"]
)
def test_every_other_path_is_404_at_nginx(published, path: str) -> None:
    base, server, cert = published
    with _client(cert) as client:
        answer = client.post(f"{base}{path}?token={CALLBACK_TOKEN}", content=EWS_BODY)
    assert answer.status_code == 404
    assert "pushsync" not in answer.text.lower()
    assert server.rows() == []


def test_only_post_passes_on_the_notification_paths(published) -> None:
    base, _, cert = published
    with _client(cert) as client:
        for path in (EWS_PATH, "/graph/notifications"):
            assert client.get(f"{base}{path}?token={CALLBACK_TOKEN}").status_code == 403


def test_a_client_outside_the_allowed_networks_is_refused_by_pushsync(published) -> None:
    base, server, cert = published
    transport = httpx.HTTPTransport(local_address="127.0.0.9", verify=_trust(cert))
    with httpx.Client(transport=transport, timeout=10) as client:
        answer = client.post(
            f"{base}{EWS_PATH}?token={CALLBACK_TOKEN}",
            content=EWS_BODY,
            headers={**EWS_HEADERS, "X-Forwarded-For": CLIENT},  # forging the allowed one
        )
    assert answer.status_code == 403
    assert server.rows() == []


def test_the_doctor_reaches_the_receiver_through_the_proxy_and_sees_it_filter(
    published, tmp_path: Path
) -> None:
    """`pushsync doctor` posts its self-test to the published https URL: nginx passes it with
    the doctor's address, which is not an allowed source, so pushsync refuses it with its own
    403, which the doctor reports as reachable and filtering; Graph's handshake passes."""
    import os
    from datetime import UTC, datetime

    from tests.acceptance.test_cli_doctor import doctor, line, write_ranges

    base, server, cert = published
    write_ranges(tmp_path / "ranges", datetime.now(UTC))
    env = {
        **os.environ,
        "PUSHSYNC_DATABASE_URL": server.database_url,
        "PUSHSYNC_PUBLIC_URL": base,
        "PUSHSYNC_CALLBACK_TOKEN": CALLBACK_TOKEN,
        "PUSHSYNC_TRUSTED_PROXIES": "127.0.0.1",
        "PUSHSYNC_GRAPH_CLIENT_STATE": STATE,
        "PUSHSYNC_IPRANGES_DIR": str(tmp_path / "ranges"),
        "SSL_CERT_FILE": str(cert),  # the doctor trusts the test certificate, as httpx reads it
        "COLUMNS": "400",
    }
    code, lines = doctor(env)

    assert code == 0, "\n".join(lines)  # warnings alone leave the exit code 0
    assert "no room configured" in line(lines, "warn settings")
    assert "sources are filtered as they should be" in line(lines, "ok   public URL (EWS)")
    assert "validation handshake through the proxy" in line(lines, "ok   public URL (Graph)")
    assert not any("trusted_proxies" in entry for entry in lines)
    assert server.rows() == []  # refused before anything was stored
