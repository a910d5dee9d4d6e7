"""Tables. Money is integer (kuruş, micro-USDT); times are integer epoch milliseconds UTC.

Integers everywhere keep SQLite and PostgreSQL identical: no Numeric (float on SQLite), no
timezone-naive datetimes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column, Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from watcher.callbacks.urls import host_key


def _big(**kw: object) -> Column:  # type: ignore[type-arg]
    return Column(BigInteger, **kw)  # type: ignore[arg-type]


class Merchant(SQLModel, table=True):
    __tablename__ = "merchant"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, index=True, unique=True)
    webhook_secret_enc: str  # Fernet-style token, see watcher.secrets
    # Signs the callbacks of test-mode payments (sk_test_ keys): a receiver that holds only
    # the live secret rejects them. Null only between the migration that added it and the
    # next start, which issues one (watcher.merchants.ensure_test_secrets).
    test_webhook_secret_enc: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_ms: int = Field(sa_column=_big(nullable=False))
    disabled: bool = False


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    merchant_id: int = Field(foreign_key="merchant.id", index=True)
    key_hash: str = Field(max_length=64, unique=True)  # sha256 hex of the full key
    prefix: str = Field(max_length=24)  # "sk_live_ab12" for display
    sandbox: bool = False
    created_ms: int = Field(sa_column=_big(nullable=False))
    revoked_ms: int | None = Field(default=None, sa_column=_big(nullable=True))


class Payment(SQLModel, table=True):
    __tablename__ = "payment"
    __table_args__ = (
        UniqueConstraint("merchant_id", "sandbox", "external_ref", name="uq_payment_merchant_ref"),
        Index("ix_payment_status_expires", "status", "expires_ms"),
        Index("ix_payment_address_status", "address", "status"),
        Index("ix_payment_email_created", "email", "created_ms"),
        Index("ix_payment_phone_created", "phone", "created_ms"),
        Index("ix_payment_user_created", "customer_user_id", "created_ms"),
        Index("ix_payment_provider_ref", "provider_name", "provider_ref"),
        Index("ix_payment_provider_payment_ref", "provider_name", "provider_payment_ref"),
    )

    id: str = Field(primary_key=True, max_length=40)  # txn_ + 128 random bits
    merchant_id: int = Field(foreign_key="merchant.id")
    sandbox: bool = False
    external_ref: str = Field(max_length=64)
    provider: str = Field(max_length=16)  # crypto | card | bank | wallet
    amount_kurus: int = Field(sa_column=_big(nullable=False))
    currency: str = Field(default="TRY", max_length=3)
    full_name: str = Field(max_length=200)
    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=16)
    customer_user_id: str | None = Field(default=None, max_length=128)
    callback_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    return_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    cancel_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    metadata_json: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    status: str = Field(default="pending", max_length=16)
    late: bool = False
    created_ms: int = Field(sa_column=_big(nullable=False))
    updated_ms: int = Field(sa_column=_big(nullable=False))
    expires_ms: int = Field(sa_column=_big(nullable=False))
    final_ms: int | None = Field(default=None, sa_column=_big(nullable=True))
    # crypto
    address: str | None = Field(default=None, max_length=64)
    address_index: int | None = Field(default=None, sa_column=_big(nullable=True))
    amount_micro: int | None = Field(default=None, sa_column=_big(nullable=True))
    received_micro: int = Field(default=0, sa_column=_big(nullable=False, default=0))
    confirming_micro: int = Field(default=0, sa_column=_big(nullable=False, default=0))
    late_micro: int = Field(default=0, sa_column=_big(nullable=False, default=0))
    rate: str | None = Field(default=None, max_length=40)  # TRY per USDT, canonical decimal
    created_block: int | None = Field(default=None, sa_column=_big(nullable=True))
    # card / bank / wallet
    provider_name: str | None = Field(default=None, max_length=16)  # the adapter: stripe, sandbox
    provider_ref: str | None = Field(default=None, max_length=200)  # its id of the payment
    # Its id of the money movement once known (Stripe's PaymentIntent): later events, such
    # as a refund, name the payment by it.
    provider_payment_ref: str | None = Field(default=None, max_length=200)
    redirect_url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    paid_kurus: int | None = Field(default=None, sa_column=_big(nullable=True))  # as reported
    checked_ms: int | None = Field(default=None, sa_column=_big(nullable=True))  # last asked
    # callbacks: next per-payment sequence number
    next_sequence: int = 1


class PaymentEvent(SQLModel, table=True):
    """Append-only; its id is the cursor of GET /api/events."""

    __tablename__ = "payment_event"
    __table_args__ = (Index("ix_event_merchant_id", "merchant_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(max_length=40, unique=True)  # evt_ + random
    payment_id: str = Field(foreign_key="payment.id", index=True)
    merchant_id: int = Field(foreign_key="merchant.id")
    type: str = Field(max_length=32)  # payment.completed, ...
    sequence: int
    status: str = Field(max_length=16)
    created_ms: int = Field(sa_column=_big(nullable=False))
    data_json: str = Field(default="{}", sa_column=Column(Text, nullable=False))


def _callback_host(context: Any) -> str:
    return host_key(context.get_current_parameters()["url"])


class PaymentReport(SQLModel, table=True):
    """What an outside party said about a payment (a provider's webhook or status, the sandbox
    page), stored before it is acknowledged and applied once: (source, key) is unique."""

    __tablename__ = "payment_report"
    __table_args__ = (
        UniqueConstraint("source", "key", name="uq_report_source_key"),
        Index("ix_payment_report_result", "result", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=16)  # stripe | sandbox | …
    key: str = Field(max_length=200)
    type: str = Field(max_length=64)
    outcome: str | None = Field(default=None, max_length=16)
    transaction_id: str | None = Field(default=None, max_length=64)
    reference: str | None = Field(default=None, max_length=200)
    reason: str | None = Field(default=None, max_length=200)  # why it failed, as reported
    payment_ref: str | None = Field(default=None, max_length=200)  # its id of the money movement
    # What the provider says was paid, in millionths of `paid_currency` (exact for TRY and
    # for the 2-6 decimals other currencies use).
    paid_micro: int | None = Field(default=None, sa_column=_big(nullable=True))
    paid_currency: str | None = Field(default=None, max_length=8)
    payment_id: str | None = Field(default=None, foreign_key="payment.id", index=True)
    # received (stored, not applied yet) | applied | no_change | unknown_reference | ignored
    # | waiting (a refund that came before its payment's report)
    result: str = Field(max_length=24)
    received_ms: int = Field(sa_column=_big(nullable=False))
    body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class Callback(SQLModel, table=True):
    """The outbox: one row per event with a callbackUrl, written with the state change."""

    __tablename__ = "callback"
    __table_args__ = (Index("ix_callback_due", "status", "next_attempt_ms"),)

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(foreign_key="payment_event.event_id", unique=True, max_length=40)
    payment_id: str = Field(foreign_key="payment.id", index=True)
    merchant_id: int = Field(foreign_key="merchant.id")
    url: str = Field(sa_column=Column(Text, nullable=False))
    # host:port of url, derived on insert: claims skip hosts at their concurrency limit
    host: str | None = Field(
        default=None, sa_column=Column(String(255), nullable=True, default=_callback_host)
    )
    status: str = Field(default="pending", max_length=16)  # pending | delivered | dead
    attempts: int = 0
    next_attempt_ms: int = Field(sa_column=_big(nullable=False))
    locked_until_ms: int = Field(default=0, sa_column=_big(nullable=False, default=0))
    locked_by: str | None = Field(default=None, max_length=64)
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    last_status_code: int | None = None
    created_ms: int = Field(sa_column=_big(nullable=False))
    delivered_ms: int | None = Field(default=None, sa_column=_big(nullable=True))


class CallbackAttempt(SQLModel, table=True):
    __tablename__ = "callback_attempt"

    id: int | None = Field(default=None, primary_key=True)
    callback_id: int = Field(foreign_key="callback.id", index=True)
    attempt: int
    started_ms: int = Field(sa_column=_big(nullable=False))
    duration_ms: int = 0
    status_code: int | None = None
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    worker: str | None = Field(default=None, max_length=64)


class Transfer(SQLModel, table=True):
    """A USDT Transfer log to a watched address, credited once per (txid, log_index)."""

    __tablename__ = "transfer"
    __table_args__ = (
        UniqueConstraint("txid", "log_index", name="uq_transfer_txid_log"),
        Index("ix_transfer_payment", "payment_id"),
        Index("ix_transfer_state_block", "state", "block_number"),
    )

    id: int | None = Field(default=None, primary_key=True)
    txid: str = Field(max_length=64)
    log_index: int
    block_number: int = Field(sa_column=_big(nullable=False))
    block_id: str = Field(max_length=64)
    block_ms: int = Field(sa_column=_big(nullable=False))
    from_address: str = Field(max_length=64)
    to_address: str = Field(max_length=64, index=True)
    amount_micro: int = Field(sa_column=_big(nullable=False))
    payment_id: str | None = Field(default=None, foreign_key="payment.id")
    state: str = Field(default="seen", max_length=16)  # seen | final | dropped
    late: bool = False  # arrived after the payment's deadline
    seen_ms: int = Field(sa_column=_big(nullable=False))


class ChainCursor(SQLModel, table=True):
    """`seen` (head side) and `final` (solidified side)."""

    __tablename__ = "chain_cursor"

    name: str = Field(primary_key=True, max_length=16)
    block_number: int = Field(sa_column=_big(nullable=False))
    block_id: str = Field(default="", max_length=64)
    # The block's timestamp: payments expire only once the chain is read past their deadline.
    block_ms: int = Field(default=0, sa_column=_big(nullable=False, default=0))
    updated_ms: int = Field(sa_column=_big(nullable=False))


class ChainBlock(SQLModel, table=True):
    """Block ids walked but not yet final, to detect forks at solidification."""

    __tablename__ = "chain_block"

    number: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    block_id: str = Field(max_length=64)
    parent_hash: str = Field(max_length=64)
    timestamp_ms: int = Field(sa_column=_big(nullable=False))


class Counter(SQLModel, table=True):
    """Atomic counters (`hd_index`): UPDATE … SET value = value + 1 RETURNING value."""

    __tablename__ = "counter"

    name: str = Field(primary_key=True, max_length=32)
    value: int = Field(sa_column=_big(nullable=False))


class AddressTag(SQLModel, table=True):
    """Pool mode: (address, amount) held by one payment until its late window has passed."""

    __tablename__ = "address_tag"
    __table_args__ = (UniqueConstraint("address", "amount_micro", name="uq_address_amount"),)

    id: int | None = Field(default=None, primary_key=True)
    address: str = Field(max_length=64)
    amount_micro: int = Field(sa_column=_big(nullable=False))
    payment_id: str = Field(foreign_key="payment.id", unique=True)
    release_ms: int = Field(sa_column=_big(nullable=False))


class Setting(SQLModel, table=True):
    """Operator switches (`system_disabled`) and small persisted state."""

    __tablename__ = "setting"

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(sa_column=Column(Text, nullable=False))
    updated_ms: int = Field(sa_column=_big(nullable=False))


class RateQuote(SQLModel, table=True):
    """The last rates fetched, for `watcher rate show` and the quote audit trail."""

    __tablename__ = "rate_quote"

    id: int | None = Field(default=None, primary_key=True)
    symbol: str = Field(max_length=16, index=True)
    price: str = Field(max_length=40)
    source: str = Field(max_length=200)
    fetched_ms: int = Field(sa_column=_big(nullable=False))
