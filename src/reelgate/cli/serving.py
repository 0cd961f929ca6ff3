"""How ``reelgate serve`` runs its HTTP server: connection limits and timeouts set on purpose.

Under granian (the default), HTTP/1 only: in granian's "auto" mode the first bytes of a
connection are read to tell HTTP/1 from HTTP/2 with no timeout at all, so a connection that never
sends a byte held one of its connection slots forever. With HTTP/1, hyper's header-read timeout
(``REELGATE_HTTP_HEADER_TIMEOUT``) runs from the moment a connection is accepted, between
keep-alive requests and while a request head trickles in: a silent, idle or slow-header
connection is closed when it runs out. ``REELGATE_HTTP_MAX_CONNECTIONS`` is granian's
backpressure (connections served at once, per worker); more wait in the kernel's listen backlog
(``REELGATE_HTTP_BACKLOG``) until a slot frees. Idle connections cost granian a few kilobytes.

Under uvicorn (``--server uvicorn``), the same backlog and head deadline (its h11 protocol gets
one: uvicorn itself only times out idle keep-alive connections, never a connection that has not
sent its first request). uvicorn accepts every connection up to the file limit; there is no
connection cap (see ``run_uvicorn``), so ``REELGATE_HTTP_MAX_CONNECTIONS`` applies to granian only.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
from typing import Any

from reelgate.settings import Settings

# File descriptors kept for everything but client connections (database, files, upstreams).
FD_RESERVE = 256


def file_limit() -> int | None:
    """How many files this process may open, its soft limit raised to the hard one first
    (None: no limit, or no such thing on this system)."""
    try:
        import resource
    except ImportError:  # (Windows)
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard or (hard == resource.RLIM_INFINITY and soft != hard):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return None if soft == resource.RLIM_INFINITY else soft


def connection_limit(settings: Settings) -> int:
    """``http_max_connections``, within what the process may open."""
    wanted = settings.http_max_connections
    files = file_limit()
    if files is None or wanted <= files - FD_RESERVE:
        return wanted
    allowed = max(1, files - FD_RESERVE)
    print(
        f"reelgate: REELGATE_HTTP_MAX_CONNECTIONS={wanted} exceeds this process's file limit "
        f"({files}); serving at most {allowed} connections at once",
        file=sys.stderr,
    )
    return allowed


def run_granian(settings: Settings) -> None:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.http import HTTP1Settings

    # RSGI: the status GETs are answered below the ASGI stack (reelgate.api.rsgi); the loop is
    # uvloop where it is installed (a dependency except on Windows), else asyncio's.
    Granian(
        "reelgate.api.rsgi:gateway_from_env",
        address=settings.host,
        port=settings.port,
        interface=Interfaces.RSGI,
        loop=Loops.auto,
        websockets=False,
        factory=True,
        workers=1,
        log_access=False,
        http=HTTPModes.http1,
        backlog=settings.http_backlog,
        backpressure=connection_limit(settings),
        http1_settings=HTTP1Settings(
            header_read_timeout=max(1, round(settings.http_header_timeout * 1000)),
            keep_alive=True,
        ),
    ).serve()


def run_uvicorn(settings: Settings) -> None:
    import uvicorn

    file_limit()
    uvicorn.run(
        "reelgate.api.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        http=head_deadline_protocol(settings.http_header_timeout),
        backlog=settings.http_backlog,
        # No limit_concurrency: it counts idle connections too and answers past it with a
        # plain-text 503, so idle connections would lock everyone out. uvicorn takes every
        # connection (up to the file limit) and the head deadline closes the idle ones.
        timeout_keep_alive=max(1, math.ceil(settings.http_header_timeout)),
    )


def head_deadline_protocol(seconds: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol, closing a connection that has not sent a whole request head within
    ``seconds``: from its accept, and again after each answer (keep-alive)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeadDeadlineH11(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._disarm()  # the head is in: the request has the time it needs

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._arm()  # waiting for the next request's head

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(seconds, self._head_late)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_late(self) -> None:
            self._head_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return HeadDeadlineH11
