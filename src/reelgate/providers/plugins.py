"""Where reelgate finds provider declarations: its built-in table, then installed packages.

A package that provides an upstream declares a ``ProviderSpec`` under the entry-point group
``reelgate.providers``; installing it beside reelgate is enough::

    [project.entry-points."reelgate.providers"]
    acme = "acme_video.reelgate:SPEC"

Built-in names win: an installed package cannot replace ``ark`` or ``sandbox``. A declaration
that fails to load is logged and skipped (one broken plug-in must not stop the gateway).
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Mapping
from importlib.metadata import entry_points

from reelgate.providers.base import ProviderSpec

log = logging.getLogger("reelgate.providers")

GROUP = "reelgate.providers"
# The providers that ship with reelgate: name → the module whose ``SPEC`` declares it.
BUILTIN = {
    "sandbox": "reelgate.providers.sandbox",
    "ark": "reelgate.providers.ark",
    "fal": "reelgate.providers.fal",
    "replicate": "reelgate.providers.replicate",
    "vidu": "reelgate.providers.vidu",
    "jimeng": "reelgate.providers.jimeng",
}


@functools.cache
def specs() -> Mapping[str, ProviderSpec]:
    """Every declaration this process can use, built-in ones first (loaded once)."""
    found: dict[str, ProviderSpec] = {}
    for name, module in BUILTIN.items():
        spec = importlib.import_module(module).SPEC
        assert isinstance(spec, ProviderSpec)
        assert spec.name == name
        found[name] = spec
    for point in entry_points(group=GROUP):
        if point.name in found:
            log.warning("provider plug-in %s ignored: the name is taken", point.value)
            continue
        try:
            spec = point.load()
        except Exception as exc:  # a broken plug-in must not stop the gateway
            log.error("provider plug-in %s cannot be loaded: %r", point.value, exc)
            continue
        if not isinstance(spec, ProviderSpec) or spec.name != point.name:
            log.error(
                "provider plug-in %s is not a ProviderSpec named %r; ignored",
                point.value,
                point.name,
            )
            continue
        found[point.name] = spec
    return found


def spec(name: str) -> ProviderSpec | None:
    return specs().get(name)
