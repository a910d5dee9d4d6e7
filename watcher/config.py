"""Settings: a TOML file plus WATCHER_SECTION__KEY environment overrides.

Read once at start (`load_settings`) and passed down; nothing reads settings at import time.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import os
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import structlog
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from watcher.redact import redact_db_url, redact_url

MAINNET_USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
ENV_PREFIX = "WATCHER_"
# Read outside the settings model: the config file's path and the master key (watcher.secrets).
OTHER_ENV = frozenset({"WATCHER_CONFIG", "WATCHER_SECRET_KEY"})

log = structlog.get_logger("watcher.config")


class ConfigError(Exception):
    """The configuration is invalid; the message names the bad key."""


class _Section(BaseModel):
    model_config = {"extra": "forbid"}


# The async drivers the daemon is built on, and what an operator may have written instead.
_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


class DatabaseSettings(_Section):
    url: str = "sqlite+aiosqlite:///./watcher.db"

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        try:
            url = make_url(v)
        except ArgumentError:
            raise ValueError(
                "not a database URL; use sqlite+aiosqlite:///./watcher.db or "
                "postgresql+asyncpg://user@host:5432/db"
            ) from None
        wanted = _DRIVERS.get(url.get_backend_name())
        if wanted is None:
            raise ValueError("only SQLite (sqlite+aiosqlite://…) and PostgreSQL are supported")
        if url.drivername != wanted:
            fixed = redact_db_url(url.set(drivername=wanted).render_as_string(False))
            raise ValueError(f"use the async driver: {fixed}")
        return v


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_url: str = ""
    rate_limit_per_minute: int = Field(120, ge=0)
    auth_failures_per_minute: int = Field(30, ge=0)
    pay_rate_limit_per_minute: int = Field(600, ge=0)
    # Seconds an API process remembers a key that authenticated; a key rotated or a merchant
    # disabled by another process (the CLI) is refused once this has passed. 0: look up each.
    key_cache_s: float = Field(2, ge=0, le=60)
    trusted_proxies: list[str] = ["127.0.0.1", "::1"]
    max_body_bytes: int = Field(65536, ge=1024)
    # API processes sharing the port (`watcher run` and `watcher api`): one serves with the
    # rest of the daemon, the others only the API. PostgreSQL only: SQLite has one daemon.
    processes: int = Field(1, ge=1, le=32)


class TronSettings(_Section):
    endpoints: list[str] = ["http://127.0.0.1:9090"]
    api_key: str = ""
    usdt_contract: str = MAINNET_USDT
    start_block: Literal["latest"] | int = "latest"
    finality: Literal["solidified"] | int = "solidified"
    poll_interval_s: float = Field(1.0, gt=0)
    request_timeout_s: float = Field(10.0, gt=0)
    fetch_ahead: int = Field(8, ge=1, le=64)
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
                raise ValueError(f"endpoint {redact_url(url)!r} is not an http(s) URL")
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
    # TRY per USDT the source may answer; outside it the answer is an error, never a price.
    min_rate: Decimal = Field(Decimal(1), gt=0)
    max_rate: Decimal = Field(Decimal(1000), gt=0)

    @model_validator(mode="after")
    def _band(self) -> RatesSettings:
        if self.min_rate > self.max_rate:
            raise ValueError("min_rate is above max_rate")
        return self


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


def _http_url(v: str) -> str:
    if not v.startswith(("http://", "https://")):
        raise ValueError("not an http(s) URL")
    return v.rstrip("/")


class StripeSettings(_Section):
    secret_key: str = ""
    webhook_secret: str = ""
    api_base: str = "https://api.stripe.com"
    timeout_s: float = Field(10, gt=0)

    _api_base = field_validator("api_base")(_http_url)


class AcidPanelSettings(_Section):
    base_url: str = "https://acidpanel.net/api/provider"
    api_key: str = ""
    secret_key: str = ""
    credential_key: str = ""
    bank_method: Literal["manual", "eiban", "third-party"] = "manual"
    timeout_s: float = Field(10, gt=0)

    _base_url = field_validator("base_url")(_http_url)


class KazawalletSettings(_Section):
    base_url: str = "https://outdoor.kasroad.com/wallet"
    api_key: str = ""
    api_secret: str = ""
    # What payers pay in: TRY, or USD (USDT) converted at the USDTTRY rate locked for the
    # payment; the rate source has no other currency.
    currency: Literal["TRY", "USD", "USDT"] = "TRY"
    timeout_s: float = Field(10, gt=0)

    _base_url = field_validator("base_url")(_http_url)


class BankTransferSettings(_Section):
    webhook_token: str = ""  # the secret part of the callback URL
    allowed_ips: list[str] = []  # addresses or networks callbacks may come from; [] = any
    bank_name: str = ""
    account_name: str = ""
    iban: str = ""

    @field_validator("webhook_token")
    @classmethod
    def _token(cls, v: str) -> str:
        if v and (len(v) < 16 or not v.isascii() or not all(c.isalnum() or c in "-_" for c in v)):
            raise ValueError(
                "use at least 16 random letters, digits, - or _ (it is the callback URL's "
                "secret): python3 -c 'import secrets; print(secrets.token_urlsafe(24))'"
            )
        return v

    @field_validator("allowed_ips")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for entry in v:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return v


# What each adapter needs before it can take a payment, by settings key.
_REQUIRED = {
    "stripe": ("secret_key", "webhook_secret"),
    "acidpanel": ("api_key", "secret_key", "credential_key"),
    "kazawallet": ("api_key", "api_secret"),
    "banktransfer": ("webhook_token", "bank_name", "account_name", "iban"),
}


class ProvidersSettings(_Section):
    """Which adapter takes each payment method (unset: the method is off), and theirs."""

    card: Literal["stripe", "acidpanel"] | None = None
    bank: Literal["acidpanel", "banktransfer"] | None = None
    wallet: Literal["kazawallet", "acidpanel"] | None = None
    # How long a card, bank or wallet payment stays open (Stripe: 30 min to 24 h).
    session_ttl_min: float = Field(60, ge=30, le=1440)
    # How often an open payment's status is asked of its provider when no webhook came.
    reconcile_interval_s: float = Field(300, gt=0)
    stripe: StripeSettings = StripeSettings()
    acidpanel: AcidPanelSettings = AcidPanelSettings()
    kazawallet: KazawalletSettings = KazawalletSettings()
    banktransfer: BankTransferSettings = BankTransferSettings()

    def enabled(self) -> dict[str, str]:
        """Payment method -> adapter, for the methods that are on."""
        chosen = {"card": self.card, "bank": self.bank, "wallet": self.wallet}
        return {method: name for method, name in chosen.items() if name}

    def configured(self) -> list[str]:
        """The adapters whose settings are complete, used by a method now or not: they keep
        answering the webhooks and status questions of payments made before a switch."""
        return [
            name
            for name, keys in _REQUIRED.items()
            if all(getattr(getattr(self, name), key) for key in keys)
        ]

    @model_validator(mode="after")
    def _complete(self) -> ProvidersSettings:
        for method, name in self.enabled().items():
            section = getattr(self, name)
            for key in _REQUIRED[name]:
                if not getattr(section, key):
                    raise ValueError(
                        f"providers.{name}.{key} is empty, and providers.{method} = {name!r} "
                        "needs it"
                    )
        return self


class LogSettings(_Section):
    level: str = "INFO"
    json_logs: bool = True

    @field_validator("level")
    @classmethod
    def _level(cls, v: str) -> str:
        if not isinstance(logging.getLevelName(v.upper()), int):
            raise ValueError("not a logging level (DEBUG, INFO, WARNING, ERROR or CRITICAL)")
        return v


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

    @model_validator(mode="after")
    def _one_process_on_sqlite(self) -> Settings:
        if self.api.processes > 1 and self.database.url.startswith("sqlite"):
            raise ValueError(
                f"api.processes = {self.api.processes} needs PostgreSQL: on SQLite one daemon "
                "process serves the database file; set api.processes = 1"
            )
        return self

    def public_url(self) -> str:
        if self.api.public_url:
            return self.api.public_url.rstrip("/")
        return f"http://{self.api.host}:{self.api.port}"


def load_settings(path: str | Path | None = None) -> Settings:
    """Load settings from `path` (or WATCHER_CONFIG), env overrides on top.

    Raises ConfigError with the offending key named.
    """
    source = "--config"
    if not path and os.environ.get("WATCHER_CONFIG"):
        path, source = os.environ["WATCHER_CONFIG"], "WATCHER_CONFIG"
    data: dict[str, Any] = {}
    if path:
        p = Path(path)
        if not p.is_file():
            where = "" if p.is_absolute() else f" (relative to {Path.cwd()})"
            raise ConfigError(f"config file {p} ({source}) does not exist{where}")
        try:
            data = tomllib.loads(p.read_text("utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from exc
        except OSError as exc:
            raise ConfigError(f"config file {p} ({source}) cannot be read: {exc}") from exc
        data.pop("config_path", None)
        data["config_path"] = str(p.resolve())
    for warning in ignored_environment(os.environ):
        log.warning("config.env_ignored", message=warning)
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc


def ignored_environment(environ: Mapping[str, str]) -> list[str]:
    """A message for each WATCHER_* variable nothing reads, such as WATCHER_DATABASE_URL
    (one underscore where the settings take two): otherwise it would be ignored without a
    word. Values are never repeated: they may be secrets. WATCHER_TEST_* belong to the tests.
    """
    sections = {name.upper() for name in Settings.model_fields if name != "config_path"}
    known = [
        f"{ENV_PREFIX}{section}__{key.upper()}"
        for section in sections
        for key in Settings.model_fields[section.lower()].annotation.model_fields  # type: ignore[union-attr]
    ]
    messages = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in OTHER_ENV:
            continue
        rest = upper.removeprefix(ENV_PREFIX)
        section = rest.split("__", 1)[0]
        if section in sections or rest.startswith("TEST_"):
            continue  # read by the settings (an unknown key there is an error), or a test's
        flat = {k.replace("__", "_"): k for k in known}
        close = (
            [flat[upper]]
            if upper in flat
            else difflib.get_close_matches(upper, known, n=1, cutoff=0.8)
        )
        hint = f"did you mean {close[0]}?" if close else "settings are WATCHER_<SECTION>__<KEY>"
        messages.append(f"{name} is not a setting and is ignored; {hint}")
    return messages


WHOLE = "config"  # the key of an error that belongs to no one setting


def _describe(exc: ValidationError) -> str:
    """One line per bad key: `section.key = value: what is wrong`, union branches merged."""
    problems: dict[str, list[str]] = {}
    values: dict[str, Any] = {}
    for err in exc.errors():
        key = _key(err)
        problems.setdefault(key, [])
        message = _message(err, key)
        if message not in problems[key]:
            problems[key].append(message)
        if err["type"] != "extra_forbidden" and key not in values:
            values[key] = err.get("input")
    lines = []
    for key, messages in problems.items():
        if key == WHOLE:  # a rule across sections: its message names the keys
            lines.append(", or ".join(messages))
            continue
        value = values.get(key)
        shown = f"{key} = {_shown(key, value)!r}" if _scalar(value) else key
        env = "WATCHER_" + key.upper().replace(".", "__")
        origin = f" (from environment variable {env})" if env in os.environ else ""
        rest = [m.removeprefix("Input should be ") for m in messages[1:]]
        lines.append(f"{shown}{origin}: {', or '.join([messages[0], *rest])}")
    return "invalid configuration: " + "; ".join(lines)


def _key(err: ErrorDetails) -> str:
    """The dotted settings key of an error, without pydantic's union branch tags."""
    parts: list[str] = []
    model: Any = Settings
    for part in err["loc"]:
        if isinstance(part, int):
            parts[-1] += f"[{part}]"
            continue
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            if err["type"] == "extra_forbidden" and fields is not None:
                parts.append(str(part))
            break
        parts.append(str(part))
        annotation = fields[part].annotation
        model = annotation if isinstance(annotation, type) else None
    return ".".join(parts) or WHOLE


def _message(err: ErrorDetails, key: str) -> str:
    if err["type"] == "extra_forbidden":
        *section, name = key.split(".")
        model: Any = Settings
        for part in section:
            model = model.model_fields[part].annotation
        known = [k for k in model.model_fields if k != "config_path"]
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(known)}"
        return f"unknown setting ({hint})"
    return str(err["msg"]).removeprefix("Value error, ")


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | Decimal)


def _shown(key: str, value: Any) -> Any:
    """The bad value as the operator wrote it, minus anything secret."""
    name = key.rsplit(".", 1)[-1]
    if any(word in name for word in ("key", "secret", "password", "token")):
        return "***"
    if isinstance(value, str) and "://" in value:
        if key.startswith("tron.endpoints"):
            return redact_url(value)
        return redact_db_url(value)
    return value
