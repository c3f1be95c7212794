"""Lookups per second of the address filter with 10,000 prefixes, against a linear scan.

    uv run python -m bench.ipranges [--prefixes 10000] [--seconds 2]

Both run in the same process on the same addresses (a third inside the set, a third outside,
a third IPv4-mapped IPv6), and must agree on every answer. The linear scan is what the filter
would be without the interval index: `ip_address(a) in net` for each network in turn.
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import time
from collections.abc import Callable

from pushsync.web.access.ipranges import snapshot
from pushsync.web.access.networks import Network, NetworkSet


def prefixes(count: int, rng: random.Random) -> list[Network]:
    ranges = snapshot("Worldwide")
    networks: list[Network] = list(ranges.networks) if ranges else []
    while len(networks) < count:
        if rng.random() < 0.6:
            networks.append(ipaddress.ip_network((rng.getrandbits(32), rng.randint(12, 32)), False))
        else:
            networks.append(
                ipaddress.ip_network((rng.getrandbits(128), rng.randint(20, 64)), False)
            )
    return networks


def addresses(networks: list[Network], count: int, rng: random.Random) -> list[str]:
    out = []
    for i in range(count):
        if i % 3 == 0:  # inside a random network
            net = rng.choice(networks)
            host = int(net.network_address) + rng.randrange(net.num_addresses)
            out.append(str(ipaddress.ip_address(host)))
        elif i % 3 == 1:  # anywhere (nearly always outside)
            out.append(str(ipaddress.ip_address(rng.getrandbits(32))))
        else:  # an IPv4 peer seen by a dual-stack socket
            out.append(f"::ffff:{ipaddress.ip_address(rng.getrandbits(32))}")
    return out


def linear_scan(networks: list[Network]) -> Callable[[str], bool]:
    def contains(text: str) -> bool:
        address = ipaddress.ip_address(text)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in networks)

    return contains


def rate(lookup: Callable[[str], bool], sample: list[str], seconds: float) -> tuple[float, int]:
    done, hits, started = 0, 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for address in sample:
            hits += lookup(address)
        done += len(sample)
    return done / (time.perf_counter() - started), hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefixes", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    rng = random.Random(2026)
    networks = prefixes(args.prefixes, rng)
    sample = addresses(networks, 3000, rng)
    fast = NetworkSet(networks)
    naive = linear_scan(networks)
    disagree = [a for a in sample[:300] if (a in fast) != naive(a)]
    assert not disagree, f"index and scan disagree on {disagree[:5]}"

    fast_rate, _ = rate(fast.__contains__, sample, args.seconds)
    naive_rate, _ = rate(naive, sample[:300], args.seconds)
    print(f"prefixes: {len(networks)} ({fast!r})")
    print(f"NetworkSet (bisect over merged intervals): {fast_rate:12,.0f} lookups/s")
    print(f"naive linear scan (ipaddress):             {naive_rate:12,.0f} lookups/s")
    print(f"speed-up: {fast_rate / naive_rate:,.0f}x")


if __name__ == "__main__":
    main()
