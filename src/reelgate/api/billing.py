"""What a request would cost and what a token has left, for the token itself.

POST /v1/video/generations/quote   the create body → its estimated charge (nothing is created)
GET  /v1/balance                   the token's balance (the sum of its ledger)
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from reelgate.api.body import read_object
from reelgate.api.errors import error_response
from reelgate.api.seed import bearer
from reelgate.core.errors import ReelgateError
from reelgate.core.pricing import Balance, Charge
from reelgate.core.request import parse_seed_body
from reelgate.service import VideoService


def balance_view(balance: Balance, currency: str) -> dict[str, Any]:
    return {"balance": balance.amount, "currency": currency, "limited": balance.limited}


def quote_view(charge: Charge | None, balance: Balance, currency: str) -> dict[str, Any]:
    amount = charge.amount if charge is not None else 0
    return {
        "model": charge.model if charge is not None else None,
        "amount": amount,
        "currency": currency,
        "estimated_tokens": charge.tokens if charge is not None else None,
        "unit": charge.rule.unit if charge is not None else None,
        "unit_price": charge.rule.price if charge is not None else None,
        "quantity": charge.quantity if charge is not None else None,
        "rule": charge.rule.describe() if charge is not None else None,
        "balance": balance.amount,
        "balance_after": balance.amount - amount,
        "limited": balance.limited,
        # Whether a create would be accepted now as far as quota goes.
        "sufficient": not balance.limited or balance.amount >= amount,
    }


def _ok(data: dict[str, Any]) -> Response:
    body = {"code": "success", "data": data}
    return Response(json.dumps(body).encode(), media_type="application/json")


class BillingSurface:
    def __init__(self, service: VideoService, max_body: int) -> None:
        self.service = service
        self.max_body = max_body

    async def quote(self, request: Request) -> Response:
        try:
            owner = await self.service.authenticate(bearer(request))
            fields = await read_object(request, self.max_body)
            charge, balance = await self.service.quote(owner, parse_seed_body(fields))
        except ReelgateError as exc:
            return error_response(exc)
        return _ok(quote_view(charge, balance, self.service.currency))

    async def balance(self, request: Request) -> Response:
        try:
            owner = await self.service.authenticate(bearer(request))
            balance = await self.service.store.balance(owner.id)
        except ReelgateError as exc:
            return error_response(exc)
        return _ok(balance_view(balance, self.service.currency))
