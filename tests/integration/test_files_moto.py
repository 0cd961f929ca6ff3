"""Durable copies in an S3 that reelgate's authors did not write: moto's server mode on loopback,
checking request signatures (its IAM emulation), with multipart uploads and ranged reads.

The shipped ``S3Simulator`` proves reelgate's own expectations; this proves them against a third
party's reading of S3.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import boto3
import httpx
import pytest

from reelgate.core.errors import NotFound
from reelgate.files import FilesError, S3Files
from tests.conftest import free_port

BUCKET = "reelgate-copies"
MiB = 1024 * 1024


@dataclass
class Moto:
    endpoint: str
    key_id: str
    secret: str


@pytest.fixture(scope="module")
def moto() -> Iterator[Moto]:
    """A moto server (its own process) whose requests must be signed by an IAM user's keys (the
    first few actions are free: they create that user and its policy)."""
    free_actions = 3  # create_user, create_access_key, put_user_policy
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(free_actions)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{endpoint}/moto-api/", timeout=1)
            break
        except httpx.HTTPError:
            assert time.monotonic() < deadline, "moto did not start"
            assert server.poll() is None, "moto exited"
            time.sleep(0.1)
    try:
        boot = {"endpoint_url": endpoint, "region_name": "us-east-1"}
        iam = boto3.client("iam", aws_access_key_id="boot", aws_secret_access_key="boot", **boot)
        iam.create_user(UserName="reelgate")
        keys = iam.create_access_key(UserName="reelgate")["AccessKey"]
        allow_s3 = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
        }
        iam.put_user_policy(
            UserName="reelgate", PolicyName="copies", PolicyDocument=json.dumps(allow_s3)
        )
        boto3.client(
            "s3",
            aws_access_key_id=keys["AccessKeyId"],
            aws_secret_access_key=keys["SecretAccessKey"],
            **boot,
        ).create_bucket(Bucket=BUCKET)
        yield Moto(endpoint, keys["AccessKeyId"], keys["SecretAccessKey"])
    finally:
        server.terminate()
        server.wait(timeout=30)


def files(moto: Moto, *, secret: str | None = None) -> S3Files:
    return S3Files(
        f"s3://{BUCKET}/kept",
        endpoint=moto.endpoint,
        region="us-east-1",
        access_key_id=moto.key_id,
        secret_access_key=secret or moto.secret,
    )


async def chunks(data: bytes, size: int = MiB) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
        await asyncio.sleep(0)


async def read_all(store: S3Files, name: str, start: int, end: int) -> bytes:
    return b"".join([part async for part in store.read(name, start, end)])


def test_a_large_copy_goes_up_in_parts_and_comes_back_in_ranges(moto: Moto) -> None:
    data = bytes(range(256)) * (48 * 1024)  # 12 MiB: more than one 5 MiB part

    async def go() -> None:
        store = files(moto)
        assert await store.save("task_1.video.mp4", chunks(data)) == len(data)
        assert await store.size("task_1.video.mp4") == len(data)
        assert await read_all(store, "task_1.video.mp4", 0, 99) == data[:100]
        middle = 7 * MiB + 3
        assert await read_all(store, "task_1.video.mp4", middle, middle + 9) == data[middle:][:10]
        tail = len(data) - 5
        assert await read_all(store, "task_1.video.mp4", tail, len(data) - 1) == data[-5:]
        await store.delete("task_1.video.mp4")
        with pytest.raises(NotFound):
            await store.size("task_1.video.mp4")
        await store.delete("task_1.video.mp4")  # already gone: no error

    asyncio.run(go())
    keys = boto3.client(
        "s3",
        endpoint_url=moto.endpoint,
        region_name="us-east-1",
        aws_access_key_id=moto.key_id,
        aws_secret_access_key=moto.secret,
    ).list_objects_v2(Bucket=BUCKET, Prefix="kept/")
    assert keys.get("KeyCount", 0) == 0


def test_a_wrong_secret_is_refused_by_the_signature_check(moto: Moto) -> None:
    async def go() -> None:
        with pytest.raises(FilesError):
            await files(moto, secret="not-the-secret").save("task_2.video.mp4", chunks(b"x"))

    asyncio.run(go())
