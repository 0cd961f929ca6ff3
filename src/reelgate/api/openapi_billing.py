"""The OpenAPI part for prices and quota: the quote of a create body and the token's balance."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field


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


def paths(
    security: list[dict[str, list[str]]],
    create_body: dict[str, Any],
    json: Callable[[type[BaseModel], str], dict[str, Any]],
    errors: Callable[..., dict[str, Any]],
) -> dict[str, Any]:
    return {
        "/v1/video/generations/quote": {
            "post": {
                "summary": "The estimated charge of a create body (nothing is created)",
                "description": "Validated exactly as `POST /v1/video/generations` (same errors); "
                "the amount is what a create with this body pre-charges.",
                "operationId": "quoteVideoGeneration",
                "security": security,
                "requestBody": create_body,
                "responses": {
                    "200": json(QuoteEnvelope, "The estimated charge"),
                    **errors(400, 401, 403, 413, 415),
                },
            }
        },
        "/v1/balance": {
            "get": {
                "summary": "The token's quota balance",
                "operationId": "getBalance",
                "security": security,
                "responses": {"200": json(BalanceEnvelope, "The balance"), **errors(401)},
            }
        },
    }
