"""Files reelgate serves itself (sandbox renders now, mirrored results later) at signed links.

Providers hand out ``local://<root>/<name>`` references; ``MediaLinks.url`` turns one into a
signed, expiring public URL and the ``serve`` handler checks the signature before sending the file.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable, Mapping
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from reelgate.api.errors import error_response
from reelgate.core.errors import NotFound, ReelgateError
from reelgate.core.signing import expiry_for, sign_path, verify

LOCAL_SCHEME = "local://"
ROUTE_PREFIX = "/v1/media/"
# Links are stable for an hour so clients and caches see the same URL between polls.
LINK_BUCKET_SECONDS = 3600


class MediaLinks:
    def __init__(
        self,
        key: bytes,
        base_url: str,
        roots: Mapping[str, Path],
        *,
        ttl: int,
        clock: Callable[[], float],
        durable_fail_reason: bool = False,
    ) -> None:
        # The seed puts the video URL in fail_reason: the upstream's (default) or reelgate's copy.
        self.durable_fail_reason = durable_fail_reason
        self._key = key
        self._base = base_url
        self._roots = {name: root.resolve() for name, root in roots.items()}
        self._ttl = ttl
        self._clock = clock

    def epoch(self) -> int:
        """The expiry every link made now carries; rendered bodies stay valid while it holds."""
        return expiry_for(self._clock(), self._ttl, LINK_BUCKET_SECONDS)

    def url(self, ref: str, epoch: int | None = None) -> str:
        """A public URL for ``ref``; references that are already URLs pass through."""
        if not ref.startswith(LOCAL_SCHEME):
            return ref
        path = ROUTE_PREFIX + ref.removeprefix(LOCAL_SCHEME)
        expires = self.epoch() if epoch is None else epoch
        return self._base + sign_path(self._key, path, expires)

    def path_of(self, ref: str) -> Path | None:
        """The file behind a ``local://root/name`` reference, if there is one."""
        if not ref.startswith(LOCAL_SCHEME):
            return None
        root, _, name = ref.removeprefix(LOCAL_SCHEME).partition("/")
        try:
            return self._file(root, name)
        except NotFound:
            return None

    def _file(self, root: str, name: str) -> Path:
        base = self._roots.get(root)
        if base is None:
            raise NotFound("no such file", code="file_not_found")
        path = (base / name).resolve()
        if path.parent != base or not path.is_file():
            raise NotFound("no such file", code="file_not_found")
        return path

    async def serve(self, request: Request) -> Response:
        root = request.path_params["root"]
        name = request.path_params["name"]
        try:
            verify(
                self._key,
                f"{ROUTE_PREFIX}{root}/{name}",
                request.query_params.get("expires"),
                request.query_params.get("sig"),
                self._clock(),
            )
            path = self._file(root, name)
        except ReelgateError as exc:
            return error_response(exc)
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return FileResponse(
            path,
            media_type=media_type,
            headers={"Cache-Control": "private, max-age=3600"},
        )
