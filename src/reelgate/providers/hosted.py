"""Models as an aggregator hosts them (fal, Replicate, …): capabilities from a compact table,
and the strict normalizer that turns a request into reelgate's option vocabulary.

An aggregator offers a studio's model under its own id, usually with a few discrete durations,
named resolutions and aspect ratios. ``HostedModel`` says which; ``capabilities`` makes the
offering's ``ModelCapabilities`` (``home=False``: the studio's API is the model's home), whose
normalizer validates a request against the table when no home offering is installed. The
options use the names Ark's normalizer uses (``resolution``, ``ratio``, ``seed``,
``camera_fixed``, ``image_mode``), so that a request normalized at the model's home is checked
against the offering by ``core.capabilities.fits`` name for name. No I/O.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field

from reelgate.core.capabilities import (
    Mode,
    ModelCapabilities,
    NormalizedRequest,
    Option,
    check_image_count,
    check_options,
)
from reelgate.core.request import VideoRequest, invalid

# How far from a listed ratio a size may be and still be that ratio (1280x720 is 16:9).
RATIO_SLACK = 0.02
# Image use, by the number of images (the names Ark's normalizer gives them).
IMAGE_MODES = {1: "first_frame", 2: "first_last_frame"}
SEED = Option(int, "random seed, -1 for random", minimum=-1, maximum=2**32 - 1)


@dataclass(frozen=True)
class HostedModel:
    """A public model as one aggregator serves it."""

    name: str  # the public name (the studio's own id)
    description: str
    upstream: str  # the aggregator's id for it (shown in GET /v1/models)
    durations: tuple[int, ...]
    default_duration: int
    # Resolutions a request may choose ("720p", "768P", "4k"); empty: not selectable.
    resolutions: tuple[str, ...] = ()
    default_resolution: str = ""
    # What it makes when no resolution is selectable (the size and the price follow it).
    fixed_resolution: str = ""
    ratios: tuple[str, ...] = ()
    default_ratio: str = ""
    text: bool = True
    max_images: int = 0  # 1: a first frame; 2: also a last frame
    # More options it takes, in reelgate's names (seed, negative_prompt, generate_audio…).
    options: Mapping[str, Option] = field(default_factory=dict)
    # Durations that only some resolutions allow (Hailuo 02: 10 s is not made in 1080P).
    durations_by_resolution: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        assert self.default_duration in self.durations, self.name
        assert not self.resolutions or self.default_resolution in self.resolutions, self.name
        assert not self.ratios or not self.default_ratio or self.default_ratio in self.ratios


def short_side(resolution: str) -> int:
    """The short side a resolution name stands for (``720p`` → 720, ``4k`` → 2160)."""
    low = resolution.lower()
    if low == "4k":
        return 2160
    return int(low.rstrip("p"))


def frame(resolution: str, ratio: str) -> tuple[int, int]:
    """The frame size of a resolution in a ratio (even sides): 720p 16:9 is 1280x720."""
    short = short_side(resolution)
    a, b = (int(x) for x in ratio.split(":"))
    long = 2 * round(short * max(a, b) / min(a, b) / 2)
    return (long, short) if a >= b else (short, long)


def _all_resolutions(m: HostedModel) -> tuple[str, ...]:
    return m.resolutions or ((m.fixed_resolution,) if m.fixed_resolution else ())


def _sizes(m: HostedModel) -> dict[str, list[str]]:
    ratios = m.ratios or ("16:9",)
    return {
        res: [f"{w}x{h}" for w, h in (frame(res, r) for r in ratios)] for res in _all_resolutions(m)
    }


def capabilities(m: HostedModel, provider: str) -> ModelCapabilities:
    """The offering of ``m`` on ``provider``."""
    options: dict[str, Option] = dict(m.options)
    if m.resolutions:
        options["resolution"] = Option(str, "output resolution", choices=m.resolutions)
    if m.ratios:
        options["ratio"] = Option(str, "aspect ratio", choices=m.ratios)
    if m.max_images:
        modes = tuple(IMAGE_MODES[n] for n in range(1, m.max_images + 1))
        options["image_mode"] = Option(str, "how images are used", choices=modes)
    modes_of = {Mode.TEXT_TO_VIDEO} if m.text else set()
    if m.max_images:
        modes_of.add(Mode.IMAGE_TO_VIDEO)
    frames = [frame(res, r) for res in _all_resolutions(m) for r in m.ratios or ("16:9",)]
    default_res = m.default_resolution or m.fixed_resolution or "720p"
    longest = max((max(f) for f in frames), default=1920)
    return ModelCapabilities(
        name=m.name,
        provider=provider,
        description=m.description,
        modes=frozenset(modes_of),
        min_duration=min(m.durations),
        max_duration=max(m.durations),
        default_duration=m.default_duration,
        default_size=frame(default_res, m.default_ratio or "16:9"),
        # The sides only bound what ``fits`` lets through from a home's normalizer (its own
        # table may differ by a few pixels); resolution and ratio are checked by name.
        min_side=64,
        max_side=longest + longest // 10,
        max_pixels=max((w * h for w, h in frames), default=1920 * 1080) * 6 // 5,
        min_images=0 if m.text else 1,
        max_images=m.max_images,
        options=options,
        normalizer=functools.partial(normalize, m),
        extra={"sizes": _sizes(m), "durations": list(m.durations)},
        upstream_model=m.upstream,
        home=False,
    )


def _size_to(m: HostedModel, width: int, height: int) -> tuple[str, str]:
    """The (resolution, ratio) a requested size stands for, or the 400 listing the sizes."""
    for res in _all_resolutions(m):
        if min(width, height) != short_side(res):
            continue
        for ratio in m.ratios or ("16:9",):
            a, b = (int(x) for x in ratio.split(":"))
            if abs(width / height - a / b) < RATIO_SLACK:
                return res, ratio
    listed = ", ".join(s for group in _sizes(m).values() for s in group) or "none"
    raise invalid("size", f"is not a size '{m.name}' makes here; use one of: {listed}")


def normalize(m: HostedModel, request: VideoRequest, caps: ModelCapabilities) -> NormalizedRequest:
    """``request`` checked against ``m`` with every default applied."""
    check_image_count(request, caps)
    duration = m.default_duration if request.duration is None else request.duration
    if duration not in m.durations:
        choices = ", ".join(str(d) for d in m.durations)
        raise invalid("duration", f"must be one of {choices} seconds for '{m.name}'")
    options = check_options(request.metadata, caps)
    if request.size is not None:
        res, ratio = _size_to(m, *request.size)
        for key, value, selectable in (
            ("resolution", res, bool(m.resolutions)),
            ("ratio", ratio, bool(m.ratios)),
        ):
            if not selectable:
                continue
            if key in options and options[key] != value:
                raise invalid("size", f"disagrees with '{key}' ({options[key]})")
            options[key] = value
    if m.resolutions:
        options.setdefault("resolution", m.default_resolution)
    if m.ratios and m.default_ratio and not request.images:
        options.setdefault("ratio", m.default_ratio)
    n_images = len(request.images)
    if n_images:
        mode = options.setdefault("image_mode", IMAGE_MODES[n_images])
        if mode != IMAGE_MODES[n_images]:
            raise invalid("metadata.image_mode", f"{mode} does not take {n_images} image(s)")
    resolution = options.get("resolution") or m.fixed_resolution
    allowed = m.durations_by_resolution.get(resolution)
    if allowed is not None and duration not in allowed:
        choices = ", ".join(str(d) for d in allowed)
        raise invalid("duration", f"must be {choices} seconds at {resolution} for '{m.name}'")
    ratio = options.get("ratio") or ("16:9" if not m.ratios else "")
    width, height = frame(resolution, ratio) if resolution and ratio else (0, 0)
    return NormalizedRequest(
        model=m.name,
        prompt=request.prompt,
        images=request.images,
        duration=duration,
        width=width,
        height=height,
        options=options,
    )


__all__ = ["SEED", "HostedModel", "capabilities", "frame", "normalize", "short_side"]
