"""Input images given as data: URIs: an image whose header claims more pixels than any model
takes is refused from the header alone, before a single pixel is decoded."""

from __future__ import annotations

import asyncio
import base64
import io
import struct
import zlib

import pytest
from PIL import Image

from reelgate.core.errors import InvalidRequest
from reelgate.service.images import MAX_IMAGE_PIXELS, check_image


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(width: int, height: int, idat: bytes) -> bytes:
    """A PNG that claims ``width`` by ``height`` RGB pixels, whatever its data holds."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def refused(data: bytes) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as err:
        asyncio.run(check_image((), data_uri(data), "image"))
    return err.value


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (6001, 6000),  # just past the largest any model takes
        (10_000, 10_000),  # past Pillow's warning bound (89 Mpx)
        (100_000, 100_000),  # past Pillow's error bound: a classic decompression bomb
    ],
)
def test_an_image_claiming_too_many_pixels_is_refused_from_its_header(
    width: int, height: int
) -> None:
    # The pixel data is garbage: decoding it would fail as invalid_image. The refusal says
    # image_too_large, so it came from the header, before any decoding.
    err = refused(png_header(width, height, b"not zlib at all"))
    assert (err.code, err.param, err.http_status) == ("image_too_large", "image", 400)
    assert str(MAX_IMAGE_PIXELS) in err.message


def test_an_image_within_the_limit_is_accepted_and_a_broken_one_refused() -> None:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), "teal").save(out, "PNG")
    asyncio.run(check_image((), data_uri(out.getvalue()), "image"))
    broken = png_header(64, 48, b"x")
    broken = broken.replace(broken[-20:-12], b"\x00" * 8)  # a bad checksum on the data
    assert refused(broken).code == "invalid_image"
