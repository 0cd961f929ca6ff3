"""The sandbox renderer writes real, browser-playable H.264 MP4s (checked by decoding them)."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import av
import pytest
from PIL import Image, ImageChops, ImageFont

from reelgate import render
from reelgate.render import VideoInfo, probe_video, render_video

W, H = 320, 180


def _png(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buf, format="PNG")
    return buf.getvalue()


def _decoded(path: Path) -> list[Image.Image]:
    with av.open(str(path)) as container:
        return [frame.to_image() for frame in container.decode(video=0)]


def _rgb(image: Image.Image, xy: tuple[int, int]) -> tuple[int, int, int]:
    pixel = image.convert("RGB").getpixel(xy)
    assert isinstance(pixel, tuple)
    r, g, b = pixel
    return int(r), int(g), int(b)


def _top_level_boxes(path: Path) -> list[str]:
    data = path.read_bytes()
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:  # 64-bit size follows
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        boxes.append(kind.decode("latin-1"))
        assert size >= 8, f"bad box size {size} at {offset}"
        offset += size
    return boxes


def test_text_to_video_is_h264_of_the_asked_size_length_and_frame_count(tmp_path: Path) -> None:
    out = tmp_path / "t2v.mp4"
    render_video(out, prompt="a red fox in the snow", duration_s=2, width=W, height=H)

    info = probe_video(out)
    assert isinstance(info, VideoInfo)
    assert (info.width, info.height, info.codec, info.frames) == (W, H, "h264", 48)
    assert info.duration_s == pytest.approx(2.0, abs=1 / 24)

    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert stream.average_rate == 24
        assert stream.profile in {"Constrained Baseline", "Baseline", "Main", "High"}
    # faststart: the index (moov) comes before the media data, so browsers can stream it.
    boxes = _top_level_boxes(out)
    assert boxes[0] == "ftyp"
    assert boxes.index("moov") < boxes.index("mdat")
    assert not [p.name for p in tmp_path.iterdir() if p.name != "t2v.mp4"]  # no temp files left


def test_frames_move(tmp_path: Path) -> None:
    out = tmp_path / "move.mp4"
    render_video(out, prompt="waves", duration_s=1, width=W, height=H, fps=12)
    frames = _decoded(out)
    assert len(frames) == 12
    assert all(f.size == (W, H) for f in frames)
    assert ImageChops.difference(frames[0], frames[6]).getbbox() is not None
    assert ImageChops.difference(frames[6], frames[11]).getbbox() is not None


def test_image_to_video_starts_on_the_image_and_writes_the_last_frame(tmp_path: Path) -> None:
    out, last = tmp_path / "i2v.mp4", tmp_path / "last" / "frame.png"
    render_video(
        out,
        prompt="the red wall",
        duration_s=1,
        width=W,
        height=H,
        first_frame=_png(400, 300, (255, 0, 0)),
        last_frame_path=last,
    )
    assert probe_video(out).frames == 24
    first = _decoded(out)[0]
    assert first.size == (W, H)
    r, g, b = _rgb(first, (W // 2, H // 2))
    assert r > 200, (r, g, b)
    assert max(g, b) < 60, (r, g, b)

    with Image.open(last) as png:
        assert png.format == "PNG"
        assert png.size == (W, H)
        r, g, b = _rgb(png, (W // 2, H // 2))
    assert r > 200, (r, g, b)
    assert max(g, b) < 60, (r, g, b)
    assert sorted(p.name for p in last.parent.iterdir()) == ["frame.png"]


def test_first_frame_is_cover_fitted_whatever_its_shape(tmp_path: Path) -> None:
    # A tall JPEG: blue top half, green bottom half. Cover-fitting a 16:9 frame crops the
    # middle band, so the frame's top edge is blue and its bottom edge green.
    tall = Image.new("RGB", (300, 900), (0, 0, 255))
    tall.paste((0, 200, 0), (0, 450, 300, 900))
    buf = io.BytesIO()
    tall.save(buf, format="JPEG", quality=95)
    out = tmp_path / "tall.mp4"
    render_video(out, prompt="", duration_s=1, width=W, height=H, first_frame=buf.getvalue())
    first = _decoded(out)[0]
    _, top_g, top_b = _rgb(first, (W - 20, H // 2 - 30))
    _, bottom_g, bottom_b = _rgb(first, (W - 20, H // 2 + 30))
    assert top_b > 200
    assert top_g < 60
    assert bottom_g > 150
    assert bottom_b < 60


@pytest.mark.parametrize(
    "data",
    [b"not an image at all", b"", _png(40, 30, (0, 0, 0))[:60]],
    ids=["garbage", "empty", "truncated-png"],
)
def test_undecodable_first_frame_is_a_value_error_and_leaves_nothing(
    tmp_path: Path, data: bytes
) -> None:
    out, last = tmp_path / "bad.mp4", tmp_path / "bad.png"
    with pytest.raises(ValueError, match="first_frame"):
        render_video(
            out,
            prompt="x",
            duration_s=1,
            width=W,
            height=H,
            first_frame=data,
            last_frame_path=last,
        )
    assert list(tmp_path.iterdir()) == []


def test_a_failure_mid_render_keeps_the_old_file_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "clip.mp4"
    out.write_bytes(b"previous render")
    real = render._to_yuv
    calls = []

    def failing(image: Image.Image) -> av.VideoFrame:
        calls.append(1)
        if len(calls) > 5:
            raise RuntimeError("disk on fire")
        return real(image)

    monkeypatch.setattr(render, "_to_yuv", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        render_video(out, prompt="x", duration_s=1, width=W, height=H)
    assert out.read_bytes() == b"previous render"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_chinese_and_awkward_prompts_render(tmp_path: Path) -> None:
    out, last = tmp_path / "zh.mp4", tmp_path / "zh.png"
    # CJK with full-width punctuation, a NUL, a lone surrogate, an RTL override, an emoji.
    prompt = "一只柯基宇航员在月球上跳跃\uff0c电影感灯光\u3002" * 20 + " \x00\ud800\u202e🎬\tend"
    render_video(out, prompt=prompt, duration_s=1, width=W, height=H, last_frame_path=last)
    info = probe_video(out)
    assert (info.width, info.height, info.frames) == (W, H, 24)
    assert last.is_file()


@pytest.mark.parametrize(
    ("width", "height", "duration_s", "fps"),
    [
        (321, 180, 1, 24),  # odd width: making sizes even is the caller's job
        (320, 181, 1, 24),  # odd height
        (62, 180, 1, 24),
        (1922, 180, 1, 24),
        (320, 180, 0, 24),
        (320, 180, 16, 24),
        (320, 180, 1, 0),
    ],
)
def test_out_of_range_arguments_are_value_errors(
    tmp_path: Path, width: int, height: int, duration_s: int, fps: int
) -> None:
    out = tmp_path / "x.mp4"
    with pytest.raises(ValueError, match="must be"):
        render_video(out, prompt="x", duration_s=duration_s, width=width, height=height, fps=fps)
    assert list(tmp_path.iterdir()) == []


def test_wrap_fits_the_width_and_marks_what_was_cut() -> None:
    font = ImageFont.load_default(size=14)
    max_w = 150
    short = render._wrap("a small fox", font, max_w, 3)
    assert short == ["a small fox"]

    long = render._wrap(render._clean("word " * 200), font, max_w, 3)
    assert len(long) == 3
    assert long[-1].endswith("\u2026")
    assert all(font.getlength(line) <= max_w for line in long)

    cjk = render._wrap("柯基" * 100, font, max_w, 2)  # no spaces at all: breaks anywhere
    assert len(cjk) == 2
    assert cjk[-1].endswith("\u2026")
    assert all(font.getlength(line) <= max_w for line in cjk)

    url = render._wrap("see https://example.com/" + "a" * 80 + " now", font, max_w, 10)
    assert all(font.getlength(line) <= max_w for line in url)
    assert "".join(url).replace(" ", "") == "seehttps://example.com/" + "a" * 80 + "now"


def test_clean_drops_control_characters_and_caps_length() -> None:
    assert render._clean(" a\tb\n\x00c\ud800  ") == "a b c"
    capped = render._clean("x" * 5000)
    assert len(capped) <= 601
    assert capped.endswith("\u2026")
