"""Outbound connections to user-supplied URLs, guarded against SSRF, and data: URI decoding.

The policy (``is_public``): an address is reachable only when it is globally routable unicast —
outside every block of IANA's IPv4 and IPv6 special-purpose registries, multicast and the reserved
space — or inside an explicit allowlist (``REELGATE_ALLOW_PRIVATE_NETWORKS``). IPv6 must lie in
the global unicast space 2000::/3, which leaves out loopback, IPv4-mapped and -compatible forms,
NAT64 (64:ff9b::/96, 64:ff9b:1::/48), discard, unique-local, link- and site-local and multicast;
inside it, 6to4 (2002::/16), Teredo and the rest of 2001::/23, and documentation are refused too,
so that no tunnel or translator can carry a request to an address the policy refuses.

Pinning (``AddressGuard.transport``): a host is resolved once, every address it resolves to is
checked, and the connection is made to one of those very addresses (TLS keeps the host name for
SNI and the certificate check, the request its ``Host``). There is no second resolution a DNS
answer could change in between (DNS rebinding), and each redirect hop is a new check.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from reelgate.core.errors import InvalidRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# ``(host, port)`` → the addresses it resolves to (injectable: tests answer without real DNS).
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
MAX_REDIRECTS = 3


def _nets(*cidrs: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


# IANA IPv4 Special-Purpose Address Registry (entries not globally reachable), multicast and the
# reserved 240/4 (with the limited broadcast address).
REFUSED_V4 = _nets(
    "0.0.0.0/8",  # "this network"
    "10.0.0.0/8",  # private
    "100.64.0.0/10",  # shared address space (carrier-grade NAT)
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local (cloud metadata: 169.254.169.254)
    "172.16.0.0/12",  # private
    "192.0.0.0/24",  # IETF protocol assignments (incl. its anycast service addresses)
    "192.0.2.0/24",  # documentation (TEST-NET-1)
    "192.88.99.0/24",  # deprecated 6to4 relay anycast
    "192.168.0.0/16",  # private
    "198.18.0.0/15",  # benchmarking
    "198.51.100.0/24",  # documentation (TEST-NET-2)
    "203.0.113.0/24",  # documentation (TEST-NET-3)
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved, and 255.255.255.255 (limited broadcast)
)
GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
# Inside 2000::/3: the IANA IPv6 Special-Purpose Address Registry's blocks.
REFUSED_V6 = _nets(
    "2001::/23",  # IETF protocol assignments: Teredo 2001::/32, benchmarking, ORCHID(v2), …
    "2001:db8::/32",  # documentation
    "2002::/16",  # 6to4: its embedded IPv4 address could be anything
    "3fff::/20",  # documentation
)


def is_public(address: Address) -> bool:
    """True when ``address`` is globally routable unicast (see the module docstring)."""
    if isinstance(address, ipaddress.IPv4Address):
        return not any(address in net for net in REFUSED_V4)
    if address not in GLOBAL_UNICAST_V6:
        return False
    return not any(address in net for net in REFUSED_V6)


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """The operating system's answer for ``host`` (``getaddrinfo``)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


@dataclass(frozen=True)
class AddressGuard:
    """Where reelgate may connect for a user-supplied URL: public addresses and ``allow``."""

    allow: Sequence[Network] = ()
    resolver: Resolver = system_resolver

    def permits(self, address: Address) -> bool:
        return any(address in net for net in self.allow) or is_public(address)

    async def addresses(self, host: str, port: int) -> list[Address]:
        """Resolve ``host`` once; every address it names must be permitted (else the URL is
        refused: a name that answers one public and one private address is not used at all)."""
        literal = _literal(host)
        if literal is not None:
            found = [literal]
        else:
            try:
                answers = await self.resolver(host, port)
                found = list(dict.fromkeys(ipaddress.ip_address(a) for a in answers))
            except (OSError, ValueError, UnicodeError):
                found = []
            if not found:
                raise InvalidRequest(f"cannot resolve host '{host}'", code="url_unreachable")
        if not all(self.permits(a) for a in found):
            raise InvalidRequest(
                "URLs pointing at private, loopback, link-local or other non-public addresses "
                f"are refused ({host})",
                code="url_not_allowed",
            )
        return found

    async def check(self, host: str, port: int) -> None:
        """Raise unless every address of ``host`` is permitted (a URL checked, not fetched)."""
        await self.addresses(host, port)

    def transport(self, **options: Any) -> httpx.AsyncBaseTransport:
        """An httpx transport whose every connection goes to an address this guard checked."""
        return _PinnedTransport(self, **options)


