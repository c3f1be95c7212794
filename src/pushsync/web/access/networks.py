"""Sets of IP networks with a membership test that stays fast with many thousand prefixes.

A set is kept as sorted, merged, non-overlapping integer intervals in one 128-bit space. IPv4
networks sit at their IPv4-mapped position (::ffff:a.b.c.d), so `192.0.2.1` and the
`::ffff:192.0.2.1` a dual-stack socket reports match the same entries. A lookup is one C
`bisect` over the interval starts: O(log n), independent of how many prefix lengths occur
(bench/ipranges measures it against a linear scan).
"""

from __future__ import annotations

import socket
from bisect import bisect_right
from collections.abc import Iterable
from ipaddress import IPv4Network, IPv6Network, ip_network

Network = IPv4Network | IPv6Network

_MAPPED = 0xFFFF << 32  # ::ffff:0:0/96, where IPv4 lives in the IPv6 space
_MAX_ADDRESS_TEXT = 64  # longer than any written IPv6 address with a zone id


def address_key(text: str) -> int:
    """The address as an integer in the IPv6 space; ValueError if `text` is not an address.

    `inet_pton` is strict (no `010.1`, no `1.2.3`), which is what we want for header values.
    """
    if len(text) > _MAX_ADDRESS_TEXT:
        raise ValueError("not an IP address")
    try:
        if ":" in text:
            return int.from_bytes(socket.inet_pton(socket.AF_INET6, text.split("%", 1)[0]))
        return _MAPPED | int.from_bytes(socket.inet_pton(socket.AF_INET, text))
    except OSError:
        raise ValueError(f"{text!r} is not an IP address") from None


def parse_network(text: str) -> Network:
    """`192.0.2.0/24`, `2001:db8::/32`, or a bare address (one host); ValueError otherwise."""
    return ip_network(text.strip(), strict=True)


def _interval(network: Network) -> tuple[int, int]:
    start, end = int(network.network_address), int(network.broadcast_address)
    if network.version == 4:
        return _MAPPED | start, _MAPPED | end
    return start, end


class NetworkSet:
    """An immutable set of networks; `address in networks` for text addresses."""

    __slots__ = ("_ends", "_starts", "networks")

    def __init__(self, networks: Iterable[Network] = ()) -> None:
        self.networks: tuple[Network, ...] = tuple(networks)
        merged: list[list[int]] = []
        for start, end in sorted(_interval(n) for n in self.networks):
            if merged and start <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        self._starts = [start for start, _ in merged]
        self._ends = [end for _, end in merged]

    @classmethod
    def parse(cls, texts: Iterable[str]) -> NetworkSet:
        return cls(parse_network(text) for text in texts)

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str):
            return False
        try:
            key = address_key(address)
        except ValueError:
            return False
        return self.contains_key(key)

    def contains_key(self, key: int) -> bool:
        index = bisect_right(self._starts, key) - 1
        return index >= 0 and key <= self._ends[index]

    def __or__(self, other: NetworkSet) -> NetworkSet:
        return NetworkSet(self.networks + other.networks)

    def __bool__(self) -> bool:
        return bool(self._starts)

    def __len__(self) -> int:
        return len(self.networks)

    def __repr__(self) -> str:
        return f"NetworkSet({len(self.networks)} networks, {len(self._starts)} intervals)"
