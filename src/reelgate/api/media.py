"""Files reelgate serves itself (sandbox renders, durable copies of results) at signed links.

Providers hand out ``local://<root>/<name>`` references; ``MediaLinks.url`` turns one into a
signed, expiring public URL and the ``serve`` handler checks the signature before sending the file.
Deleting a task deletes its files first (the service, through ``MediaLinks.roots``), so every
link handed out for them answers 404 from then on, however long it had left to run.
A root is a ``MediaStorage``: a local directory (sent with sendfile, Range by Starlette) or an
S3-compatible bucket (streamed, with single-range requests answered 206).
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from reelgate.api.errors import error_response
from reelgate.core.errors import NotFound, ReelgateError
from reelgate.core.signing import expiry_for, sign_path, verify
from reelgate.storage import LOCAL_SCHEME, LocalStorage, MediaRoots, MediaStorage

ROUTE_PREFIX = "/v1/media/"
# Links are stable for an hour so clients and caches see the same URL between polls.
LINK_BUCKET_SECONDS = 3600
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class _WholeFile(FileResponse):
    """A file sent whole: the request's Range header, if any, is not looked at."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kept = [(k, v) for k, v in scope["headers"] if k not in (b"range", b"if-range")]
        await super().__call__({**scope, "headers": kept}, receive, send)


class MediaLinks:
    def __init__(
        self,
        key: bytes,
        base_url: str,
        roots: Mapping[str, Path | MediaStorage],
        *,
        ttl: int,
        clock: Callable[[], float],
        durable_fail_reason: bool = False,
    ) -> None:
        # The seed puts the video URL in fail_reason: the upstream's (default) or reelgate's copy.
        self.durable_fail_reason = durable_fail_reason
        self._key = key
        self._base = base_url
        # What a link points at; the service deletes a deleted task's files through it.
        self.roots = MediaRoots(
            {
                name: LocalStorage(root) if isinstance(root, Path) else root
                for name, root in roots.items()
            }
        )
        self._ttl = ttl
        self._clock = clock
        # The last epoch, and the clock readings (since, until] that give it.
        self._epoch = (0, 0.0, -1.0)

    def epoch(self) -> int:
        """The expiry every link made now carries; rendered bodies stay valid while it holds."""
        now = self._clock()
        epoch, since, until = self._epoch
        if since < now <= until:
            return epoch  # (asked on every status GET; it changes once per bucket)
        epoch = expiry_for(now, self._ttl, LINK_BUCKET_SECONDS)
        self._epoch = (epoch, epoch - self._ttl - LINK_BUCKET_SECONDS, epoch - self._ttl)
        return epoch

    def url(self, ref: str, epoch: int | None = None) -> str:
        """A public URL for ``ref``; references that are already URLs pass through."""
        if not ref.startswith(LOCAL_SCHEME):
            return ref
        path = ROUTE_PREFIX + ref.removeprefix(LOCAL_SCHEME)
        expires = self.epoch() if epoch is None else epoch
        return self._base + sign_path(self._key, path, expires)

    def locate(self, ref: str) -> tuple[MediaStorage, str] | None:
        """The storage and name behind a ``local://root/name`` reference, if it is ours."""
        return self.roots.locate(ref)

    async def send(self, storage: MediaStorage, name: str, request: Request) -> Response:
        """The file as a response: sendfile for a local one, a (ranged) stream otherwise."""
        media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        headers = {"Cache-Control": "private, max-age=3600"}
        size = await storage.size(name)  # NotFound when it is gone
        start, end, status = 0, size - 1, 200
        # One range is served; a malformed or multi-range header is ignored (RFC 9110 allows
        # it), the same for both stores, so a file never answers in an undocumented form.
        wanted = _RANGE.match(request.headers.get("range", ""))
        ranged = bool(wanted and (wanted.group(1) or wanted.group(2)))
        if wanted and ranged:
            if wanted.group(1):
                start = int(wanted.group(1))
                end = min(size - 1, int(wanted.group(2))) if wanted.group(2) else size - 1
            else:
                start = max(0, size - int(wanted.group(2)))
            if start > end or start >= size:
                return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
            status = 206
        path = storage.local_path(name)
        if path is not None:  # sendfile; Starlette serves the one range itself
            sendfile = FileResponse if ranged else _WholeFile
            return sendfile(path, media_type=media_type, headers=headers)
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        headers["Content-Length"] = str(end - start + 1)
        headers["Accept-Ranges"] = "bytes"
        if request.method == "HEAD":
            return Response(status_code=status, headers=headers, media_type=media_type)
        return StreamingResponse(
            storage.read(name, start, end),
            status_code=status,
            headers=headers,
            media_type=media_type,
        )

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
            found = self.locate(f"{LOCAL_SCHEME}{root}/{name}")
            if found is None:
                raise NotFound("no such file", code="file_not_found")
            return await self.send(*found, request)
        except ReelgateError as exc:
            return error_response(exc)
