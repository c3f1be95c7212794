"""A Microsoft identity platform token authority for the simulator's Graph, over HTTPS.

msal only talks to `https://` authorities, reads the tenant's metadata first and then asks the
token endpoint for a client-credentials token:
https://learn.microsoft.com/entra/identity-platform/v2-protocols-oidc (openid-configuration)
https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow

- GET /{tenant}/v2.0/.well-known/openid-configuration: issuer, authorization and token
  endpoints; 400 for another tenant.
- POST /{tenant}/oauth2/v2.0/token: an access token for the configured client id and secret,
  with the claims Microsoft documents (`access_token.py`: `roles` = the granted application
  permissions, `aud`, `tid`, `appid`, …); 401 `invalid_client` otherwise; 503 while `failing`.

With `PUSHSYNC_AUTHORITY_HOST` at `url`, `PUSHSYNC_AUTHORITY_DISCOVERY=false` (no instance
discovery at login.microsoftonline.com) and `PUSHSYNC_AUTHORITY_CA_BUNDLE` at `ca_bundle`, the
real msal path runs against it. The certificate is self-signed for 127.0.0.1 and made afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import json
import socket
from pathlib import Path
from types import TracebackType
from urllib.parse import parse_qs

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pushsync.simulator import access_token
from pushsync.simulator.graph.api import read_body
from pushsync.web.asgi import Receive, Scope, Send, respond

JSON = b"application/json; charset=utf-8"
HOST = "127.0.0.1"


class TokenAuthority:
    """The ASGI app: one tenant, one app registration."""

    def __init__(self, tenant_id: str, client_id: str, client_secret: str) -> None:
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.base_url = ""  # set once the server knows its port
        self.failing = False  # answer token requests 503, as an authority in trouble
        self.expires_in = 3599  # seconds a token lasts (Entra: about an hour)
        self.issued = 0
        self.roles: tuple[str, ...] = access_token.GRANTED_ROLES  # the admin-consented permissions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        status, document = self.answer(scope["method"], scope["path"], body)
        await respond(send, status, json.dumps(document).encode(), JSON, [])

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, object]]:
        tenant = f"/{self.tenant_id}"
        if method == "GET" and path == f"{tenant}/v2.0/.well-known/openid-configuration":
            return 200, self._configuration()
        if method == "POST" and path == f"{tenant}/oauth2/v2.0/token":
            return self._token(body)
        if path.endswith("/.well-known/openid-configuration"):
            return 400, _error("invalid_tenant", "no such tenant")
        return 404, _error("not_found", f"{method} {path} is not served")

    def _configuration(self) -> dict[str, object]:
        base = f"{self.base_url}/{self.tenant_id}"
        return {
            "issuer": f"{base}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
            "response_types_supported": ["code", "id_token", "token"],
        }

    def _token(self, body: bytes) -> tuple[int, dict[str, object]]:
        if self.failing:
            return 503, _error("temporarily_unavailable", "the authority is busy")
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if form.get("grant_type") != "client_credentials":
            return 400, _error("unsupported_grant_type", "only client_credentials")
        if (form.get("client_id"), form.get("client_secret")) != (
            self.client_id,
            self.client_secret,
        ):
            return 401, _error("invalid_client", "AADSTS7000215: Invalid client secret")
        self.issued += 1
        return 200, {
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "access_token": access_token.issue(
                self.tenant_id, self.client_id, roles=self.roles, lifetime=self.expires_in
            ),
        }


class AuthorityServer:
    """Serves a `TokenAuthority` over HTTPS on `port` (0: any free one), on the caller's loop."""

    def __init__(self, authority: TokenAuthority, directory: Path, port: int = 0) -> None:
        self.authority = authority
        self.cert, self.key = self_signed_certificate(directory)
        self.port = port
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.port}"

    @property
    def ca_bundle(self) -> str:
        return str(self.cert)

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, self.port))
        self.port = sock.getsockname()[1]
        self.authority.base_url = self.url
        config = uvicorn.Config(
            self.authority,
            lifespan="off",
            access_log=False,
            log_config=None,
            ssl_certfile=str(self.cert),
            ssl_keyfile=str(self.key),
            timeout_graceful_shutdown=1,  # msal keeps its connection open
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:  # noqa: ASYNC110 - uvicorn has no "started" event
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def __aenter__(self) -> AuthorityServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own CA, and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pushsync test authority")])
    now = dt.datetime.now(dt.UTC)
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "authority.pem", directory / "authority.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _error(code: str, description: str) -> dict[str, object]:
    return {"error": code, "error_description": description}
