"""Outbound URLs pass the SSRF guard; input images given as data: URIs must decode to an image
of a size some model takes."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from urllib.parse import urlsplit

from PIL import Image, UnidentifiedImageError

from reelgate.core.errors import InvalidRequest
from reelgate.net import AddressGuard, Network, decode_data_uri

MAX_IMAGE_BYTES = 20 * 1024 * 1024
# The largest input image any model takes: Seedance's sides go up to 6000 px. An image whose
# header claims more is refused at create, from the header alone: its pixels are never decoded
# (a few kilobytes of PNG can claim gigabytes of them).
MAX_IMAGE_PIXELS = 6000 * 6000


async def check_image(allow: Sequence[Network], ref: str, param: str) -> None:
    """Refuse an image URL aimed at a private address, or data that is not an image."""
    if not ref.startswith("data:"):
        parts = urlsplit(ref)
        if not parts.hostname:
            raise InvalidRequest(f"'{param}' is not a valid URL", code="invalid_image", param=param)
        await _check(allow, parts.hostname, _port(parts.scheme, ref, param), param)
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
            # ``open`` read the header only: the size is known, no pixel decoded yet.
            width, height = img.size
            if width * height > MAX_IMAGE_PIXELS:
                raise _too_large(param, f"{width}x{height} pixels")
            img.verify()  # the file's structure and checksums, still without decoding pixels
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own bound (far above ours) when a warning filter turns it into an error.
        raise _too_large(param, "more pixels than Pillow opens") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise InvalidRequest(
            f"'{param}' is not a readable image (png, jpeg, webp, gif, bmp or tiff)",
            code="invalid_image",
            param=param,
        ) from None


def _too_large(param: str, size: str) -> InvalidRequest:
    return InvalidRequest(
        f"'{param}' is {size}; no model takes more than {MAX_IMAGE_PIXELS} pixels",
        code="image_too_large",
        param=param,
    )


async def check_url(allow: Sequence[Network], url: str, param: str) -> None:
    """Refuse a URL reelgate would call (a webhook) that resolves to a private address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(
            f"'{param}' must be an http(s) URL", code="invalid_parameter", param=param
        )
    await _check(allow, parts.hostname, _port(parts.scheme, url, param), param)


def _port(scheme: str, url: str, param: str) -> int:
    try:
        return urlsplit(url).port or (443 if scheme == "https" else 80)
    except ValueError:
        raise InvalidRequest(
            f"'{param}' has an invalid port", code="invalid_parameter", param=param
        ) from None


async def _check(allow: Sequence[Network], host: str, port: int, param: str) -> None:
    try:
        await AddressGuard(allow).check(host, port)
    except InvalidRequest as exc:
        exc.param = param
        raise
