"""Typed settings, read at the edge: environment (``REELGATE_`` prefix) over ``reelgate.toml``.

Everything else receives a ``Settings`` object; nothing outside this module reads the environment.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from reelgate.core.errors import ConfigError
from reelgate.core.pricing import PriceTable

CONFIG_FILE_ENV = "REELGATE_CONFIG"
DEFAULT_CONFIG_FILE = "reelgate.toml"


class ArkChannelSetting(BaseModel):
    """One more Ark channel (API key) for the same models (``REELGATE_ARK_ACCOUNTS``, the Ark
    shorthand); tasks stick to their channel."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    api_key: SecretStr
    region: Literal["cn-beijing", "ap-southeast"] = "cn-beijing"
    base_url: str = ""
    max_queued: int | None = Field(120, ge=1)
    max_in_flight: int | None = Field(None, ge=1)
    rpm: int | None = Field(None, ge=1)
    priority: int = Field(0, ge=-1000, le=1000)
    weight: int = Field(1, ge=1, le=1000)
    models: list[str] | None = None

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL ending in /api/v3")
        return value.rstrip("/")


class ChannelSetting(BaseModel):
    """One channel in ``REELGATE_CHANNELS``: any provider's credentials, checked at start-up
    against that provider's own declaration (its credential, regions and options)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    provider: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    # The credential as one string: an API key, ACCESS:SECRET, or a service-account JSON.
    secret: SecretStr = SecretStr("")
    base_url: str = ""
    region: str = ""
    options: dict[str, Any] = Field(default_factory=dict)
    models: list[str] | None = None
    priority: int = Field(0, ge=-1000, le=1000)
    weight: int = Field(1, ge=1, le=1000)
    # Unset: the provider's own default caps.
    max_queued: int | None = Field(None, ge=1)
    max_in_flight: int | None = Field(None, ge=1)
    rpm: int | None = Field(None, ge=1)

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REELGATE_",
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    database_url: str = Field(
        "sqlite:///./reelgate.db",
        description="sqlite:///path.db or postgresql://user@host/db",
    )
    database_connect_timeout: float = Field(
        5.0, gt=0, le=600, description="PostgreSQL: longest wait to open a connection (s)"
    )
    database_statement_timeout: float = Field(
        15.0,
        gt=0,
        le=3600,
        description="PostgreSQL: longest wait for one statement before it is cancelled and the "
        "request answers 503 store_unavailable (s)",
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    public_url: str = Field("", description="Base URL used in links; default http://HOST:PORT")
    secret_key: SecretStr | None = Field(
        None, description="Signs media links; generated and stored in the database if unset"
    )
    data_dir: Path = Field(Path("./reelgate-data"), description="Rendered and mirrored files")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "text"] = Field(
        "auto",
        description="json: one object per line; text: for reading in a terminal; "
        "auto: text when stderr is a terminal, json otherwise",
    )

    # Sandbox provider: the zero-credential local renderer.
    sandbox_enabled: bool = True
    sandbox_queue_seconds: float = Field(1.0, ge=0, le=3600)
    sandbox_run_seconds: float = Field(3.0, ge=0, le=3600)

    # Doubao Seedance on Volcengine Ark / BytePlus ModelArk: the models appear with a key.
    ark_api_key: SecretStr | None = Field(None, description="Ark API key; enables Seedance")
    ark_region: Literal["cn-beijing", "ap-southeast"] = Field(
        "cn-beijing", description="cn-beijing (Volcengine) or ap-southeast (BytePlus)"
    )
    ark_base_url: str = Field("", description="Overrides the region's URL (e.g. a simulator)")
    ark_timeout: float = Field(30.0, gt=0, le=600, description="Per-request timeout (s)")
    ark_max_queued: int | None = Field(
        120, ge=1, description="Tasks in Ark's own queue per account (Ark refuses more)"
    )
    ark_max_in_flight: int | None = Field(
        None, ge=1, description="Tasks queued or running on Ark per account (unset: no cap)"
    )
    ark_rpm: int | None = Field(
        None, ge=1, description="Ark requests per minute per account, shared by all workers"
    )
    ark_priority: int = Field(
        0, ge=-1000, le=1000, description="The default Ark account's priority (higher first)"
    )
    ark_weight: int = Field(
        1, ge=1, le=1000, description="The default Ark account's share within its priority"
    )
    ark_accounts: list[ArkChannelSetting] = Field(
        default_factory=list,
        description="More Ark channels (JSON list): name, api_key, region or base_url, caps, "
        "priority, weight, models",
    )

    channels: list[ChannelSetting] = Field(
        default_factory=list,
        description="Channels of any provider (JSON list): name, provider, secret, base_url, "
        "region, options, models, priority, weight, max_queued, max_in_flight, rpm",
    )

    redis_url: SecretStr | None = Field(
        None, description="redis://host:6379/0: keep rate limits in Redis instead of the database"
    )

    metrics_refresh_seconds: float = Field(
        10.0, gt=0, le=3600, description="How often shared-state metrics are read (s)"
    )
    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="`reelgate worker` serves /metrics on this port"
    )

    # Channels added at run time keep their secrets encrypted with this.
    encryption_key: SecretStr | None = Field(
        None, description="Encrypts upstream keys stored in the database (16+ characters)"
    )
    channel_refresh_seconds: float = Field(
        5.0, gt=0, le=300, description="How often a process re-reads the channels (s)"
    )
    channel_probe_seconds: float = Field(
        300.0, gt=0, description="How often a channel disabled by its health is tried again (s)"
    )

    # Upstream callbacks: Ark posts status changes to reelgate, which confirms them with one
    # look-up. Needs an address Ark can reach: on by default when REELGATE_PUBLIC_URL is set.
    callbacks: bool | None = Field(
        None, description="Ask upstreams to call back (default: on when public_url is set)"
    )
    tracking_typical_seconds: float = Field(
        60.0,
        gt=0,
        le=86400,
        description="Expected task duration before any task of a model has finished (s)",
    )
    max_task_seconds: float = Field(
        72 * 3600.0,
        gt=0,
        description="A task not finished this long after create ends as failure/timeout",
    )

    # Outbound URLs (input images): private/loopback targets are refused unless listed here.
    allow_private_networks: list[str] = Field(
        default_factory=list, description="CIDRs exempt from the SSRF guard, e.g. 127.0.0.0/8"
    )

    # Background worker (#4 makes it distributed).
    worker_enabled: bool = Field(True, description="Run the worker inside `reelgate serve`")
    worker_poll_interval: float = Field(0.5, gt=0, le=60)
    worker_batch_size: int = Field(500, ge=1, le=500)
    worker_lease_seconds: float = Field(60.0, gt=0)

    media_mirror: bool = Field(
        True, description="Copy remote results into reelgate's storage before they expire"
    )
    media_retention_days: float = Field(
        30.0, gt=0, description="How long copied results are kept (days)"
    )
    media_s3_url: str = Field(
        "", description="Keep copies in an S3-compatible bucket: s3://bucket/prefix (default: disk)"
    )
    media_s3_endpoint: str = Field("", description="e.g. https://tos-s3-cn-beijing.volces.com")
    media_s3_region: str = "us-east-1"
    media_s3_access_key_id: SecretStr | None = None
    media_s3_secret_access_key: SecretStr | None = None
    durable_fail_reason: bool = Field(
        False, description="Put the durable link (not the upstream URL) in fail_reason"
    )
    webhook_retry_scale: float = Field(
        1.0, gt=0, le=1, description="Shrinks the webhook retry schedule (for tests only)"
    )
    model_aliases: dict[str, str] = Field(
        default_factory=dict,
        description='Other names for models, e.g. {"ep-2025…": "doubao-seedance-1-0-pro-250528"}',
    )
    openai_default_model: str = Field(
        "sandbox-t2v", description="The model of a POST /v1/videos that names none"
    )
    sse_keepalive_seconds: float = Field(
        15.0, gt=0, le=300, description="Comment lines on idle event streams (s)"
    )

    admin_token: SecretStr | None = Field(
        None, description="Enables the admin API (/v1/admin/…) for this bearer secret"
    )

    # Prices per model in an integer currency unit (see README "Prices and quota"); a model
    # without a price is free.
    prices: dict[str, Any] = Field(
        default_factory=dict,
        description='Per model, a list of price rules: {"model": [{"per_million_tokens": N}, '
        '{"service_tier": "flex", "per_million_tokens": M}]}',
    )
    billing_currency: str = Field(
        "credits",
        min_length=1,
        max_length=16,
        description="The label of the integer unit prices and balances are in, e.g. µCNY",
    )

    # HTTP limits and caches.
    http_max_connections: int = Field(
        10_000,
        ge=1,
        le=1_000_000,
        description="Connections `reelgate serve` (granian) handles at once; more wait in "
        "the listen backlog",
    )
    http_backlog: int = Field(
        2048,
        ge=128,
        le=65_535,
        description="Connections the kernel queues before they are accepted (at most "
        "net.core.somaxconn)",
    )
    http_header_timeout: float = Field(
        10.0,
        ge=0.1,
        le=60,
        description="Seconds a connection may take to send a request's headers (before its "
        "first byte, while they trickle in, idle between keep-alive requests); then it is closed",
    )
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    media_link_ttl: int = Field(24 * 3600, ge=60, description="Lifetime of signed media links (s)")
    token_cache_ttl: float = Field(5.0, ge=0, description="How long a token look-up is reused (s)")
    task_cache_ttl: float = Field(
        1.0,
        ge=0,
        description="How long a non-terminal task row is served from memory (s); for one more "
        "such lifetime it is still served while it is re-read in the background",
    )
    task_cache_size: int = Field(100_000, ge=0)

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "sqlite+aiosqlite:", "postgresql", "postgres:")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @field_validator("allow_private_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for net in value:
            ipaddress.ip_network(net, strict=False)  # raises ValueError naming the bad value
        return value

    @field_validator("ark_base_url")
    @classmethod
    def _ark_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL ending in /api/v3")
        return value.rstrip("/")

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("prices")
    @classmethod
    def _prices(cls, value: dict[str, Any]) -> dict[str, Any]:
        PriceTable.parse(value)  # raises ValueError naming the model and rule
        return value

    @field_validator("ark_accounts")
    @classmethod
    def _unique_accounts(cls, value: list[ArkChannelSetting]) -> list[ArkChannelSetting]:
        names = [a.name for a in value]
        if "default" in names or len(set(names)) != len(names):
            raise ValueError("channel names must be unique and not 'default'")
        return value

    @field_validator("channels")
    @classmethod
    def _unique_channels(cls, value: list[ChannelSetting]) -> list[ChannelSetting]:
        names = [c.name for c in value]
        if len(set(names)) != len(names):
            raise ValueError("channel names must be unique")
        return value

    @property
    def price_table(self) -> PriceTable:
        return PriceTable.parse(self.prices)

    @property
    def callbacks_enabled(self) -> bool:
        return self.callbacks if self.callbacks is not None else bool(self.public_url)

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104 - comparing, not binding
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = os.environ.get(CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE)
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_path)),
        )


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and config file; a bad value raises a one-line ConfigError."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"]) or "settings"
        setting = f"REELGATE_{name.upper()}" if err["type"] != "extra_forbidden" else name
        raise ConfigError(f"invalid setting {setting}: {err['msg']}") from None
    except (OSError, ValueError) as exc:  # e.g. an unreadable or malformed reelgate.toml
        raise ConfigError(f"cannot read configuration: {exc}") from None