async def check_host(host: str, port: int, allow: Sequence[Network]) -> None:
    """Raise unless every address of ``host`` is public or explicitly allowed."""
    await AddressGuard(allow).check(host, port)


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network I/O, connecting only to addresses the guard resolved and checked."""

    def __init__(self, guard: AddressGuard) -> None:
        self._guard = guard
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface, not ours
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if not 0 < port < 65536:
            raise httpcore.ConnectError(f"port {port} is out of range")
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._guard.addresses(host, port)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} took too long") from None
        failure: Exception | None = None
        for address in addresses:  # the next one only when this one cannot be reached
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface, not ours
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are not reached for user-supplied URLs")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport over ``_PinnedBackend``; never through a proxy from the environment
    (a proxy would resolve the host itself, after the check)."""

    def __init__(
        self,
        guard: AddressGuard,
        *,
        verify: Any = True,
        limits: httpx.Limits | None = None,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        super().__init__(verify=verify, trust_env=False, limits=limits)
        # httpx 0.28 takes no network backend; its pool is replaced by the same pool over ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_PinnedBackend(guard),
        )


def guarded_client(guard: AddressGuard, **options: Any) -> httpx.AsyncClient:
    """An httpx client for user-supplied URLs: pinned connections, redirects never followed by
    httpx itself (the caller follows them by hand, each hop through the guard again)."""
    transport = options.pop("transport", None) or guard.transport()
    return httpx.AsyncClient(
        transport=transport, follow_redirects=False, trust_env=False, **options
    )


def decode_data_uri(uri: str, *, param: str = "image") -> bytes:
    """The bytes of a ``data:[mime][;base64],payload`` URI."""
    head, sep, payload = uri.partition(",")
    if not uri.startswith("data:") or not sep:
        raise InvalidRequest(
            f"'{param}' is not a valid data: URI", code="invalid_image", param=param
        )
    if head.endswith(";base64"):
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest(
                f"'{param}' holds invalid base64", code="invalid_image", param=param
            ) from None
    return payload.encode()


async def fetch_url(
    url: str,
    *,
    max_bytes: int,
    allow: Sequence[Network] = (),
    timeout_s: float = 15.0,
    resolver: Resolver = system_resolver,
) -> bytes:
    """GET ``url`` with the SSRF guard, refusing bodies larger than ``max_bytes``."""
    guard = AddressGuard(allow, resolver)
    async with guarded_client(guard, timeout=timeout_s) as client:
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise InvalidRequest("only http(s) URLs can be fetched", code="url_not_allowed")
            try:
                async with client.stream("GET", url) as resp:
                    if resp.is_redirect and "location" in resp.headers:
                        url = urljoin(url, resp.headers["location"])
                        continue
                    if resp.status_code != 200:
                        raise InvalidRequest(
                            f"fetching {parts.hostname} answered HTTP {resp.status_code}",
                            code="url_unreachable",
                        )
                    body = bytearray()
                    async for chunk in resp.aiter_bytes():
                        body += chunk
                        if len(body) > max_bytes:
                            raise InvalidRequest(
                                f"the file at {parts.hostname} is larger than {max_bytes} bytes",
                                code="payload_too_large",
                            )
                    return bytes(body)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise InvalidRequest(
                    f"cannot fetch {parts.hostname}: {type(exc).__name__}",
                    code="url_unreachable",
                ) from None
    raise InvalidRequest("too many redirects", code="url_unreachable")
