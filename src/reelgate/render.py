"""Real, small MP4 renders for the local "sandbox" provider: the prompt drawn over moving frames.

Encodes browser-playable H.264 with PyAV (FFmpeg) and draws with Pillow; ``probe_video`` reads
a video back so tests can check what was produced.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import pathlib
import tempfile
import unicodedata
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction

import av
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

__all__ = [
    "MAX_DURATION_S",
    "MAX_FPS",
    "MAX_SIDE",
    "MIN_DURATION_S",
    "MIN_FPS",
    "MIN_SIDE",
    "VideoInfo",
    "probe_video",
    "render_video",
]

MIN_DURATION_S = 1
MAX_DURATION_S = 15
MIN_SIDE = 64
MAX_SIDE = 1920
MIN_FPS = 1
MAX_FPS = 60

# Only a few lines of the prompt are ever shown, so longer prompts are cut before wrapping.
_MAX_PROMPT_CHARS = 600
_ELLIPSIS = "\u2026"
# A first_frame larger than this many pixels is refused rather than decoded.
_MAX_SOURCE_PIXELS = 50_000_000
# How far the image-to-video background has zoomed in by the last frame.
_I2V_ZOOM = 1.12
# AVCOL_* values from libavutil/pixfmt.h. Frames are converted with the BT.709 matrix to limited
# range (see _to_yuv) and the stream is tagged to match, so players show the intended colours.
_AVCOL_BT709 = 1
_AVCOL_RANGE_MPEG = 1

_Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
_RGB = tuple[int, int, int]
_WHITE: _RGB = (255, 255, 255)


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """What :func:`probe_video` found in a file's first video stream."""

    width: int
    height: int
    duration_s: float
    frames: int
    codec: str


def render_video(
    out_path: pathlib.Path,
    *,
    prompt: str,
    duration_s: int,
    width: int,
    height: int,
    fps: int = 24,
    first_frame: bytes | None = None,
    last_frame_path: pathlib.Path | None = None,
) -> None:
    """Render ``duration_s * fps`` frames showing ``prompt`` into an H.264 MP4 at ``out_path``.

    ``width`` and ``height`` must be even (yuv420p needs it; rounding is the caller's job) and
    within ``MIN_SIDE..MAX_SIDE``; ``duration_s`` within ``MIN_DURATION_S..MAX_DURATION_S``;
    ``fps`` within ``MIN_FPS..MAX_FPS``.

    ``first_frame`` is an encoded image in any format Pillow reads. It is cover-fitted to the
    frame, shown unchanged (under the overlays) on frame 0, then slowly zoomed and panned.
    If ``last_frame_path`` is given, the final frame is also written there as a PNG.

    Both files are written to temporary files beside their targets and moved into place only
    once complete, so a failed render never leaves a partial file behind. Missing parent
    directories are created. Blocking and CPU-bound: run it in a worker thread from async code.

    Raises:
        ValueError: an argument is out of range, or ``first_frame`` is not a decodable image.
        OSError: the files cannot be written (a full disk, a directory that is gone); nothing
            is left behind, and the same call may succeed later.
    """
    _check_int("duration_s", duration_s, MIN_DURATION_S, MAX_DURATION_S)
    _check_int("fps", fps, MIN_FPS, MAX_FPS)
    for name, side in (("width", width), ("height", height)):
        _check_int(name, side, MIN_SIDE, MAX_SIDE)
        if side % 2:
            raise ValueError(f"{name} must be even (H.264 yuv420p needs it), got {side}")
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
    zoom_size = (math.ceil(width * _I2V_ZOOM), math.ceil(height * _I2V_ZOOM))
    source = None if first_frame is None else _decode_image(first_frame, zoom_size)

    scene = _Scene(prompt, width, height, fps, duration_s * fps, source)
    out_path = pathlib.Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with _staged(out_path) as tmp_video:
        last = _encode(tmp_video, scene)
        if last_frame_path is not None:
            # Written (and moved into place) before the MP4, which lands last of all.
            last_frame_path = pathlib.Path(last_frame_path)
            last_frame_path.parent.mkdir(parents=True, exist_ok=True)
            with _staged(last_frame_path) as tmp_png:
                last.save(tmp_png, format="PNG")


