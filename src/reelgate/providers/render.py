"""Render short, playable H.264 MP4s for the sandbox provider: the prompt over moving frames.

Pure functions over files, with PyAV (FFmpeg) for encoding and Pillow for drawing.
"""

from __future__ import annotations

import io
import os
import tempfile
import textwrap
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

MAX_PROMPT_CHARS = 240


@dataclass(frozen=True, slots=True)
class VideoInfo:
    width: int
    height: int
    duration_s: float
    frames: int
    codec: str


def _cover(img: Image.Image, width: int, height: int) -> Image.Image:
    """Scale ``img`` to cover width x height, then crop the centre."""
    scale = max(width / img.width, height / img.height)
    size = (max(width, round(img.width * scale)), max(height, round(img.height * scale)))
    img = img.resize(size, Image.Resampling.BILINEAR)
    left, top = (img.width - width) // 2, (img.height - height) // 2
    return img.crop((left, top, left + width, top + height))


def _background(width: int, height: int, first_frame: bytes | None) -> Image.Image:
    if first_frame is not None:
        try:
            with Image.open(io.BytesIO(first_frame)) as img:
                return _cover(img.convert("RGB"), width, height)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise ValueError(f"the input image cannot be decoded: {exc}") from None
    # A vertical gradient, wider than the frame so it can slide.
    grad = Image.linear_gradient("L").resize((width * 2, height))
    blue = Image.new("RGB", (width * 2, height), (20, 40, 90))
    teal = Image.new("RGB", (width * 2, height), (30, 140, 150))
    return Image.composite(teal, blue, grad)


def _caption(
    prompt: str, width: int, height: int
) -> tuple[Image.Image, ImageFont.ImageFont | ImageFont.FreeTypeFont]:
    """The prompt, wrapped, on a transparent layer the size of the frame."""
    size = max(10, height // 18)
    font = ImageFont.load_default(size=size)
    text = prompt if len(prompt) <= MAX_PROMPT_CHARS else prompt[: MAX_PROMPT_CHARS - 1] + "…"
    per_line = max(8, int(width / (size * 0.55)))
    lines = textwrap.wrap(text, per_line)[: max(1, (height // 2) // (size + 4))]
    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    block = len(lines) * (size + 4)
    top = height - block - height // 10
    draw.rectangle((0, top - 6, width, top + block + 6), fill=(0, 0, 0, 140))
    for i, line in enumerate(lines):
        draw.text((width // 20, top + i * (size + 4)), line, font=font, fill=(255, 255, 255, 255))
    return layer, font


def render_video(
    out_path: Path,
    *,
    prompt: str,
    duration_s: int,
    width: int,
    height: int,
    fps: int = 24,
    first_frame: bytes | None = None,
    last_frame_path: Path | None = None,
) -> None:
    """Write a ``duration_s`` second H.264 MP4 of ``width`` x ``height`` (both even) atomically."""
    if width % 2 or height % 2 or width < 2 or height < 2:
        raise ValueError("width and height must be positive even numbers")
    if duration_s < 1 or fps < 1:
        raise ValueError("duration and fps must be positive")
    background = _background(width, height, first_frame)
    caption, font = _caption(prompt, width, height)
    frames = duration_s * fps
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".render-", suffix=".mp4", dir=out_path.parent)
    os.close(fd)
    last: Image.Image | None = None
    try:
        with av.open(
            tmp_name, mode="w", format="mp4", options={"movflags": "+faststart"}
        ) as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height = width, height
            stream.pix_fmt = "yuv420p"
            stream.time_base = Fraction(1, fps)
            stream.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": "28"}
            for n in range(frames):
                t = n / max(1, frames - 1)
                if first_frame is None:
                    offset = int(t * width)
                    frame = background.crop((offset, 0, offset + width, height))
                else:
                    zoom = 1.0 + 0.15 * t
                    cw, ch = int(width / zoom) // 2 * 2, int(height / zoom) // 2 * 2
                    left, top = (width - cw) // 2, (height - ch) // 2
                    frame = background.crop((left, top, left + cw, top + ch)).resize(
                        (width, height), Image.Resampling.BILINEAR
                    )
                frame = frame.convert("RGBA")
                draw = ImageDraw.Draw(frame)
                r = max(4, height // 12)
                cx = int(r + t * (width - 2 * r))
                cy = int(height // 4)
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(250, 200, 40, 255))
                draw.text(
                    (width // 20, height // 20),
                    f"{n / fps:05.2f}s",
                    font=font,
                    fill=(255, 255, 255, 255),
                )
                frame = Image.alpha_composite(frame, caption).convert("RGB")
                # PyAV ships no annotations for from_image.
                video_frame = av.VideoFrame.from_image(frame)  # type: ignore[no-untyped-call]
                video_frame.pts = n
                for packet in stream.encode(video_frame):
                    container.mux(packet)
                last = frame
            for packet in stream.encode(None):
                container.mux(packet)
        if last_frame_path is not None and last is not None:
            tmp_png = last_frame_path.with_name(f".{last_frame_path.name}.tmp")
            last.save(tmp_png, format="PNG")
            os.replace(tmp_png, last_frame_path)
        os.replace(tmp_name, out_path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def probe_video(path: Path) -> VideoInfo:
    """Width, height, duration, frame count and codec, by demuxing and decoding ``path``."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        rate = float(stream.average_rate or 24)
        return VideoInfo(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            duration_s=frames / rate,
            frames=frames,
            codec=stream.codec_context.name,
        )
