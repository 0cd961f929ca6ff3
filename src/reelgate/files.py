"""Media files: where durable copies of results (and the sandbox's renders) live, a local
directory (default) or an S3-compatible bucket. (``store/`` is the database; this is files.)

Both take a stream of chunks (never a whole file in memory) and give ranges back as streams. The
S3 bucket is obstore's (multipart uploads, ranged GETs), so AWS S3, MinIO, Cloudflare R2, Ceph and
Volcengine TOS all work by endpoint URL. ``MediaRoots`` names the files behind reelgate's own
``local://<root>/<name>`` references (the sandbox's renders, the durable copies), to serve or
delete the file a reference points at.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import obstore
from obstore.exceptions import BaseError, NotFoundError
from obstore.store import S3Store

from reelgate.core.errors import ConfigError, NotFound, ReelgateError

READ_CHUNK = 1024 * 1024
LOCAL_SCHEME = "local://"  # a file reelgate keeps itself: local://<root>/<name>


class FilesError(ReelgateError):
    """The media store failed (unreachable bucket, refused credentials, full disk)."""

    http_status = 503
    default_code = "storage_unavailable"


class MediaFiles(Protocol):
    async def save(self, name: str, chunks: AsyncIterator[bytes]) -> int:
        """Store ``chunks`` under ``name`` (all or nothing); the bytes stored."""

    def local_path(self, name: str) -> Path | None:
        """The file itself when the store is a local directory (served with sendfile)."""

    async def size(self, name: str) -> int:
        """Raises ``NotFound`` (file_not_found) when there is no such file."""

    def read(self, name: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``start``..``end`` (inclusive)."""

    async def delete(self, name: str) -> None: ...


def _safe(name: str) -> str:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise NotFound("no such file", code="file_not_found")
    return name


class LocalFiles:
    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()

    async def save(self, name: str, chunks: AsyncIterator[bytes]) -> int:
        target = self.directory / _safe(name)
        part = target.with_name(target.name + ".part")
        await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
        size = 0
        try:
            with part.open("wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    await asyncio.to_thread(out.write, chunk)
            await asyncio.to_thread(os.replace, part, target)  # never a half-written file
        finally:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(part.unlink)
        return size

    def local_path(self, name: str) -> Path | None:
        path = self.directory / _safe(name)
        return path if path.is_file() else None

    async def size(self, name: str) -> int:
        path = self.local_path(name)
        if path is None:
            raise NotFound("no such file", code="file_not_found")
        return path.stat().st_size

    async def read(self, name: str, start: int, end: int) -> AsyncIterator[bytes]:
        path = self.local_path(name)
        if path is None:
            raise NotFound("no such file", code="file_not_found")
        with path.open("rb") as f:
            f.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = await asyncio.to_thread(f.read, min(READ_CHUNK, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk

    async def delete(self, name: str) -> None:
        try:
            await asyncio.to_thread((self.directory / _safe(name)).unlink)
        except FileNotFoundError:
            pass
        except OSError as exc:  # translated at this boundary
            raise FilesError(f"cannot delete {name}: {type(exc).__name__}") from None


class S3Files:
    """An S3-compatible bucket: ``s3://bucket/prefix`` at ``endpoint`` (default: AWS)."""

    def __init__(
        self,
        url: str,
        *,
        endpoint: str = "",
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ConfigError("REELGATE_MEDIA_S3_URL must look like s3://bucket/prefix")
        self.prefix = parts.path.strip("/")
        options: dict[str, str] = {}
        if endpoint:
            options["endpoint"] = endpoint
        if access_key_id and secret_access_key:
            options["access_key_id"] = access_key_id
            options["secret_access_key"] = secret_access_key
        self._store = S3Store(
            parts.netloc,
            region=region,
            virtual_hosted_style_request=False,
            client_options={"allow_http": endpoint.startswith("http://")},
            **options,  # type: ignore[arg-type]
        )

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{_safe(name)}" if self.prefix else _safe(name)

    async def save(self, name: str, chunks: AsyncIterator[bytes]) -> int:
        size = 0

        async def counted() -> AsyncIterator[bytes]:
            nonlocal size
            async for chunk in chunks:
                size += len(chunk)
                yield chunk

        try:
            await obstore.put_async(self._store, self._key(name), counted(), use_multipart=True)
        except (BaseError, OSError) as exc:  # translated at this boundary
            raise FilesError(f"cannot store {name}: {type(exc).__name__}") from None
        return size

    def local_path(self, name: str) -> Path | None:
        return None

    async def size(self, name: str) -> int:
        try:
            meta = await obstore.head_async(self._store, self._key(name))
        except (FileNotFoundError, NotFoundError):
            raise NotFound("no such file", code="file_not_found") from None
        except (BaseError, OSError) as exc:
            raise FilesError(f"cannot read {name}: {type(exc).__name__}") from None
        return int(meta["size"])

    async def read(self, name: str, start: int, end: int) -> AsyncIterator[bytes]:
        try:
            result = await obstore.get_async(
                self._store, self._key(name), options={"range": (start, end + 1)}
            )
            async for chunk in result.stream(min_chunk_size=READ_CHUNK):
                yield bytes(chunk)
        except (FileNotFoundError, NotFoundError):
            raise NotFound("no such file", code="file_not_found") from None
        except (BaseError, OSError) as exc:
            raise FilesError(f"cannot read {name}: {type(exc).__name__}") from None

    async def delete(self, name: str) -> None:
        try:
            await obstore.delete_async(self._store, self._key(name))
        except (FileNotFoundError, NotFoundError):
            pass
        except (BaseError, OSError) as exc:
            raise FilesError(f"cannot delete {name}: {type(exc).__name__}") from None


class MediaRoots:
    """The stores behind ``local://<root>/<name>`` references, by root (a directory is kept as
    a ``LocalFiles`` of it)."""

    def __init__(self, roots: Mapping[str, Path | MediaFiles]) -> None:
        self._roots: dict[str, MediaFiles] = {
            name: LocalFiles(root) if isinstance(root, Path) else root
            for name, root in roots.items()
        }

    def locate(self, ref: str) -> tuple[MediaFiles, str] | None:
        """The storage and name behind a ``local://root/name`` reference, if it is ours."""
        if not ref.startswith(LOCAL_SCHEME):
            return None
        root, _, name = ref.removeprefix(LOCAL_SCHEME).partition("/")
        storage = self._roots.get(root)
        if storage is None or not name or "/" in name:
            return None
        return storage, name

    async def delete(self, refs: Iterable[str | None]) -> None:
        """Delete the files behind those of ``refs`` that are ours (an upstream's URL is not);
        one that is already gone is no error. Raises ``FilesError`` when a store fails."""
        for ref in dict.fromkeys(r for r in refs if r):
            found = self.locate(ref)
            if found is not None:
                await found[0].delete(found[1])
