"""Whether a listener's address is free, asked before anything starts: a port in use stops
`pushsync serve` with one line naming it, before the admin listener or any receiver runs."""

from __future__ import annotations

import errno
import socket

from pushsync.errors import ConfigError


def require_free(host: str, port: int, what: str) -> None:
    """Bind and release `host:port` the way uvicorn will (SO_REUSEADDR); a listener already
    there refuses it. (Another process may still take the port in between: uvicorn then fails
    on its own; this catches the common case, a second copy or a forgotten process.)"""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"{what} {shown} in use by another process") from None
            raise ConfigError(f"{what} {shown}: {exc.strerror or exc}") from None
