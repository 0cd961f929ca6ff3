"""The baseline: a bare Starlette handler under the same server, returning a fixed body."""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = open(os.environ["BARE_BODY_FILE"], "rb").read()  # noqa: SIM115 - read once at start


async def handler(_request: Request) -> Response:
    return Response(BODY, media_type="application/json")


app = Starlette(routes=[Route("/v1/video/generations/{task_id}", handler)])
