"""A wire-level simulator of the S3 object API subset reelgate's media store uses.

Path-style requests: PutObject, multipart uploads (create, upload part, complete, abort),
GetObject with ``Range``, HeadObject, DeleteObject and DeleteObjects; S3's XML error bodies; an
access-key check on the SigV4 ``Authorization`` header (signatures are not recomputed). Objects
live in memory.
Serve it with ``serve_s3_in_thread(S3Simulator(...))`` and point ``REELGATE_MEDIA_S3_ENDPOINT``
at it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from email.utils import formatdate

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from reelgate.testing.simulator.server import start_server

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass
class S3Object:
    data: bytes
    etag: str
    modified: float


@dataclass
class S3Simulator:
    access_key_id: str
    buckets: set[str] = field(default_factory=set)
    objects: dict[tuple[str, str], S3Object] = field(default_factory=dict)
    uploads: dict[str, dict[int, bytes]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(
                    "/{bucket}/{key:path}",
                    self.handle,
                    methods=["GET", "HEAD", "PUT", "POST", "DELETE"],
                )
            ]
        )

    async def handle(self, request: Request) -> Response:
        bucket, key = request.path_params["bucket"], request.path_params["key"]
        q = request.query_params
        self.requests.append((request.method, f"{bucket}/{key}?{request.url.query}"))
        auth = request.headers.get("authorization", "")
        if f"Credential={self.access_key_id}/" not in auth:
            return _error(403, "InvalidAccessKeyId", "The AWS Access Key Id does not exist.")
        if bucket not in self.buckets:
            return _error(404, "NoSuchBucket", "The specified bucket does not exist.")
        if request.method == "POST" and "delete" in q:  # DeleteObjects, in bulk
            keys = [
                n.text or ""
                for n in ET.fromstring(await request.body()).iter()  # noqa: S314
                if n.tag.endswith("Key")
            ]
            for k in keys:
                self.objects.pop((bucket, k), None)
            deleted = "".join(f"<Deleted><Key>{k}</Key></Deleted>" for k in keys)
            return _xml(f"<DeleteResult>{deleted}</DeleteResult>")
        if request.method == "POST" and "uploads" in q:
            upload = secrets.token_hex(8)
            self.uploads[upload] = {}
            return _xml(
                f"<InitiateMultipartUploadResult><Bucket>{bucket}</Bucket><Key>{key}</Key>"
                f"<UploadId>{upload}</UploadId></InitiateMultipartUploadResult>"
            )
        if request.method == "PUT" and "uploadId" in q:
            parts = self.uploads.get(q["uploadId"])
            if parts is None:
                return _error(404, "NoSuchUpload", "The upload does not exist.")
            body = await request.body()
            parts[int(q["partNumber"])] = body
            return Response(headers={"ETag": f'"{hashlib.md5(body).hexdigest()}"'})  # noqa: S324
        if request.method == "POST" and "uploadId" in q:
            parts = self.uploads.pop(q["uploadId"], None)
            if parts is None:
                return _error(404, "NoSuchUpload", "The upload does not exist.")
            order = [
                int(n.text or 0)
                for n in ET.fromstring(await request.body()).iter()  # noqa: S314
                if n.tag.endswith("PartNumber")
            ]
            data = b"".join(parts[n] for n in order)
            etag = self._put(bucket, key, data)
            return _xml(
                f"<CompleteMultipartUploadResult><Bucket>{bucket}</Bucket><Key>{key}</Key>"
                f"<ETag>{etag}</ETag></CompleteMultipartUploadResult>"
            )
        if request.method == "DELETE" and "uploadId" in q:
            self.uploads.pop(q["uploadId"], None)
            return Response(status_code=204)
        if request.method == "PUT":
            etag = self._put(bucket, key, await request.body())
            return Response(headers={"ETag": etag})
        if request.method == "DELETE":
            self.objects.pop((bucket, key), None)
            return Response(status_code=204)
        return self._get(bucket, key, request)

    def _put(self, bucket: str, key: str, data: bytes) -> str:
        etag = f'"{hashlib.md5(data).hexdigest()}"'  # noqa: S324 - S3's ETag, not security
        self.objects[(bucket, key)] = S3Object(data, etag, time.time())
        return etag

    def _get(self, bucket: str, key: str, request: Request) -> Response:
        obj = self.objects.get((bucket, key))
        if obj is None:
            return _error(404, "NoSuchKey", "The specified key does not exist.")
        headers = {
            "ETag": obj.etag,
            "Last-Modified": formatdate(obj.modified, usegmt=True),
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        size = len(obj.data)
        start, end, status = 0, size - 1, 200
        wanted = _RANGE.match(request.headers.get("range", ""))
        if wanted and (wanted.group(1) or wanted.group(2)):
            if wanted.group(1):
                start = int(wanted.group(1))
                end = min(size - 1, int(wanted.group(2))) if wanted.group(2) else size - 1
            else:
                start = max(0, size - int(wanted.group(2)))
            if start > end:
                return _error(416, "InvalidRange", "The requested range is not satisfiable.")
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        headers["Content-Length"] = str(end - start + 1)
        body = b"" if request.method == "HEAD" else obj.data[start : end + 1]
        return Response(body, status_code=status, headers=headers)


def _xml(body: str, status: int = 200) -> Response:
    text = '<?xml version="1.0" encoding="UTF-8"?>' + body
    return Response(text, status_code=status, media_type="application/xml")


def _error(status: int, code: str, message: str) -> Response:
    return _xml(f"<Error><Code>{code}</Code><Message>{message}</Message></Error>", status)


@dataclass
class S3Handle:
    server: uvicorn.Server
    thread: threading.Thread
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def serve_s3_in_thread(sim: S3Simulator, port: int = 0) -> S3Handle:
    """Serve ``sim`` on loopback in a background thread (``port=0``: any free port)."""
    server, thread, bound = start_server(sim.app, port=port, lifespan="off")
    return S3Handle(server, thread, bound)
