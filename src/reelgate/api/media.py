"""Files reelgate serves itself (sandbox renders, durable copies of results) at signed links.

Providers hand out ``local://<root>/<name>`` references; ``MediaLinks.url`` turns one into a
signed, expiring public URL and the ``serve`` handler checks the signature before sending the file.
Deleting a task deletes its files first (the service, through ``MediaLinks.roots``), so every
link handed out for them answers 404 from then on, however long it had left to run.
A root is a ``MediaFiles``: a local directory (sent with sendfile, Range by Starlette) or an
S3-compatible bucket (streamed, with single-range requests answered 206).
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from reelgate.api.errors import error_response
from reelgate.core.errors import NotFound, ReelgateError
from reelgate.core.signing import expiry_for, sign_path, verify
from reelgate.files import LOCAL_SCHEME, MediaFiles, MediaRoots

ROUTE_PREFIX = "/v1/media/"
# Links are stable for an hour so clients and caches see the same URL between polls.
LINK_BUCKET_SECONDS = 3600
_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)", re.ASCII)
# What a link we signed carries: an expiry in Unix seconds and an unpadded base64url HMAC.
_EXPIRES = re.compile(r"[0-9]{1,12}")
_SIG = re.compile(r"[A-Za-z0-9_-]{43}")
# A position past any file: a longer number in a Range header means "beyond the end".
_FAR = 2**62


def _position(raw: str) -> int:
    return int(raw) if len(raw) <= 18 else _FAR


class _File(FileResponse):
    """A local file sent whole, or the one range already checked here: Starlette's own Range
    parsing only ever sees the canonical ``bytes=START-END``."""

    def __init__(self, path: Path, span: tuple[int, int] | None, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self._span = span

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._span is None:
            kept = [(k, v) for k, v in scope["headers"] if k not in (b"range", b"if-range")]
        else:
            kept = [(k, v) for k, v in scope["headers"] if k != b"range"]
            kept.append((b"range", b"bytes=%d-%d" % self._span))
        await super().__call__({**scope, "headers": kept}, receive, send)


class MediaLinks:
    def __init__(
        self,
        key: bytes,
        base_url: str,
        roots: MediaRoots | Mapping[str, Path | MediaFiles],
        *,
        ttl: int,
        clock: Callable[[], float],
        durable_fail_reason: bool = False,
    ) -> None:
        # The seed puts the video URL in fail_reason: the upstream's (default) or reelgate's copy.
        self.durable_fail_reason = durable_fail_reason
        self._key = key
        self._base = base_url
        # What a link points at (the service deletes a deleted task's files in the same roots).
        self.roots = roots if isinstance(roots, MediaRoots) else MediaRoots(roots)
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

    def locate(self, ref: str) -> tuple[MediaFiles, str] | None:
        """The storage and name behind a ``local://root/name`` reference, if it is ours."""
        return self.roots.locate(ref)

    async def send(self, storage: MediaFiles, name: str, request: Request) -> Response:
        """The file as a response: sendfile for a local one, a (ranged) stream otherwise."""
        media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        headers = {"Cache-Control": "private, max-age=3600"}
        size = await storage.size(name)  # NotFound when it is gone
        start, end, status = 0, size - 1, 200
        # One range is served; a malformed or multi-range header is ignored (RFC 9110 allows
        # it), the same for both stores, so a file never answers in an undocumented form.
        wanted = _RANGE.fullmatch(request.headers.get("range", ""))
        ranged = bool(wanted and (wanted.group(1) or wanted.group(2)))
        if wanted and ranged:
            first, last = wanted.group(1), wanted.group(2)
            if first:
                start = _position(first)
                end = min(size - 1, _position(last)) if last else size - 1
            else:
                start = max(0, size - _position(last))
            if start > end or start >= size:
                return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
            status = 206
        path = storage.local_path(name)
        if path is not None:  # sendfile; Starlette serves the one range itself
            span = (start, end) if status == 206 else None
            return _File(path, span, media_type=media_type, headers=headers)
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
            expires = request.query_params.get("expires") or ""
            sig = request.query_params.get("sig") or ""
            if not _EXPIRES.fullmatch(expires) or not _SIG.fullmatch(sig):
                raise NotFound("no such file", code="file_not_found")  # not a link we made
            verify(self._key, f"{ROUTE_PREFIX}{root}/{name}", expires, sig, self._clock())
            found = self.locate(f"{LOCAL_SCHEME}{root}/{name}")
            if found is None:
                raise NotFound("no such file", code="file_not_found")
            return await self.send(*found, request)
        except ReelgateError as exc:
            return error_response(exc)
