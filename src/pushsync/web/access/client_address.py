"""The client's address, seen through trusted reverse proxies.

Only when the TCP peer is a configured trusted proxy is the forwarding header read, and then
the client is the right-most address in it that is not itself a trusted proxy: every proxy
appends the address it saw, so entries left of the first untrusted one may be forged by the
client. Only the one header the proxy is configured to write is read (`X-Forwarded-For` or
`Forwarded`, RFC 7239); reading both would let a client forge the one the proxy passes through.
"""

from __future__ import annotations

from collections.abc import Iterable

from pushsync.web.access.networks import NetworkSet

_MAX_TEXT = 64  # an unparseable entry is logged; never log more than this of it


class ClientAddress:
    def __init__(self, trusted_proxies: NetworkSet, header: str = "x-forwarded-for") -> None:
        self._trusted = trusted_proxies
        self._any_trusted = bool(trusted_proxies)  # none (the default): the peer, unparsed
        self._header = header.lower().encode("latin-1")
        self._parse = _forwarded_for if self._header == b"forwarded" else _x_forwarded_for

    def resolve(self, peer: str | None, headers: Iterable[tuple[bytes, bytes]]) -> str | None:
        if peer is None or not self._any_trusted or peer not in self._trusted:
            return peer
        chain: list[str] = []
        for name, value in headers:  # a header may be repeated: the values concatenate
            if name == self._header:
                chain.extend(self._parse(value.decode("latin-1")))
        for address in reversed(chain):
            if address not in self._trusted:
                return address[:_MAX_TEXT]
        return chain[0][:_MAX_TEXT] if chain else peer


def _x_forwarded_for(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _forwarded_for(value: str) -> list[str]:
    """The `for=` node of each element: `for=192.0.2.1`, `for="[2001:db8::1]:4711"`."""
    nodes = []
    for element in value.split(","):
        for pair in element.split(";"):
            name, _, node = pair.strip().partition("=")
            if name.lower() == "for":
                nodes.append(_strip_port(node.strip().strip('"')))
    return nodes


def _strip_port(node: str) -> str:
    if node.startswith("["):
        return node[1:].split("]", 1)[0]
    if node.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has several colons
        return node.split(":", 1)[0]
    return node
