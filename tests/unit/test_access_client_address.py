"""The client behind trusted proxies: right-most untrusted address, spoofing ignored."""

from __future__ import annotations

from pushsync.web.access.client_address import ClientAddress
from pushsync.web.access.networks import NetworkSet

PROXIES = NetworkSet.parse(["10.0.0.0/8", "fd00::/8"])
XFF = ClientAddress(PROXIES)
FORWARDED = ClientAddress(PROXIES, "forwarded")


def h(name: str, value: str) -> tuple[bytes, bytes]:
    return name.encode(), value.encode()


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    resolver = ClientAddress(NetworkSet())
    assert resolver.resolve("203.0.113.9", [h("x-forwarded-for", "40.92.0.1")]) == "203.0.113.9"


def test_trusted_proxy_with_a_good_client() -> None:
    assert XFF.resolve("10.0.0.2", [h("x-forwarded-for", "40.92.0.1")]) == "40.92.0.1"


def test_untrusted_peer_with_a_spoofed_header_changes_nothing() -> None:
    assert XFF.resolve("198.51.100.7", [h("x-forwarded-for", "40.92.0.1")]) == "198.51.100.7"


def test_right_most_untrusted_wins_over_forged_left_entries() -> None:
    # the client wrote "40.92.0.1" itself; our proxies appended what they saw
    headers = [h("x-forwarded-for", "40.92.0.1, 198.51.100.7, 10.0.0.9")]
    assert XFF.resolve("10.0.0.2", headers) == "198.51.100.7"


def test_repeated_headers_are_one_list_in_order() -> None:
    headers = [h("x-forwarded-for", "40.92.0.1"), h("x-forwarded-for", "198.51.100.7")]
    assert XFF.resolve("10.0.0.2", headers) == "198.51.100.7"


def test_only_proxies_in_the_chain_gives_the_left_most() -> None:
    assert XFF.resolve("10.0.0.2", [h("x-forwarded-for", "10.1.1.1, 10.2.2.2")]) == "10.1.1.1"


def test_trusted_proxy_without_header_is_the_client() -> None:
    assert XFF.resolve("10.0.0.2", []) == "10.0.0.2"


def test_garbage_entry_is_returned_bounded_and_matches_nothing() -> None:
    client = XFF.resolve("10.0.0.2", [h("x-forwarded-for", "x" * 300)])
    assert client == "x" * 64


def test_forwarded_header_with_ports_and_ipv6() -> None:
    value = 'for=40.92.0.1;proto=https, for="[2603:1006::5]:4711";by=10.0.0.2'
    assert FORWARDED.resolve("fd00::1", [h("forwarded", value)]) == "2603:1006::5"
    assert FORWARDED.resolve("10.0.0.2", [h("forwarded", 'For="40.92.0.9:1234"')]) == "40.92.0.9"


def test_only_the_configured_header_is_read() -> None:
    headers = [h("forwarded", "for=40.92.0.1"), h("x-forwarded-for", "198.51.100.7")]
    assert XFF.resolve("10.0.0.2", headers) == "198.51.100.7"
    assert FORWARDED.resolve("10.0.0.2", headers) == "40.92.0.1"


def test_ipv4_mapped_proxy_peer_is_trusted() -> None:
    assert XFF.resolve("::ffff:10.0.0.2", [h("x-forwarded-for", "40.92.0.1")]) == "40.92.0.1"
