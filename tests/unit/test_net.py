"""The SSRF policy: only globally routable unicast addresses, whatever ``ipaddress.is_global``
says, and every address a name resolves to, resolved once (an injected resolver: no real DNS)."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Sequence

import pytest

from reelgate.core.errors import InvalidRequest
from reelgate.net import AddressGuard, is_public

# Addresses that reach loopback, metadata services, private networks or multicast, or that are
# not routable at all. The ones marked * are ``is_global`` according to Python's ``ipaddress``.
REFUSED = [
    "0.0.0.0",  # noqa: S104 - an address to refuse, not one to bind
    "0.1.2.3",
    "10.1.2.3",
    "100.64.0.1",  # carrier-grade NAT
    "127.0.0.1",
    "127.255.255.254",
    "169.254.169.254",  # cloud metadata
    "172.16.0.1",
    "172.31.255.255",
    "192.0.0.8",
    "192.0.0.9",  # * (an IETF anycast service address)
    "192.0.2.1",
    "192.88.99.1",  # * deprecated 6to4 relays
    "192.168.1.1",
    "198.18.0.1",
    "198.19.255.255",
    "198.51.100.7",
    "203.0.113.9",
    "224.0.0.1",  # multicast
    "239.255.255.250",  # SSDP
    "240.0.0.1",
    "255.255.255.255",
    "::",
    "::1",
    "::127.0.0.1",  # * IPv4-compatible
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:169.254.169.254",
    "::ffff:8.8.8.8",  # mapped, even to a public address: never a real IPv6 destination
    "64:ff9b::a9fe:a9fe",  # * NAT64 to the metadata address
    "64:ff9b::808:808",  # * NAT64, even to a public one (a gateway's choice, not ours)
    "64:ff9b:1::7f00:1",  # * local-use NAT64
    "100::1",  # discard-only
    "100:0:0:1::1",  # * dummy prefix
    "2001::1",  # Teredo
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "2001:2::1",  # benchmarking
    "2001:10::1",  # ORCHID
    "2001:20::1",  # ORCHIDv2
    "2001:db8::1",  # documentation
    "2002:7f00:1::1",  # * 6to4 embedding 127.0.0.1
    "2002:a9fe:a9fe::1",  # * 6to4 embedding 169.254.169.254
    "2002:808:808::1",  # * 6to4 even to a public address (a relay's choice)
    "3fff::1",  # * documentation (RFC 9637)
    "5f00::1",  # * SRv6 SIDs
    "fc00::1",
    "fd00:ec2::254",  # AWS's IPv6 metadata address (unique local)
    "fe80::1",
    "fe80::1%1",
    "fec0::1",  # * site-local (deprecated)
    "ff02::1",  # multicast
    "ff0e::1",
    "4000::1",  # * outside 2000::/3: not allocated
]
PUBLIC = [
    "1.1.1.1",
    "8.8.8.8",
    "1.2.3.4",
    "100.63.255.255",
    "100.128.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "192.0.1.1",
    "192.175.48.1",  # AS112: globally reachable
    "198.17.255.255",
    "223.255.255.255",
    "2606:4700:4700::1111",
    "2a00:1450:4001::200e",
    "2001:4860:4860::8888",
    "2620:4f:8000::1",  # AS112
]


@pytest.mark.parametrize("text", REFUSED)
def test_addresses_outside_the_global_unicast_space_are_refused(text: str) -> None:
    assert not is_public(ipaddress.ip_address(text))
    assert not AddressGuard().permits(ipaddress.ip_address(text))


@pytest.mark.parametrize("text", PUBLIC)
def test_global_unicast_addresses_are_reachable(text: str) -> None:
    assert is_public(ipaddress.ip_address(text))


def test_the_policy_is_stricter_than_is_global() -> None:
    # What the issue found: ``is_global`` lets these through; the policy must not.
    for text in ("::127.0.0.1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::1", "192.0.0.9", "3fff::1"):
        assert ipaddress.ip_address(text).is_global
        assert not is_public(ipaddress.ip_address(text))


def test_the_allowlist_opens_exactly_its_networks() -> None:
    guard = AddressGuard([ipaddress.ip_network("127.0.0.0/8")])
    assert guard.permits(ipaddress.ip_address("127.0.0.1"))
    # Another spelling of loopback is not inside an IPv4 allowlist entry.
    assert not guard.permits(ipaddress.ip_address("::ffff:127.0.0.1"))
    assert not guard.permits(ipaddress.ip_address("10.0.0.1"))


class Answers:
    """A resolver that answers from a table and counts its look-ups."""

    def __init__(self, **table: Sequence[str]) -> None:
        self.table = {k.replace("_", "."): v for k, v in table.items()}
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        if host not in self.table:
            raise OSError("no such host")
        return self.table[host]


def addresses(guard: AddressGuard, host: str) -> list[str]:
    return [str(a) for a in asyncio.run(guard.addresses(host, 443))]


def refused(guard: AddressGuard, host: str) -> str:
    with pytest.raises(InvalidRequest) as err:
        asyncio.run(guard.addresses(host, 443))
    return err.value.code


def test_every_address_of_a_name_must_be_public() -> None:
    resolver = Answers(
        cdn_test=["1.2.3.4", "2606:4700::1"],
        mixed_test=["1.2.3.4", "127.0.0.1"],  # one public, one loopback: not used at all
        mapped_test=["::ffff:10.0.0.1"],
        empty_test=[],
        garbage_test=["not an address"],
    )
    guard = AddressGuard(resolver=resolver)
    assert addresses(guard, "cdn.test") == ["1.2.3.4", "2606:4700::1"]
    assert refused(guard, "mixed.test") == "url_not_allowed"
    assert refused(guard, "mapped.test") == "url_not_allowed"
    assert refused(guard, "empty.test") == "url_unreachable"
    assert refused(guard, "garbage.test") == "url_unreachable"
    assert refused(guard, "unknown.test") == "url_unreachable"


def test_literal_addresses_are_checked_without_resolving() -> None:
    resolver = Answers()
    guard = AddressGuard(resolver=resolver)
    assert addresses(guard, "8.8.8.8") == ["8.8.8.8"]
    assert addresses(guard, "[2606:4700::1]") == ["2606:4700::1"]
    assert refused(guard, "169.254.169.254") == "url_not_allowed"
    assert refused(guard, "::ffff:169.254.169.254") == "url_not_allowed"
    assert resolver.asked == []


def test_the_system_resolver_reads_other_spellings_as_the_address_they_mean() -> None:
    # ``127.1`` and ``2130706433`` are loopback to the C library: refused as such.
    guard = AddressGuard()
    assert refused(guard, "127.1") == "url_not_allowed"
    assert refused(guard, "2130706433") == "url_not_allowed"
    assert refused(guard, "localhost") == "url_not_allowed"
