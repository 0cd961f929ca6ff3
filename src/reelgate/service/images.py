"""Outbound URLs pass the SSRF guard; input images given as data: URIs must decode to an image."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from urllib.parse import urlsplit

from PIL import Image, UnidentifiedImageError

from reelgate.core.errors import InvalidRequest
from reelgate.net import Network, check_host, decode_data_uri

MAX_IMAGE_BYTES = 20 * 1024 * 1024


async def check_image(allow: Sequence[Network], ref: str, param: str) -> None:
    """Refuse an image URL aimed at a private address, or data that is not an image."""
    if not ref.startswith("data:"):
        parts = urlsplit(ref)
        if not parts.hostname:
            raise InvalidRequest(f"'{param}' is not a valid URL", code="invalid_image", param=param)
        await check_host(
            parts.hostname,
            parts.port or (443 if parts.scheme == "https" else 80),
            allow,
        )
        return
    data = decode_data_uri(ref, param=param)
    if len(data) > MAX_IMAGE_BYTES:
        raise InvalidRequest(
            f"'{param}' is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB",
            code="invalid_image",
            param=param,
        )
    await asyncio.to_thread(_verify_image, data, param)


def _verify_image(data: bytes, param: str) -> None:
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError):
        raise InvalidRequest(
            f"'{param}' is not a readable image (png, jpeg, webp, gif, bmp or tiff)",
            code="invalid_image",
            param=param,
        ) from None


async def check_url(allow: Sequence[Network], url: str, param: str) -> None:
    """Refuse a URL reelgate would call (a webhook) that resolves to a private address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(
            f"'{param}' must be an http(s) URL", code="invalid_parameter", param=param
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise InvalidRequest(
            f"'{param}' has an invalid port", code="invalid_parameter", param=param
        ) from None
    try:
        await check_host(parts.hostname, port, allow)
    except InvalidRequest as exc:
        exc.param = param
        raise
