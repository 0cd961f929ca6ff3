"""The OpenAPI part for prices and quota: the quote of a create body and the token's balance."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from reelgate.api.openapi_common import ARK_MODEL, AUTH_ERRORS, BEARER, body, fail, ok
from reelgate.api.openapi_seed import CREATE_EXAMPLES, CreateRequest


class Quote(BaseModel):
    model: str | None = Field(description="The model's catalogue name; null for a free model.")
    amount: int = Field(description="The estimated charge (what a create pre-charges).")
    currency: str = Field(description="The label of the integer unit (REELGATE_BILLING_CURRENCY).")
    estimated_tokens: int | None = Field(
        description="width x height x (24 seconds + 1) / 1024, rounded up"
    )
    unit: Literal["per_million_tokens", "per_second", "per_task"] | None
    unit_price: int | None
    quantity: int | None = Field(description="Estimated tokens, seconds of video or 1 task.")
    rule: dict[str, Any] | None = Field(
        description="The price rule used: its price and the conditions it matched (`when`)."
    )
    balance: int = Field(description="The token's balance now.")
    balance_after: int = Field(description="The balance once this request is pre-charged.")
    limited: bool = Field(description="Whether the token's quota is enforced.")
    sufficient: bool = Field(description="Whether a create would pass the quota check now.")


class QuoteEnvelope(BaseModel):
    code: Literal["success"]
    data: Quote


class BalanceData(BaseModel):
    balance: int = Field(description="The sum of the token's ledger (grants minus charges).")
    currency: str
    limited: bool = Field(description="Creates costing more than the balance are refused (402).")


class BalanceEnvelope(BaseModel):
    code: Literal["success"]
    data: BalanceData


MODELS: tuple[type[BaseModel], ...] = (QuoteEnvelope, BalanceEnvelope)

QUOTE = {
    "model": ARK_MODEL,
    "amount": 1633500,
    "currency": "µCNY",
    "estimated_tokens": 108900,
    "unit": "per_million_tokens",
    "unit_price": 15000000,
    "quantity": 108900,
    "rule": {"per_million_tokens": 15000000, "when": {}},
    "balance": 5000000,
    "balance_after": 3366500,
    "limited": True,
    "sufficient": True,
}
FREE = {
    "model": None,
    "amount": 0,
    "currency": "µCNY",
    "estimated_tokens": None,
    "unit": None,
    "unit_price": None,
    "quantity": None,
    "rule": None,
    "balance": 5000000,
    "balance_after": 5000000,
    "limited": True,
    "sufficient": True,
}


def paths() -> dict[str, Any]:
    return {
        "/v1/video/generations/quote": {
            "post": {
                "tags": ["billing"],
                "summary": "The estimated charge of a create body (nothing is created)",
                "description": "Validated exactly as `POST /v1/video/generations` (same errors); "
                "the amount is what a create with this body pre-charges.",
                "operationId": "quoteVideoGeneration",
                "security": BEARER,
                "requestBody": body(CreateRequest, CREATE_EXAMPLES, form=True),
                "responses": {
                    "200": ok(
                        QuoteEnvelope,
                        "The estimated charge",
                        {
                            "priced": {"code": "success", "data": QUOTE},
                            "free model": {"code": "success", "data": FREE},
                        },
                    ),
                    **fail(
                        "missing_prompt",
                        "unknown_field",
                        "model_not_found",
                        "invalid_option",
                        "invalid_json",
                        *AUTH_ERRORS,
                        "model_not_allowed",
                        "payload_too_large",
                        "unsupported_media_type",
                    ),
                },
            }
        },
        "/v1/balance": {
            "get": {
                "tags": ["billing"],
                "summary": "The token's quota balance",
                "operationId": "getBalance",
                "security": BEARER,
                "responses": {
                    "200": ok(
                        BalanceEnvelope,
                        "The balance",
                        {
                            "balance": {
                                "code": "success",
                                "data": {"balance": 3366500, "currency": "µCNY", "limited": True},
                            }
                        },
                    ),
                    **fail(*AUTH_ERRORS),
                },
            }
        },
    }
