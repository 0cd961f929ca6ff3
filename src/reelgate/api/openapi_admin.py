"""The OpenAPI part for the admin API's tokens, quota, ledger and usage (``api/admin.py``), behind
``REELGATE_ADMIN_TOKEN`` (the ``adminBearer`` scheme; without it every admin route answers 404)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reelgate.api.openapi_account import USAGE_ERRORS, USAGE_PARAMETERS, UsageReport, usage_example
from reelgate.api.openapi_common import ADMIN, LIMIT, T0, TASK_ID, body, fail, ok, path, query

TAG = "admin"
TOKEN_ID = "tok_QSY3_qtFwyKbeaHS"  # noqa: S105 - an id, not a secret
REF_PARAM = path("ref", "A token's id (`tok_…`) or its visible prefix (`rg_…`).", TOKEN_ID)
ADMIN_ERRORS = ("invalid_admin_token",)
TOKEN_NOT_FOUND = (404, "token_not_found", "no single active token matches 'rg_nope'", None)


class TokenFields(BaseModel):
    id: str
    name: str
    prefix: str = Field(description="The visible start of the token (`rg_` + 8 characters).")
    created_at: int
    revoked_at: int | None
    active: bool
    models: list[str] = Field(description="Models it may use; empty: all.")
    rpm: int | None = Field(description="Creates per minute; null: no limit.")
    max_concurrent: int | None = Field(description="Unfinished tasks at once; null: no limit.")
    quota_limited: bool = Field(description="Whether creates are refused past its balance.")


class TokenView(TokenFields):
    webhook_url: str | None = Field(description="The token's default webhook endpoint.")


class TokenWithSecret(TokenView):
    token: str = Field(description="The plaintext token: shown this once, never again.")


class TokenQuota(TokenView):
    balance: int
    currency: str
    limited: bool


class TokenList(BaseModel):
    code: Literal["success"]
    data: list[TokenView]


class TokenEnvelope(BaseModel):
    code: Literal["success"]
    data: TokenView


class TokenSecretEnvelope(BaseModel):
    code: Literal["success"]
    data: TokenWithSecret


class TokenQuotaEnvelope(BaseModel):
    code: Literal["success"]
    data: TokenQuota


class TokenLimits(BaseModel):
    """A token's limits; on PATCH only the fields sent change, and null clears one."""

    model_config = ConfigDict(extra="forbid")

    models: list[str] | None = None
    rpm: int | None = Field(None, ge=1)
    max_concurrent: int | None = Field(None, ge=1)
    webhook_url: str | None = Field(None, description="An http(s) URL; null clears it.")


class NewToken(TokenLimits):
    name: str = Field("default", min_length=1, max_length=200)


class QuotaChange(BaseModel):
    """`grant` adds (negative takes away), `set` makes the balance N (both turn the quota on);
    `limited: false` turns it off (charges are still recorded)."""

    model_config = ConfigDict(extra="forbid")

    grant: int | None = None
    set: int | None = None
    limited: bool | None = None
    note: str = Field("", max_length=500, description="Kept on the ledger entry.")


class LedgerEntry(BaseModel):
    id: int
    owner_id: str
    task_id: str | None
    kind: Literal["grant", "adjust", "precharge", "settle", "refund"]
    amount: int = Field(description="Signed: charges are negative.")
    created_at: float = Field(description="Unix seconds (with fractions).")
    note: str
    unit: str | None
    unit_price: int | None
    quantity: int | None


class LedgerPage(BaseModel):
    code: Literal["success"]
    data: list[LedgerEntry] = Field(description="Newest first.")
    currency: str
    has_more: bool
    next_after: int | None = Field(description="Pass as `after` for the next page.")


MODELS: tuple[type[BaseModel], ...] = (
    TokenList,
    TokenEnvelope,
    TokenSecretEnvelope,
    TokenQuotaEnvelope,
    TokenLimits,
    NewToken,
    QuotaChange,
    LedgerPage,
)

TOKEN = {
    "id": TOKEN_ID,
    "name": "mobile-app",
    "prefix": "rg_Z_rfFt9Y",
    "created_at": T0,
    "revoked_at": None,
    "active": True,
    "models": ["sandbox-t2v"],
    "rpm": 60,
    "max_concurrent": 4,
    "quota_limited": False,
    "webhook_url": "https://app.example.com/hooks/video",
}
SECRET = "rg_Z_rfFt9YuEljdlxWL_bsNW-4vTRazvktJK_Fa7A9-rs"  # noqa: S105 - an example
LEDGER = [
    {
        "id": 9,
        "owner_id": TOKEN_ID,
        "task_id": TASK_ID,
        "kind": "settle",
        "amount": 0,
        "created_at": T0 + 52.31,
        "note": "",
        "unit": "per_million_tokens",
        "unit_price": 15000000,
        "quantity": 108900,
    },
    {
        "id": 8,
        "owner_id": TOKEN_ID,
        "task_id": TASK_ID,
        "kind": "precharge",
        "amount": -1633500,
        "created_at": T0 + 0.46,
        "note": "doubao-seedance-1-0-pro-250528",
        "unit": "per_million_tokens",
        "unit_price": 15000000,
        "quantity": 108900,
    },
]


def _token_op(
    summary: str, op_id: str, examples: dict[str, Any], *errors: Any, **extra: Any
) -> dict[str, Any]:
    envelope = TokenSecretEnvelope if op_id in ("createToken", "rotateToken") else TokenEnvelope
    return {
        "tags": [TAG],
        "summary": summary,
        "operationId": op_id,
        "security": ADMIN,
        **extra,
        "responses": {
            "200": ok(envelope, "The token", examples),
            **fail(*errors, *ADMIN_ERRORS, TOKEN_NOT_FOUND),
        },
    }


