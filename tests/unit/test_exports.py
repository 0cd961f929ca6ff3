"""The package's public names are deliberate: this fails when they drift."""

from __future__ import annotations

import reelgate
import reelgate.core.errors
from reelgate.client import errors, models


def sdk_names() -> set[str]:
    """The SDK's public classes (and its status type): the names ``reelgate`` must export."""
    names = {"Client", "AsyncClient", "TaskStatus"}
    for module in (errors, models):
        names |= {
            name
            for name, value in vars(module).items()
            if isinstance(value, type)
            and value.__module__ == module.__name__
            and not name.startswith("_")
        }
    return names


SDK = sorted(sdk_names())


def test_public_names() -> None:
    assert sorted(reelgate.__all__) == sorted([*SDK, "__version__"])
    public = {n for n in dir(reelgate) if not n.startswith("_")}
    # Sub-packages appear as attributes once imported; nothing else may be exported.
    assert public - set(SDK) <= {
        "api",
        "assembly",
        "cli",
        "client",
        "core",
        "engine",
        "files",
        "logs",
        "metrics",
        "console",
        "net",
        "previews",
        "providers",
        "render",
        "service",
        "settings",
        "store",
        "testing",
    }


def test_sdk_names_are_the_clients_own() -> None:
    """Each exported name lives in ``reelgate.client`` (the server's errors are not the SDK's)."""
    for name in SDK:
        if name != "TaskStatus":  # a Literal alias
            assert getattr(reelgate, name).__module__.startswith("reelgate.client"), name
    assert reelgate.ReelgateClientError is not reelgate.core.errors.ReelgateError


def test_one_exception_tree() -> None:
    errors = [getattr(reelgate, n) for n in SDK if n.endswith("Error") and n != "TaskError"]
    assert all(issubclass(e, reelgate.ReelgateClientError) for e in errors)
    assert not issubclass(reelgate.TaskError, Exception)  # a failed task's code and message
    by_status = {
        reelgate.BadRequestError: 400,
        reelgate.AuthenticationError: 401,
        reelgate.PermissionDeniedError: 403,
        reelgate.NotFoundError: 404,
        reelgate.ConflictError: 409,
        reelgate.RateLimitError: 429,
        reelgate.ServerError: 503,
    }
    from reelgate.client.errors import api_error

    for cls, status in by_status.items():
        assert issubclass(cls, reelgate.APIError)
        error = api_error(status, "some_code", "words")
        assert type(error) is cls
        assert (error.status, error.code, error.message) == (status, "some_code", "words")
    assert issubclass(reelgate.APITimeoutError, reelgate.APIConnectionError)
