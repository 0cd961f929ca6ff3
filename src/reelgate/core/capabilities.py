"""What each model can do, and strict validation of a request against it.

A provider publishes one ``ModelCapabilities`` per model. ``normalize`` checks a ``VideoRequest``
against it and returns the ``NormalizedRequest`` the provider will submit: an option the model
does not support is a 400 naming it, never silently dropped.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reelgate.core.errors import InvalidRequest
from reelgate.core.request import VideoRequest, invalid


class Mode(enum.StrEnum):
    TEXT_TO_VIDEO = "t2v"
    IMAGE_TO_VIDEO = "i2v"


@dataclass(frozen=True, slots=True)
class Option:
    """One provider option accepted inside ``metadata``."""

    kind: type[int] | type[float] | type[bool] | type[str]
    description: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()

    def check(self, name: str, value: Any) -> Any:
        param = f"metadata.{name}"
        if self.kind is bool:
            if not isinstance(value, bool):
                raise invalid(param, "must be true or false")
            return value
        if self.kind is str:
            if not isinstance(value, str):
                raise invalid(param, "must be a string")
            if self.choices and value not in self.choices:
                raise invalid(param, f"must be one of {', '.join(self.choices)}")
            return value
        number_ok = isinstance(value, int | float) and not isinstance(value, bool)
        if self.kind is int and not (number_ok and float(value).is_integer()):
            raise invalid(param, "must be an integer")
        if self.kind is float and not number_ok:
            raise invalid(param, "must be a number")
        number = int(value) if self.kind is int else float(value)
        if self.minimum is not None and number < self.minimum:
            raise invalid(param, f"must be at least {self.minimum:g}")
        if self.maximum is not None and number > self.maximum:
            raise invalid(param, f"must be at most {self.maximum:g}")
        return number


@dataclass(frozen=True, slots=True)
class ModelCapabilities:
    name: str
    provider: str
    description: str
    modes: frozenset[Mode]
    min_duration: int
    max_duration: int
    default_duration: int
    default_size: tuple[int, int]
    min_side: int = 64
    max_side: int = 1920
    max_pixels: int = 1920 * 1080
    min_images: int = 0
    max_images: int = 0
    # The exact frame sizes the model makes (empty: any size within the sides and pixels).
    sizes: tuple[tuple[int, int], ...] = ()
    even_sides: bool = True
    options: Mapping[str, Option] = field(default_factory=dict)
    # Other names clients may use for this model (e.g. BytePlus names of an Ark model).
    aliases: tuple[str, ...] = ()
    # Whether a finished video can be remade with another prompt (POST /v1/videos/{id}/remix).
    remix: bool = False
    # A provider with rules the generic checks cannot express supplies its own normalizer.
    normalizer: Callable[[VideoRequest, ModelCapabilities], NormalizedRequest] | None = None
    # Extra facts for GET /v1/models (e.g. the sizes an upstream accepts).
    extra: Mapping[str, Any] = field(default_factory=dict)
    # The provider's own id for this model ("": the public name), e.g. an aggregator's path.
    upstream_model: str = ""
    # Whether this is the model's home (its studio's own API): a create is validated against
    # the home offering; other offerings (aggregators) take what fits their own limits.
    home: bool = True

    @property
    def upstream_id(self) -> str:
        return self.upstream_model or self.name

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary for ``GET /v1/models``."""
        return {
            "id": self.name,
            "object": "model",
            "provider": self.provider,
            "description": self.description,
            "modes": sorted(m.value for m in self.modes),
            "duration": {
                "min": self.min_duration,
                "max": self.max_duration,
                "default": self.default_duration,
            },
            "size": {
                "default": f"{self.default_size[0]}x{self.default_size[1]}",
                "min_side": self.min_side,
                "max_side": self.max_side,
                "max_pixels": self.max_pixels,
                # None: any WIDTHxHEIGHT within the bounds above (even sides).
                "allowed": [f"{w}x{h}" for w, h in self.sizes] if self.sizes else None,
            },
            "images": {"min": self.min_images, "max": self.max_images},
            "aliases": list(self.aliases),
            "remix": self.remix,
            **self.extra,
            "options": {
                name: {
                    "type": opt.kind.__name__,
                    "description": opt.description,
                    **({"minimum": opt.minimum} if opt.minimum is not None else {}),
                    **({"maximum": opt.maximum} if opt.maximum is not None else {}),
                    **({"choices": list(opt.choices)} if opt.choices else {}),
                }
                for name, opt in sorted(self.options.items())
            },
        }