def paths() -> dict[str, Any]:
    invalid_rpm = (400, "invalid_parameter", "rpm must be a positive integer or null", "rpm")
    return {
        "/v1/admin/tokens": {
            "get": {
                "tags": [TAG],
                "summary": "Every token with its limits (never a secret)",
                "operationId": "listTokens",
                "security": ADMIN,
                "responses": {
                    "200": ok(
                        TokenList, "Tokens", {"tokens": {"code": "success", "data": [TOKEN]}}
                    ),
                    **fail(*ADMIN_ERRORS),
                },
            },
            "post": {
                "tags": [TAG],
                "summary": "A new token; `token` is its plaintext, shown once",
                "operationId": "createToken",
                "security": ADMIN,
                "requestBody": body(
                    NewToken,
                    {
                        "limited": {
                            "name": "mobile-app",
                            "models": ["sandbox-t2v"],
                            "rpm": 60,
                            "max_concurrent": 4,
                            "webhook_url": "https://app.example.com/hooks/video",
                        }
                    },
                ),
                "responses": {
                    "200": ok(
                        TokenSecretEnvelope,
                        "The token with its secret",
                        {"created": {"code": "success", "data": {**TOKEN, "token": SECRET}}},
                    ),
                    **fail(invalid_rpm, "url_not_allowed", *ADMIN_ERRORS),
                },
            },
        },
        "/v1/admin/tokens/{ref}": {
            "patch": _token_op(
                "Change a token's limits or default webhook (null clears one)",
                "changeToken",
                {"changed": {"code": "success", "data": {**TOKEN, "rpm": 120}}},
                invalid_rpm,
                "invalid_json",
                parameters=[REF_PARAM],
                requestBody=body(TokenLimits, {"more per minute": {"rpm": 120}}),
            ),
        },
        "/v1/admin/tokens/{ref}/{action}": {
            "post": {
                "tags": [TAG],
                "summary": "Revoke a token, rotate its secret, or change its quota",
                "description": "`revoke` and `rotate` take no body and answer the token (rotate "
                "with its new plaintext `token`, shown once); `quota` takes a QuotaChange and "
                "answers the token with its balance.",
                "operationId": "tokenAction",
                "security": ADMIN,
                "parameters": [
                    REF_PARAM,
                    {
                        **path("action", "What to do.", "rotate"),
                        "schema": {"enum": ["revoke", "rotate", "quota"]},
                    },
                ],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/QuotaChange"},
                            "examples": {
                                "quota: grant": {"value": {"grant": 5000000, "note": "welcome"}},
                                "quota: off": {"value": {"limited": False}},
                            },
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "The token (rotate: with its new secret; quota: with "
                        "its balance)",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "anyOf": [
                                        {"$ref": "#/components/schemas/TokenSecretEnvelope"},
                                        {"$ref": "#/components/schemas/TokenEnvelope"},
                                        {"$ref": "#/components/schemas/TokenQuotaEnvelope"},
                                    ]
                                },
                                "examples": _action_examples(),
                            }
                        },
                    },
                    **fail(
                        (
                            400,
                            "invalid_parameter",
                            "grant must be an integer amount (no fractions)",
                            "grant",
                        ),
                        *ADMIN_ERRORS,
                        TOKEN_NOT_FOUND,
                    ),
                },
            }
        },
        "/v1/admin/usage": {
            "get": {
                "tags": [TAG],
                "summary": "Usage across every token (as GET /v1/usage)",
                "operationId": "adminUsage",
                "security": ADMIN,
                "parameters": USAGE_PARAMETERS,
                "responses": {
                    "200": ok(
                        UsageReport,
                        "Counts per group",
                        {"per token": usage_example("token", TOKEN_ID)},
                    ),
                    **fail(*USAGE_ERRORS, *ADMIN_ERRORS),
                },
            }
        },
        "/v1/admin/ledger": {
            "get": {
                "tags": [TAG],
                "summary": "Ledger entries, newest first",
                "operationId": "adminLedger",
                "security": ADMIN,
                "parameters": [
                    query("token", {"type": "string"}, "Only this token's (id or prefix)."),
                    LIMIT,
                    query("after", {"type": "integer"}, "`next_after` of the page before."),
                ],
                "responses": {
                    "200": ok(
                        LedgerPage,
                        "A page of entries",
                        {
                            "page": {
                                "code": "success",
                                "data": LEDGER,
                                "currency": "µCNY",
                                "has_more": True,
                                "next_after": 8,
                            }
                        },
                    ),
                    **fail(
                        "invalid_limit",
                        *ADMIN_ERRORS,
                        (404, "token_not_found", "no single token matches 'rg_nope'", None),
                    ),
                },
            }
        },
    }


def _action_examples() -> dict[str, Any]:
    return {
        "rotate": {"value": {"code": "success", "data": {**TOKEN, "token": SECRET}}},
        "revoke": {
            "value": {
                "code": "success",
                "data": {**TOKEN, "active": False, "revoked_at": T0 + 3600},
            }
        },
        "quota": {
            "value": {
                "code": "success",
                "data": {
                    **TOKEN,
                    "quota_limited": True,
                    "balance": 5000000,
                    "currency": "µCNY",
                    "limited": True,
                },
            }
        },
    }
