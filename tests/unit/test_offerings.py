"""Providers as plug-ins, in the core's terms: declarations, channels from settings, and one model
offered by several providers (a home and an aggregator), with no I/O."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from reelgate.assembly import configured_channels
from reelgate.core.capabilities import (
    Mode,
    ModelCapabilities,
    NormalizedRequest,
    Option,
    fits,
)
from reelgate.core.channels import AdmissionCaps, Channel
from reelgate.core.errors import ConfigError, InvalidRequest, UpstreamUnavailable
from reelgate.providers import plugins
from reelgate.providers.base import ChannelDeclaration
from reelgate.providers.registry import Registry
from reelgate.service.channels import ChannelBook
from reelgate.settings import load_settings

MODEL = "doubao-seedance-1-0-pro-250528"


def caps(provider: str, **kw: object) -> ModelCapabilities:
    fields: dict[str, object] = {
        "name": MODEL,
        "provider": provider,
        "description": "",
        "modes": frozenset({Mode.TEXT_TO_VIDEO, Mode.IMAGE_TO_VIDEO}),
        "min_duration": 2,
        "max_duration": 12,
        "default_duration": 5,
        "default_size": (1248, 704),
        "max_side": 2000,
        "max_pixels": 2000 * 2000,
        "max_images": 2,
        "options": {
            "seed": Option(int, "seed", minimum=-1, maximum=2**32),
            "camera_fixed": Option(bool, "camera"),
        },
    }
    fields.update(kw)
    return ModelCapabilities(**fields)  # type: ignore[arg-type]


class Offers:
    """A provider instance (one channel) offering the given models."""

    def __init__(self, name: str, channel: str, *models: ModelCapabilities) -> None:
        self.name, self.channel, self.caps = name, channel, AdmissionCaps()
        self._models = models

    def models(self) -> Sequence[ModelCapabilities]:
        return self._models


AGGREGATOR = caps(
    "agg",
    upstream_model="vendor/seedance/pro",
    home=False,
    max_duration=10,
    options={"seed": Option(int, "seed", minimum=0, maximum=2**31)},
)


def registry(*channels: Channel) -> Registry:
    return Registry(
        [Offers("agg", "agg-1", AGGREGATOR), Offers("ark", "ark-1", caps("ark"))],  # type: ignore[list-item]
        channels=channels,
    )


def request(**kw: object) -> NormalizedRequest:
    fields: dict[str, object] = {
        "model": MODEL,
        "prompt": "a cat",
        "images": (),
        "duration": 5,
        "width": 1248,
        "height": 704,
        "options": {},
    }
    fields.update(kw)
    return NormalizedRequest(**fields)  # type: ignore[arg-type]


def test_the_home_offering_leads_whatever_the_order_of_the_providers() -> None:
    entry = registry().resolve(MODEL)
    assert (entry.provider, [o.provider for o in entry.offerings]) == ("ark", ["ark", "agg"])
    assert entry.offering("agg") is not None
    assert entry.offering("agg").caps.upstream_id == "vendor/seedance/pro"  # type: ignore[union-attr]
    assert {c.name for c in registry().channels_for(MODEL)} == {"agg-1", "ark-1"}


def test_an_offering_that_cannot_honour_an_option_is_told_apart() -> None:
    assert fits(request(), AGGREGATOR) is None
    assert fits(request(options={"seed": 7}), AGGREGATOR) is None
    assert fits(request(options={"camera_fixed": True}), AGGREGATOR) == (
        "it has no option 'camera_fixed'"
    )
    assert fits(request(options={"seed": -1}), AGGREGATOR) == "it cannot take seed=-1"
    assert fits(request(duration=12), AGGREGATOR) == "it makes 2 to 10 second videos"
    assert fits(request(images=("a", "b", "c")), AGGREGATOR) == "it takes 0 to 2 images"


def test_routability_counts_only_the_providers_that_fit() -> None:
    down = Channel(name="ark-1", provider="ark", enabled=False)
    reg = registry(down)
    reg.check_routable(MODEL)  # the aggregator's channel is up
    reg.check_routable(MODEL, ["agg"])
    with pytest.raises(UpstreamUnavailable) as only_ark:
        reg.check_routable(MODEL, ["ark"])
    assert only_ark.value.code == "no_channel_available"
    with pytest.raises(InvalidRequest) as nobody:
        reg.check_routable(MODEL, ["elsewhere"])
    assert nobody.value.code == "model_not_configured"


def test_models_show_every_offering_with_channel_health_and_no_names() -> None:
    reg = registry(Channel(name="ark-1", provider="ark", enabled=False))
    shown = reg.describe(reg.resolve(MODEL), now=0.0)
    assert shown["offerings"] == [
        {
            "provider": "ark",
            "model": MODEL,
            "home": True,
            "channels": {"active": 0, "cooling": 0, "disabled": 1},
        },
        {
            "provider": "agg",
            "model": "vendor/seedance/pro",
            "home": False,
            "channels": {"active": 1, "cooling": 0, "disabled": 0},
        },
    ]
    assert "agg-1" not in json.dumps(shown)
    assert "ark-1" not in json.dumps(shown)


# -- channels from settings, checked against their provider's declaration ---------------------
@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("REELGATE_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def book(declared: Sequence[ChannelDeclaration]) -> ChannelBook:
    return ChannelBook(None, specs=plugins.specs(), configured=declared)  # type: ignore[arg-type]


@pytest.mark.usefixtures("clean_env")
def test_generic_channels_take_the_providers_default_caps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "REELGATE_CHANNELS",
        json.dumps(
            [
                {"name": "ark-sg", "provider": "ark", "secret": "k1", "region": "ap-southeast"},
                {
                    "name": "ark-capped",
                    "provider": "ark",
                    "secret": "k2",
                    "max_queued": 5,
                    "rpm": 30,
                    "options": {"timeout": 12},
                    "models": [MODEL],
                },
            ]
        ),
    )
    monkeypatch.setenv("REELGATE_ARK_API_KEY", "k0")  # the shorthand still defines 'default'
    declared = configured_channels(load_settings(), plugins.specs())
    by_name = {d.channel.name: d for d in declared}
    assert list(by_name) == ["default", "ark-sg", "ark-capped"]
    assert by_name["ark-sg"].channel.caps == AdmissionCaps(max_queued=120)
    assert by_name["ark-capped"].channel.caps == AdmissionCaps(5, None, 30)
    assert by_name["ark-capped"].channel.options == {"timeout": 12}
    assert by_name["ark-capped"].secret == "k2"
    book(declared)  # every one fits Ark's declaration


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"provider": "nope"}, "unknown provider 'nope'"),
        ({"provider": "ark", "region": "mars-1"}, "no region 'mars-1'"),
        ({"provider": "ark", "options": {"colour": "red"}}, "options.colour"),
        ({"provider": "ark", "options": {"timeout": -1}}, "options.timeout"),
        ({"provider": "ark", "secret": "two words"}, "visible ASCII"),
        ({"provider": "ark", "secret": ""}, "an Ark API key is required"),
        ({"provider": "sandbox"}, "unknown provider 'sandbox'"),  # built in: no channels
    ],
)
def test_a_channel_its_provider_refuses_stops_start_up_naming_it(
    monkeypatch: pytest.MonkeyPatch, entry: dict[str, object], problem: str
) -> None:
    channel = {"name": "bad", "secret": "k", **entry}
    monkeypatch.setenv("REELGATE_CHANNELS", json.dumps([channel]))
    with pytest.raises(ConfigError) as refused:
        book(configured_channels(load_settings(), plugins.specs()))
    assert problem in refused.value.message
    assert "bad" in refused.value.message or "nope" in refused.value.message


@pytest.mark.usefixtures("clean_env")
def test_two_channels_of_one_name_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REELGATE_ARK_API_KEY", "k0")
    monkeypatch.setenv(
        "REELGATE_CHANNELS", json.dumps([{"name": "default", "provider": "ark", "secret": "k"}])
    )
    with pytest.raises(ConfigError, match="two channels are named 'default'"):
        configured_channels(load_settings(), plugins.specs())


def test_the_built_in_declarations_are_found_and_name_themselves() -> None:
    specs = plugins.specs()
    assert list(specs)[:2] == ["sandbox", "ark"]
    ark = specs["ark"]
    assert ark.credential is not None
    assert ark.features.batch_size == 500
    assert ark.base_url(Channel(name="x", provider="ark", region="ap-southeast")).endswith(
        "bytepluses.com/api/v3"
    )
    assert ark.base_url(Channel(name="x", provider="ark")) == ark.regions["cn-beijing"]
    assert specs["sandbox"].builtin is not None
