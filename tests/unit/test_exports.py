"""The package's public names are deliberate: this fails when they drift."""

from __future__ import annotations

import reelgate


def test_public_names() -> None:
    assert sorted(reelgate.__all__) == ["__version__"]
    public = {n for n in dir(reelgate) if not n.startswith("_")}
    # Sub-packages appear as attributes once imported; nothing else may be exported.
    assert public <= {
        "api",
        "cli",
        "core",
        "engine",
        "logs",
        "net",
        "providers",
        "service",
        "settings",
        "store",
        "testing",
    }