@dataclass(frozen=True, slots=True)
class NormalizedRequest:
    """A request with every default applied and every value checked against the model."""

    model: str
    prompt: str
    images: tuple[str, ...]
    duration: int
    width: int
    height: int
    options: Mapping[str, Any]
    # When the task must have ended (Unix seconds; 0: no deadline). Not part of the stored
    # request: the engine sets it from the task before a submit, so that an upstream that takes
    # a deadline of its own (Replicate's Cancel-After) stops work nobody will wait for.
    deadline_at: float = field(default=0.0, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "prompt": self.prompt,
            "images": list(self.images),
            "duration": self.duration,
            "size": f"{self.width}x{self.height}",
            "options": dict(self.options),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NormalizedRequest:
        width, height = (int(x) for x in str(data["size"]).split("x"))
        return cls(
            model=str(data["model"]),
            prompt=str(data["prompt"]),
            images=tuple(data.get("images", ())),
            duration=int(data["duration"]),
            width=width,
            height=height,
            options=dict(data.get("options", {})),
        )


def normalize(request: VideoRequest, caps: ModelCapabilities) -> NormalizedRequest:
    if caps.normalizer is not None:
        return caps.normalizer(request, caps)
    check_image_count(request, caps)
    duration = check_duration(request.duration, caps)
    width, height = request.size or caps.default_size
    for side in (width, height):
        if not caps.min_side <= side <= caps.max_side:
            raise invalid(
                "size", f"sides must be between {caps.min_side} and {caps.max_side} pixels"
            )
    if caps.even_sides and (width % 2 or height % 2):
        raise invalid("size", "width and height must be even numbers")
    if width * height > caps.max_pixels:
        raise invalid("size", f"exceeds {caps.max_pixels} pixels for '{caps.name}'")
    return NormalizedRequest(
        model=caps.name,
        prompt=request.prompt,
        images=request.images,
        duration=duration,
        width=width,
        height=height,
        options=check_options(request.metadata, caps),
    )


def fits(request: NormalizedRequest, caps: ModelCapabilities) -> str | None:
    """Why an offering cannot honour a request already normalized for the model's home
    offering (``None``: it can). Routing skips offerings that cannot."""
    n_images = len(request.images)
    if n_images and Mode.IMAGE_TO_VIDEO not in caps.modes:
        return "it does not take images"
    if not caps.min_images <= n_images <= caps.max_images:
        return f"it takes {caps.min_images} to {caps.max_images} images"
    if not caps.min_duration <= request.duration <= caps.max_duration:
        return f"it makes {caps.min_duration} to {caps.max_duration} second videos"
    sides = (request.width, request.height)
    if not all(caps.min_side <= side <= caps.max_side for side in sides):
        return f"its sides are {caps.min_side} to {caps.max_side} pixels"
    if request.width * request.height > caps.max_pixels:
        return f"it makes at most {caps.max_pixels} pixels"
    for name, value in request.options.items():
        spec = caps.options.get(name)
        if spec is None:
            return f"it has no option '{name}'"
        try:
            spec.check(name, value)
        except InvalidRequest:
            return f"it cannot take {name}={value!r}"
    return None


def check_image_count(request: VideoRequest, caps: ModelCapabilities) -> None:
    n_images = len(request.images)
    if n_images and Mode.IMAGE_TO_VIDEO not in caps.modes:
        raise InvalidRequest(
            f"model '{caps.name}' generates from text only; it does not accept images",
            code="unsupported_parameter",
            param="image",
        )
    if n_images < caps.min_images:
        raise InvalidRequest(
            f"model '{caps.name}' needs at least {caps.min_images} image(s)",
            code="missing_parameter",
            param="image",
        )
    if n_images > caps.max_images:
        raise invalid("images", f"holds {n_images} images; '{caps.name}' takes {caps.max_images}")


def check_duration(
    requested: int | None, caps: ModelCapabilities, extra: frozenset[int] = frozenset()
) -> int:
    duration = caps.default_duration if requested is None else requested
    if duration in extra:
        return duration
    if not caps.min_duration <= duration <= caps.max_duration:
        also = f" (or {', '.join(str(x) for x in sorted(extra))})" if extra else ""
        raise invalid(
            "duration",
            f"must be between {caps.min_duration} and {caps.max_duration} seconds{also} "
            f"for '{caps.name}' (got {duration})",
        )
    return duration


def check_options(metadata: Mapping[str, Any], caps: ModelCapabilities) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for name, value in metadata.items():
        spec = caps.options.get(name)
        if spec is None:
            allowed = ", ".join(sorted(caps.options)) or "none"
            raise InvalidRequest(
                f"model '{caps.name}' does not support option 'metadata.{name}' "
                f"(supported: {allowed})",
                code="unsupported_parameter",
                param=f"metadata.{name}",
            )
        options[name] = spec.check(name, value)
    return options
