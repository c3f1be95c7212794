"""Network sets: membership, IPv6, IPv4-mapped IPv6, merging, junk input."""

from __future__ import annotations

import ipaddress
import random

import pytest

from pushsync.web.access.networks import NetworkSet, address_key

EXCHANGE = NetworkSet.parse(
    ["40.92.0.0/15", "52.96.0.0/14", "2603:1006::/40", "2a01:111:f400::/48"]
)


@pytest.mark.parametrize(
    "address",
    ["40.92.0.1", "40.93.255.255", "52.99.1.2", "2603:1006::5", "2a01:111:f400:7c00::1"],
)
def test_addresses_inside_the_ranges_are_allowed(address: str) -> None:
    assert address in EXCHANGE


@pytest.mark.parametrize(
    "address", ["40.91.255.255", "40.94.0.0", "8.8.8.8", "2603:1007::1", "::1", "127.0.0.1"]
)
def test_addresses_outside_are_denied(address: str) -> None:
    assert address not in EXCHANGE


def test_ipv4_mapped_ipv6_matches_the_ipv4_network() -> None:
    assert "::ffff:40.92.1.1" in EXCHANGE
    assert "::ffff:8.8.8.8" not in EXCHANGE
    assert "::FFFF:285c:101" in EXCHANGE  # the same address written in hex


def test_an_ipv6_network_does_not_swallow_ipv4_by_accident() -> None:
    v6_only = NetworkSet.parse(["2001:db8::/32"])
    assert "192.0.2.1" not in v6_only


@pytest.mark.parametrize(
    "junk",
    ["", "localhost", "1.2.3", "010.1.1.1", "1.2.3.4.5", "::g", "1.2.3.4/24", "x" * 500, None],
)
def test_junk_is_never_a_member_and_never_raises(junk: object) -> None:
    everything = NetworkSet.parse(["0.0.0.0/0", "::/0"])
    assert junk not in everything


def test_zone_id_is_ignored() -> None:
    assert "fe80::1%eth0" in NetworkSet.parse(["fe80::/10"])


def test_adjacent_and_nested_networks_merge_without_changing_membership() -> None:
    nets = NetworkSet.parse(["10.0.0.0/25", "10.0.0.128/25", "10.0.0.0/8", "10.1.0.0/16"])
    assert repr(nets).endswith("1 intervals)")
    assert "10.255.255.255" in nets and "11.0.0.0" not in nets


def test_bare_addresses_are_single_hosts() -> None:
    nets = NetworkSet.parse(["127.0.0.1", "::1"])
    assert "127.0.0.1" in nets and "127.0.0.2" not in nets and "::1" in nets


def test_host_bits_set_is_an_error() -> None:
    with pytest.raises(ValueError):
        NetworkSet.parse(["10.0.0.1/8"])


def test_agrees_with_ipaddress_on_random_prefixes_and_addresses() -> None:
    rng = random.Random(7)
    networks = []
    for _ in range(2000):
        if rng.random() < 0.5:
            length = rng.randint(8, 32)
            networks.append(ipaddress.ip_network((rng.getrandbits(32), length), strict=False))
        else:
            length = rng.randint(16, 128)
            networks.append(ipaddress.ip_network((rng.getrandbits(128), length), strict=False))
    fast = NetworkSet(networks)
    for _ in range(1000):
        if rng.random() < 0.5:
            address = ipaddress.ip_address(rng.getrandbits(32))
        else:
            address = ipaddress.ip_address(rng.getrandbits(128))
        expected = any(address in n for n in networks if n.version == address.version)
        assert (str(address) in fast) is expected, address


def test_address_key_places_ipv4_in_the_mapped_range() -> None:
    assert address_key("0.0.0.1") == address_key("::ffff:0.0.0.1") == (0xFFFF << 32) | 1
