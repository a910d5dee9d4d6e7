"""Settings: a TOML file plus WATCHER_SECTION__KEY environment overrides.

Read once at start (`load_settings`) and passed down; nothing reads settings at import time.
"""

from __future__ import annotations

import os
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

MAINNET_USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"


class ConfigError(Exception):
    """The configuration is invalid; the message names the bad key."""


class _Section(BaseModel):
    model_config = {"extra": "forbid"}


class DatabaseSettings(_Section):
    url: str = "sqlite+aiosqlite:///./watcher.db"


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_url: str = ""
    rate_limit_per_minute: int = Field(120, ge=0)
    max_body_bytes: int = Field(65536, ge=1024)


class TronSettings(_Section):
    endpoints: list[str] = ["http://127.0.0.1:9090"]
    api_key: str = ""
    usdt_contract: str = MAINNET_USDT
    start_block: Literal["latest"] | int = "latest"
    finality: Literal["solidified"] | int = "solidified"
    poll_interval_s: float = Field(1.0, gt=0)
    request_timeout_s: float = Field(10.0, gt=0)
    late_window_h: float = Field(24, ge=0)
    tolerance_micro: int = Field(0, ge=0)
    max_lag_blocks: int = Field(100, ge=1)

    @field_validator("endpoints")
    @classmethod
    def _endpoints(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one endpoint is required")
        for url in v:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"endpoint {url!r} is not an http(s) URL")
        return [u.rstrip("/") for u in v]


class WalletSettings(_Section):
    mode: Literal["hd", "pool"] = "hd"
    xpub: str = ""
    addresses: list[str] = []


class RatesSettings(_Section):
    binance_base_url: str = "https://api.binance.com"
    symbol: str = "USDTTRY"
    spread_percent: Decimal = Field(Decimal(0), ge=0, lt=100)
    cache_s: float = Field(10, ge=0)
    max_age_s: float = Field(300, ge=0)
    quote_ttl_min: float = Field(30, gt=0)
    timeout_s: float = Field(5, gt=0)


class LimitsSettings(_Section):
    crypto_min: Decimal = Decimal(100)
    crypto_max: Decimal = Decimal(500000)
    card_min: Decimal = Decimal(500)
    card_max: Decimal = Decimal(50000)
    daily_count: int = Field(0, ge=0)
    daily_sum: Decimal = Field(Decimal(0), ge=0)
    monthly_count: int = Field(0, ge=0)
    monthly_sum: Decimal = Field(Decimal(0), ge=0)

    @model_validator(mode="after")
    def _ranges(self) -> LimitsSettings:
        if self.crypto_min > self.crypto_max:
            raise ValueError("crypto_min is above crypto_max")
        if self.card_min > self.card_max:
            raise ValueError("card_min is above card_max")
        return self


class CallbackSettings(_Section):
    max_attempts: int = Field(5, ge=1, le=5)
    # Seconds before attempts 2..5: 1 min, 10 min, 1 h, 6 h. Merchant outages last hours.
    backoff_s: list[float] = [60, 600, 3600, 21600]
    timeout_s: float = Field(10, gt=0)
    allow_private_urls: bool = False
    concurrency: int = Field(16, ge=1)
    per_host_concurrency: int = Field(4, ge=1)
    poll_interval_s: float = Field(1.0, gt=0)

    @field_validator("backoff_s")
    @classmethod
    def _backoff(cls, v: list[float]) -> list[float]:
        if not v or any(x < 0 for x in v):
            raise ValueError("backoff_s needs at least one non-negative number")
        return v


class ProviderSettings(_Section):
    enabled: bool = False
    base_url: str = ""
    api_key: str = ""
    secret: str = ""
    webhook_secret: str = ""


class ProvidersSettings(_Section):
    stripe: ProviderSettings = ProviderSettings()
    acidpanel: ProviderSettings = ProviderSettings()
    kazawallet: ProviderSettings = ProviderSettings()


class LogSettings(_Section):
    level: str = "INFO"
    json_logs: bool = True


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="WATCHER_", env_nested_delimiter="__", extra="forbid"
    )

    database: DatabaseSettings = DatabaseSettings()
    api: ApiSettings = ApiSettings()
    tron: TronSettings = TronSettings()
    wallet: WalletSettings = WalletSettings()
    rates: RatesSettings = RatesSettings()
    limits: LimitsSettings = LimitsSettings()
    callbacks: CallbackSettings = CallbackSettings()
    providers: ProvidersSettings = ProvidersSettings()
    log: LogSettings = LogSettings()
    config_path: str = ""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment wins over the file (passed as init values).
        return (env_settings, init_settings)

    def public_url(self) -> str:
        if self.api.public_url:
            return self.api.public_url.rstrip("/")
        return f"http://{self.api.host}:{self.api.port}"


def load_settings(path: str | Path | None = None) -> Settings:
    """Load settings from `path` (or WATCHER_CONFIG), env overrides on top.

    Raises ConfigError with the offending key named.
    """
    path = path or os.environ.get("WATCHER_CONFIG") or None
    data: dict[str, Any] = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        try:
            data = tomllib.loads(p.read_text("utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from exc
        data["config_path"] = str(p.resolve())
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        lines.append(f"{key}: {err['msg']}")
    return "invalid configuration: " + "; ".join(lines)
