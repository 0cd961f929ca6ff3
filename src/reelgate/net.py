"""Outbound fetches of user-supplied URLs, guarded against SSRF, and data: URI decoding.

A URL is fetched only when every address its host resolves to is public (or inside an explicit
allowlist); redirects are followed by hand so each hop is checked again.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urljoin, urlsplit

import httpx

from reelgate.core.errors import InvalidRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_REDIRECTS = 3


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


async def check_host(host: str, port: int, allow: Sequence[Network]) -> None:
    """Raise unless every address of ``host`` is public or explicitly allowed."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise InvalidRequest(f"cannot resolve host '{host}'", code="url_unreachable") from None
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if any(addr in net for net in allow):
            continue
        if not addr.is_global:
            raise InvalidRequest(
                f"URLs pointing at private, loopback or link-local addresses are refused ({host})",
                code="url_not_allowed",
            )


async def fetch_url(
    url: str,
    *,
    max_bytes: int,
    allow: Sequence[Network] = (),
    timeout_s: float = 15.0,
) -> bytes:
    """GET ``url`` with the SSRF guard, refusing bodies larger than ``max_bytes``."""
    async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise InvalidRequest("only http(s) URLs can be fetched", code="url_not_allowed")
            await check_host(
                parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), allow
            )
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
            except httpx.HTTPError as exc:
                raise InvalidRequest(
                    f"cannot fetch {parts.hostname}: {type(exc).__name__}",
                    code="url_unreachable",
                ) from None
    raise InvalidRequest("too many redirects", code="url_unreachable")
