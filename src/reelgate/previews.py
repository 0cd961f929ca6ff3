"""Still images made from a stored video: a thumbnail (WEBP) and a spritesheet (a JPEG grid).

Frames are decoded with PyAV; a video is read once, sequentially, whatever its length.
"""

from __future__ import annotations

import io
from pathlib import Path

import av
from PIL import Image

THUMB_WIDTH = 640
SPRITE_COLUMNS = 3
SPRITE_ROWS = 3
SPRITE_WIDTH = 320


def _frames(path: Path, wanted: int) -> list[Image.Image]:
    """``wanted`` frames spread evenly over the video (fewer if it has fewer)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        total = stream.frames or 0
        if total <= 0:  # unknown count: decode all once to count them
            total = sum(1 for _ in container.decode(stream))
            container.seek(0)
        picks = {
            min(total - 1, round(i * total / wanted + total / (2 * wanted))) for i in range(wanted)
        }
        out: list[Image.Image] = []
        for index, frame in enumerate(container.decode(stream)):
            if index in picks:
                out.append(frame.to_image())  # type: ignore[no-untyped-call]
                if len(out) == len(picks):
                    break
        return out


def thumbnail(path: Path) -> bytes:
    """The middle frame as WEBP, at most ``THUMB_WIDTH`` wide."""
    frames = _frames(path, 1)
    if not frames:
        raise ValueError("the video has no frames")
    image = frames[0]
    image.thumbnail((THUMB_WIDTH, THUMB_WIDTH * 4))
    buf = io.BytesIO()
    image.save(buf, format="WEBP", quality=80)
    return buf.getvalue()


def spritesheet(path: Path) -> bytes:
    """Nine frames spread over the video, in a 3 by 3 JPEG grid."""
    frames = _frames(path, SPRITE_COLUMNS * SPRITE_ROWS)
    if not frames:
        raise ValueError("the video has no frames")
    width = SPRITE_WIDTH
    height = max(1, round(frames[0].height * width / frames[0].width))
    sheet = Image.new("RGB", (width * SPRITE_COLUMNS, height * SPRITE_ROWS))
    for i, frame in enumerate(frames):
        tile = frame.convert("RGB").resize((width, height))
        sheet.paste(tile, ((i % SPRITE_COLUMNS) * width, (i // SPRITE_COLUMNS) * height))
    buf = io.BytesIO()
    sheet.save(buf, format="JPEG", quality=80)
    return buf.getvalue()