def probe_video(path: pathlib.Path) -> VideoInfo:
    """Describe the first video stream of ``path`` by demuxing it with PyAV.

    ``frames`` counts the stream's packets (one per frame for H.264 in MP4) and ``duration_s``
    is the stream's duration (else the span of its packet timestamps). The first frame is
    decoded, and ``width``/``height`` are what the decoder reports.

    Raises:
        ValueError: the file has no video stream, or no frame of it decodes.
        av.error.FFmpegError: the file cannot be opened or demuxed.
    """
    with av.open(str(path), mode="r") as container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream")
        stream = container.streams.video[0]
        size: tuple[int, int] | None = None
        frames = 0
        first_pts: int | None = None
        end_pts: int | None = None
        for packet in container.demux(stream):
            if packet.size == 0:  # demux ends with an empty packet that flushes the decoder
                continue
            frames += 1
            if packet.pts is not None:
                end = packet.pts + max(packet.duration or 0, 0)
                first_pts = packet.pts if first_pts is None else min(first_pts, packet.pts)
                end_pts = end if end_pts is None else max(end_pts, end)
            if size is None:
                for frame in packet.decode():
                    size = (frame.width, frame.height)
                    break
        if size is None:
            for frame in stream.decode(None):  # frames the decoder held back
                size = (frame.width, frame.height)
                break
        if size is None:
            raise ValueError(f"{path}: no frame of its video stream decodes")
        time_base = stream.time_base
        duration = 0.0
        if time_base is not None and stream.duration is not None:
            duration = float(stream.duration * time_base)
        elif time_base is not None and first_pts is not None and end_pts is not None:
            duration = float((end_pts - first_pts) * time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        return VideoInfo(
            width=size[0],
            height=size[1],
            duration_s=duration,
            frames=frames,
            codec=stream.codec_context.name,
        )


# -- internals --------------------------------------------------------------------------------


def _check_int(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")


def _decode_image(data: bytes, size_hint: tuple[int, int]) -> Image.Image:
    """Decode an encoded image to RGB: EXIF orientation applied, alpha flattened onto black.

    ``size_hint`` lets a JPEG decode at a reduced scale that still covers that size.
    """
    if not data:
        raise ValueError("first_frame is empty; expected an encoded image (png, jpeg, webp...)")
    try:
        opened = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ValueError(f"first_frame is too large to decode: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _not_an_image(exc) from exc
    with opened:
        if opened.width * opened.height > _MAX_SOURCE_PIXELS:
            raise ValueError(
                f"first_frame is {opened.width}x{opened.height}, larger than the "
                f"{_MAX_SOURCE_PIXELS} pixels accepted"
            )
        try:
            if opened.format == "JPEG":
                opened.draft("RGB", size_hint)
            opened.load()
            image = ImageOps.exif_transpose(opened)
            if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
                rgba = image.convert("RGBA")
                flat = Image.new("RGB", rgba.size, (0, 0, 0))
                flat.paste(rgba, mask=rgba.getchannel("A"))
                return flat
            return image.convert("RGB")
        except (OSError, SyntaxError, ValueError, EOFError, TypeError) as exc:
            # Truncated or corrupt data shows up only when the pixels are decoded.
            raise _not_an_image(exc) from exc


def _not_an_image(exc: BaseException) -> ValueError:
    return ValueError(
        "first_frame is not a decodable image (expected png, jpeg, webp or another format "
        f"Pillow reads): {exc}"
    )


@contextlib.contextmanager
def _staged(final: pathlib.Path) -> Iterator[pathlib.Path]:
    """Yield a temporary path beside ``final``, moved onto ``final`` only if the body succeeds."""
    fd, name = tempfile.mkstemp(
        prefix=f".{final.name}.", suffix=f".tmp{final.suffix}", dir=final.parent
    )
    os.close(fd)
    tmp = pathlib.Path(name)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _encode(path: pathlib.Path, scene: _Scene) -> Image.Image:
    """Encode every frame of ``scene`` as H.264 into an MP4 at ``path``; return the last one."""
    time_base = Fraction(1, scene.fps)
    # +faststart puts the index (moov) first so browsers can start playing before the end.
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
        # ultrafast gives Constrained Baseline (no CABAC, no B-frames): every browser decodes it.
        stream = out.add_stream("libx264", rate=scene.fps, options={"preset": "ultrafast"})
        stream.width = scene.width
        stream.height = scene.height
        stream.pix_fmt = "yuv420p"
        stream.time_base = time_base
        stream.gop_size = scene.fps * 2
        stream.codec_context.colorspace = _AVCOL_BT709
        stream.codec_context.color_primaries = _AVCOL_BT709
        stream.codec_context.color_trc = _AVCOL_BT709
        stream.codec_context.color_range = _AVCOL_RANGE_MPEG
        # Draw frame n+1 on a helper thread while frame n is converted and encoded: Pillow,
        # swscale and x264 release the GIL, so the two halves of the work overlap.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="reelgate-render") as pool:
            pending = pool.submit(scene.frame, 0)
            for index in range(scene.frames):
                image = pending.result()
                if index + 1 < scene.frames:
                    pending = pool.submit(scene.frame, index + 1)
                frame = _to_yuv(image)
                frame.pts = index
                frame.time_base = time_base
                out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return image


def _to_yuv(image: Image.Image) -> av.VideoFrame:
    """Convert an RGB image to a BT.709 limited-range yuv420p frame (swscale does the work)."""
    rgb = av.VideoFrame(image.width, image.height, "rgb24")
    plane = rgb.planes[0]
    # Pillow's raw encoder pads each row to FFmpeg's aligned line size in the same C call.
    plane.update(image.tobytes("raw", "RGB", plane.line_size))
    return rgb.reformat(
        format="yuv420p", dst_colorspace="itu709", src_color_range="JPEG", dst_color_range="MPEG"
    )


class _Scene:
    """Pre-renders the static layers once; :meth:`frame` adds the moving parts cheaply."""

    def __init__(
        self,
        prompt: str,
        width: int,
        height: int,
        fps: int,
        frames: int,
        source: Image.Image | None,
    ) -> None:
        self.width = width
        self.height = height
        self.fps = fps
        self.frames = frames
        hue = hashlib.blake2b(prompt.encode("utf-8", "replace"), digest_size=1).digest()[0] / 255
        self.accent = _hsv(hue + 0.5, 0.55, 1.0)
        self.margin = max(3, min(width, height) // 24)
        text_size = max(10, min(height // 16, width // 20))
        self.font = ImageFont.load_default(size=text_size)
        self.small_font = ImageFont.load_default(size=max(9, text_size * 2 // 3))
        self.bar_h = max(2, height // 90)

        self.background: Image.Image | None = None
        self.zoom_base: Image.Image | None = None
        if source is None:
            self.background = _gradient(
                width, height, _hsv(hue, 0.65, 0.45), _hsv(hue + 0.12, 0.75, 0.16)
            )
        else:
            # Fitted a little larger than the frame, so zooming in never has to upscale.
            size = (math.ceil(width * _I2V_ZOOM), math.ceil(height * _I2V_ZOOM))
            self.zoom_base = ImageOps.fit(source, size, Image.Resampling.BICUBIC)

        # A soft vertical band of light (brightest in its middle) that sweeps across t2v frames.
        band_w = max(8, width // 6)
        ramp = Image.linear_gradient("L").transpose(Image.Transpose.ROTATE_90)  # 255 -> 0
        ramp = ramp.resize((band_w, 1), Image.Resampling.BILINEAR)
        ramp = ramp.point(lambda v: round(110 * (1 - abs(v - 127.5) / 127.5)))
        self.band_mask = ramp.resize((band_w, height), Image.Resampling.NEAREST)
        self.band = Image.new("RGB", (band_w, height), _WHITE)

        self.panel, self.panel_xy = self._prompt_panel(prompt)

    def frame(self, index: int) -> Image.Image:
        """The RGB image of frame ``index``."""
        w, h = self.width, self.height
        progress = index / max(1, self.frames - 1)
        if self.zoom_base is not None:
            canvas = self._zoomed(progress)
        else:
            assert self.background is not None
            canvas = self.background.copy()
            band_w = self.band.width
            x = round(-band_w + (w + band_w) * ((index / (self.fps * 3)) % 1.0))
            canvas.paste(self.band, (x, 0), self.band_mask)
            # A dot circling in the upper half, once every four seconds.
            angle = 2 * math.pi * index / (self.fps * 4)
            r = max(3, h // 14)
            cx = w / 2 + math.cos(angle) * w * 0.3
            cy = h * 0.3 + math.sin(angle) * h * 0.12
            ImageDraw.Draw(canvas).ellipse(
                (cx - r, cy - r, cx + r, cy + r), fill=self.accent, outline=_WHITE
            )
        if self.panel is not None:
            canvas.paste(self.panel, self.panel_xy, self.panel)

        draw = ImageDraw.Draw(canvas, "RGBA")
        # Timecode and frame counter, top left, on a translucent backing so it reads on any image.
        seconds = index / self.fps
        label = f"{int(seconds // 60):02d}:{seconds % 60:05.2f}  {index + 1}/{self.frames}"
        m, pad = self.margin, max(1, self.margin // 3)
        left, top, right, bottom = draw.textbbox((m, m), label, font=self.small_font)
        draw.rectangle((left - pad, top - pad, right + pad, bottom + pad), fill=(0, 0, 0, 140))
        draw.text((m, m), label, font=self.small_font, fill=_WHITE)
        # Progress bar along the bottom edge.
        draw.rectangle((0, h - self.bar_h, w, h), fill=(0, 0, 0, 160))
        draw.rectangle((0, h - self.bar_h, w * (index + 1) // self.frames, h), fill=self.accent)
        return canvas

    def _zoomed(self, progress: float) -> Image.Image:
        """Ken Burns move: the whole fitted image at first, then zoom in while drifting right."""
        assert self.zoom_base is not None
        base = self.zoom_base
        eased = progress * progress * (3 - 2 * progress)
        zoom = 1 + (_I2V_ZOOM - 1) * eased
        box_w, box_h = base.width / zoom, base.height / zoom
        cx = base.width / 2 + (base.width - box_w) / 4  # stays inside: drift <= margin / 2
        cy = base.height / 2
        box = (cx - box_w / 2, cy - box_h / 2, cx + box_w / 2, cy + box_h / 2)
        # BOX resampling: the scale stays within 1..1.12, where it matches bilinear and is faster.
        return base.resize((self.width, self.height), Image.Resampling.BOX, box=box)

    def _prompt_panel(self, prompt: str) -> tuple[Image.Image | None, tuple[int, int]]:
        """The prompt, wrapped, on a translucent panel in the lower part of the frame."""
        text = _clean(prompt)
        if not text:
            return None, (0, 0)
        w, h, m = self.width, self.height, self.margin
        pad = max(2, m // 2)
        font = self.font
        glyph_h = math.ceil(font.getbbox("Ag")[3])
        line_h = glyph_h + max(2, glyph_h // 4)
        room = int(h * 0.42) - 2 * pad - m - self.bar_h  # stay clear of the frame's centre
        lines = _wrap(text, font, w - 2 * m - 2 * pad, max(1, min(5, room // line_h)))
        text_w = max(math.ceil(font.getlength(line)) for line in lines)
        panel_w = min(w - 2 * m, text_w + 2 * pad)
        panel = Image.new("RGBA", (panel_w, line_h * len(lines) + 2 * pad), (0, 0, 0, 150))
        draw = ImageDraw.Draw(panel)
        for i, line in enumerate(lines):
            draw.text((pad, pad + i * line_h), line, font=font, fill=(*_WHITE, 255))
        xy = ((w - panel_w) // 2, max(0, h - panel.height - m - self.bar_h))
        return panel, xy


def _clean(prompt: str) -> str:
    """One line of text: whitespace collapsed, control characters and lone surrogates dropped."""
    chars = []
    for ch in prompt[: _MAX_PROMPT_CHARS * 2]:
        if ch.isspace():
            chars.append(" ")
        elif unicodedata.category(ch) not in ("Cc", "Cs", "Co", "Cn"):
            chars.append(ch)
    text = " ".join("".join(chars).split())
    if len(text) > _MAX_PROMPT_CHARS:
        text = text[:_MAX_PROMPT_CHARS].rstrip() + _ELLIPSIS
    return text


def _wrap(text: str, font: _Font, max_w: int, max_lines: int) -> list[str]:
    """Greedy word wrap to ``max_w`` pixels, at most ``max_lines`` lines.

    A word wider than a line (CJK text has no spaces, URLs are long) is broken anywhere.
    Text that does not fit ends the last line with an ellipsis.
    """
    words = text.split(" ")
    lines: list[str] = []
    line = ""
    i = 0
    while i < len(words):
        candidate = f"{line} {words[i]}" if line else words[i]
        if font.getlength(candidate) <= max_w:
            line = candidate
            i += 1
            continue
        if line:
            lines.append(line)
            line = ""
        else:
            cut = _fitting_prefix(words[i], font, max_w)
            lines.append(words[i][:cut])
            words[i] = words[i][cut:]
        if len(lines) == max_lines:  # and text is left over: words[i] did not fit
            last = lines[-1]
            while last and font.getlength(last + _ELLIPSIS) > max_w:
                last = last[:-1]
            lines[-1] = last.rstrip() + _ELLIPSIS
            return lines
    if line:
        lines.append(line)
    return lines


def _fitting_prefix(word: str, font: _Font, max_w: int) -> int:
    """Length of the longest prefix of ``word`` at most ``max_w`` wide; at least 1."""
    lo, hi = 1, len(word)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if font.getlength(word[:mid]) <= max_w:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _gradient(width: int, height: int, top: _RGB, bottom: _RGB) -> Image.Image:
    mask = Image.linear_gradient("L").resize((width, height), Image.Resampling.BILINEAR)
    return Image.composite(
        Image.new("RGB", (width, height), bottom), Image.new("RGB", (width, height), top), mask
    )


def _hsv(h: float, s: float, v: float) -> _RGB:
    """HSV (each 0..1; the hue wraps around) to an 8-bit RGB triple."""
    h = (h % 1.0) * 6
    i = int(h)
    f = h - i
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    r, g, b = ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))[i % 6]
    return round(r * 255), round(g * 255), round(b * 255)
