"""What the merchant API's bodies look like, for its OpenAPI document (/openapi.json).

Bodies are parsed by hand (watcher.payments.request: duplicate keys refused, UTF-8 only, an
error code per field) and answered by hand (watcher.api.responses, watcher.payments.view);
this module only describes them, as JSON Schema, and is attached to the routes
(`openapi_extra`, `responses`). The schemathesis tests hold the two together: every answer
the API gives must match what is written here.

The error codes of each answer come from the error classes (watcher.errors), so a status a
route documents lists exactly the codes the API can give with it.
"""

from __future__ import annotations

from typing import Any, Final

from watcher.errors import (
    DuplicateRef,
    InvalidAmount,
    InvalidEmail,
    InvalidPhone,
    InvalidRequest,
    InvalidState,
    LimitExceeded,
    NotFound,
    PayloadTooLarge,
    ProviderError,
    RateLimited,
    ServerError,
    SystemDisabled,
    Unauthorized,
    WatcherError,
)
from watcher.payments.request import MAX_METADATA_BYTES, MAX_URL, PROVIDERS
from watcher.payments.states import ALL_STATES, EVENT_TYPES

Json = dict[str, Any]

API_KEY_SCHEME: Final = "apiKey"
SECURITY: Final[list[dict[str, list[str]]]] = [{API_KEY_SCHEME: []}]
# The adapters that take card, bank and wallet payments (`sandbox`: test-mode payments).
ADAPTERS: Final = ("stripe", "acidpanel", "kazawallet", "banktransfer", "sandbox")
WEBHOOK_PROVIDERS: Final = ("stripe", "acidpanel", "kazawallet", "banktransfer")


def _ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


MONEY: Final[Json] = {"type": "number", "description": "An exact decimal, as a JSON number."}
TIME: Final[Json] = {
    "type": "string",
    "format": "date-time",
    "description": "UTC, ISO 8601 with milliseconds: 2026-11-22T05:09:47.123Z",
}


def _nullable(schema: Json) -> Json:
    return {**schema, "type": [schema["type"], "null"]}


def _url(description: str) -> Json:
    return {"type": ["string", "null"], "maxLength": MAX_URL, "description": description}


CREATE_PAYMENT: Final[Json] = {
    "type": "object",
    "description": (
        "A payment to create. Fields not listed here are refused (INVALID_REQUEST), and so is "
        "a key repeated in one object. The body is UTF-8 JSON."
    ),
    "required": ["amount", "fullName", "externalRef"],
    "additionalProperties": False,
    "properties": {
        "amount": {
            **MONEY,
            "exclusiveMinimum": 0,
            "description": (
                "TRY, at most 2 decimals, as a JSON number (a string is refused). The range "
                "is the server's [limits]: crypto 100 to 500000, card, bank and wallet 500 to "
                "50000 by default (inclusive); out of range is INVALID_AMOUNT."
            ),
        },
        "currency": {"type": ["string", "null"], "enum": ["TRY", None], "default": "TRY"},
        "fullName": {
            "type": "string",
            "minLength": 1,
            "maxLength": 200,
            "description": "The payer's name; no control characters.",
        },
        "externalRef": {
            "type": "string",
            "minLength": 1,
            "maxLength": 64,
            "description": (
                "Your order id and the idempotency key: unique per merchant and mode; no ':', "
                "no control characters, no surrounding spaces."
            ),
        },
        "email": {
            "type": ["string", "null"],
            "maxLength": 254,
            "description": "Checked whenever present (INVALID_EMAIL); required for card.",
        },
        "phone": {
            "type": ["string", "null"],
            "description": (
                "E.164 (+905551234567; spaces, dashes and brackets are removed first), checked "
                "whenever present (INVALID_PHONE); required for card."
            ),
        },
        "callbackUrl": _url(
            "Where callbacks go: http(s), a host that is no private, loopback or link-local "
            "address."
        ),
        "returnUrl": _url("Where the payer is sent back to (http or https)."),
        "cancelUrl": _url("Where a payer who gives up is sent (http or https)."),
        "metadata": {
            "type": ["object", "null"],
            "description": (
                f"Returned as sent in every answer, callback and event; at most "
                f"{MAX_METADATA_BYTES} bytes, nested at most 10 levels, numbers of at most 15 "
                "significant digits. `userId` (a string or number of at most 128 characters) "
                "names the customer for the per-customer limits."
            ),
        },
        "provider": {
            "type": ["string", "null"],
            "enum": [*PROVIDERS, None],
            "default": "crypto",
            "description": "The payment method; one the server has not enabled is refused.",
        },
    },
}

CRYPTO_CREATED: Final[Json] = {
    "type": "object",
    "required": ["success", "transactionId", "provider", "paymentUrl", "data"],
    "additionalProperties": False,
    "properties": {
        "success": {"const": True},
        "transactionId": {"type": "string"},
        "provider": {"const": "crypto"},
        "paymentUrl": {"type": "string", "description": "The checkout page to send the payer"},
        "data": {
            "type": "object",
            "required": ["walletAddress", "amount", "currency", "network", "rate", "expiresAt"],
            "additionalProperties": False,
            "properties": {
                "walletAddress": {"type": "string", "description": "The TRON deposit address"},
                "amount": {**MONEY, "description": "USDT to send: TRY / rate, 2 decimals"},
                "currency": {"const": "USDT"},
                "network": {"const": "TRC20"},
                "rate": {**MONEY, "description": "TRY per USDT, locked until expiresAt"},
                "expiresAt": TIME,
            },
        },
    },
}

PROVIDER_CREATED: Final[Json] = {
    "type": "object",
    "required": ["success", "transactionId", "provider", "redirectUrl", "paymentUrl"],
    "additionalProperties": False,
    "properties": {
        "success": {"const": True},
        "transactionId": {"type": "string"},
        "provider": {"type": "string", "enum": list(ADAPTERS), "description": "The adapter"},
        "redirectUrl": {"type": "string", "description": "The payment page to send the payer"},
        "paymentUrl": {"type": "string"},
    },
}

CRYPTO_BLOCK: Final[Json] = {
    "type": "object",
    "required": ["txids", "amountUsdt", "receivedUsdt", "rate", "network", "address"],
    "additionalProperties": False,
    "properties": {
        "txids": {"type": "array", "items": {"type": "string"}},
        "amountUsdt": MONEY,
        "receivedUsdt": MONEY,
        "lateUsdt": {**MONEY, "description": "Received after the deadline (payment.late)"},
        "rate": MONEY,
        "network": {"const": "TRC20"},
        "address": {"type": ["string", "null"]},
    },
}

PROVIDER_BLOCK: Final[Json] = {
    "type": "object",
    "required": ["name", "reference", "paidAmount"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": ["string", "null"], "description": "The adapter"},
        "reference": {"type": ["string", "null"], "description": "Its id of the payment"},
        "paidAmount": _nullable({**MONEY, "description": "What it reported as paid"}),
        "rate": {**MONEY, "description": "When paid in another currency: the locked rate"},
    },
}

# The payment's fields, as the status answer, callbacks and events show them.
_PAYMENT_FIELDS: Final[Json] = {
    "externalRef": {"type": "string"},
    "status": {"type": "string", "enum": sorted(ALL_STATES)},
    "amount": {**MONEY, "description": "TRY"},
    "currency": {"const": "TRY"},
    "fullName": {"type": "string"},
    "livemode": {"type": "boolean", "description": "false for payments of a test key"},
    "method": {"type": "string", "enum": list(PROVIDERS)},
    "provider": {
        "description": "`crypto`, or the provider block of a card, bank or wallet payment",
        "anyOf": [{"type": "string", "enum": list(PROVIDERS)}, _ref("ProviderBlock")],
    },
    "late": {"type": "boolean"},
    "createdAt": TIME,
    "expiresAt": TIME,
    "metadata": {"type": "object", "description": "As sent at create"},
    "crypto": _ref("CryptoBlock"),
}

TRANSACTION: Final[Json] = {
    "type": "object",
    "required": [
        "id",
        "externalRef",
        "status",
        "amount",
        "currency",
        "fullName",
        "livemode",
        "method",
        "provider",
        "late",
        "createdAt",
        "expiresAt",
        "metadata",
    ],
    "additionalProperties": False,
    "properties": {"id": {"type": "string", "description": "The transactionId"}, **_PAYMENT_FIELDS},
}

STATUS_ANSWER: Final[Json] = {
    "type": "object",
    "required": ["success", "transaction"],
    "additionalProperties": False,
    "properties": {"success": {"const": True}, "transaction": _ref("Transaction")},
}

EVENT: Final[Json] = {
    "type": "object",
    "description": (
        "A callback's payload without `timestamp` and `signature`: the payment as it was when "
        "the event happened."
    ),
    "required": [
        "event",
        "eventId",
        "sequence",
        "transactionId",
        "externalRef",
        "status",
        "amount",
        "currency",
        "fullName",
        "occurredAt",
        "metadata",
    ],
    "additionalProperties": False,
    "properties": {
        "event": {"type": "string", "enum": sorted(EVENT_TYPES)},
        "eventId": {"type": "string", "description": "The same on every delivery: dedupe on it"},
        "sequence": {"type": "integer", "description": "Counts up per payment"},
        "transactionId": {"type": "string"},
        "occurredAt": TIME,
        "details": {
            "type": "object",
            "description": (
                "Why: `reason` of a payment.failed, `previousStatus`, `paidAmount` and "
                "`paidCurrency` of a provider's report, `overpaidUsdt` and `excessUsdt` of a "
                "payment.overpaid"
            ),
        },
        **_PAYMENT_FIELDS,
    },
}

EVENTS_PAGE: Final[Json] = {
    "type": "object",
    "required": ["success", "events", "next", "hasMore"],
    "additionalProperties": False,
    "properties": {
        "success": {"const": True},
        "events": {"type": "array", "items": _ref("Event")},
        "next": {"type": "string", "description": "The cursor to ask with next (`after`)"},
        "hasMore": {"type": "boolean", "description": "true: call again at once"},
    },
}

RECEIVED: Final[Json] = {
    "type": "object",
    "required": ["received"],
    "additionalProperties": False,
    "properties": {"received": {"const": True}},
}


def _all_errors(cls: type[WatcherError] = WatcherError) -> list[type[WatcherError]]:
    return [cls, *(sub for child in cls.__subclasses__() for sub in _all_errors(child))]


ERROR_CODES: Final = sorted({cls.code for cls in _all_errors()})

ERROR: Final[Json] = {
    "type": "object",
    "required": ["success", "error"],
    "additionalProperties": False,
    "properties": {
        "success": {"const": False},
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "string", "enum": ERROR_CODES},
                "message": {"type": "string", "description": "For people; never parse it"},
            },
        },
    },
}

COMPONENTS: Final[dict[str, Json]] = {
    "CreatePayment": CREATE_PAYMENT,
    "CryptoPaymentCreated": CRYPTO_CREATED,
    "ProviderPaymentCreated": PROVIDER_CREATED,
    "StatusAnswer": STATUS_ANSWER,
    "Transaction": TRANSACTION,
    "CryptoBlock": CRYPTO_BLOCK,
    "ProviderBlock": PROVIDER_BLOCK,
    "EventsPage": EVENTS_PAGE,
    "Event": EVENT,
    "WebhookReceived": RECEIVED,
    "Error": ERROR,
}

_RETRY_AFTER: Final[Json] = {
    "description": "Seconds to wait before trying again",
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}


def errors(*classes: type[WatcherError]) -> dict[int | str, Json]:
    """The error answers of a route, by status: each lists the codes of `classes` it has,
    with their default messages (the classes' docstrings)."""
    by_status: dict[int, dict[str, str]] = {}
    for cls in classes:
        said = by_status.setdefault(cls.status, {})
        said.setdefault(cls.code, (cls.__doc__ or "").strip())
    return {status: _error_answer(status, said) for status, said in sorted(by_status.items())}


def _error_answer(status: int, said: dict[str, str]) -> Json:
    codes = list(said)
    schema = {
        "allOf": [
            _ref("Error"),
            {"properties": {"error": {"properties": {"code": {"enum": codes}}}}},
        ]
    }
    example = {"success": False, "error": {"code": codes[0], "message": said[codes[0]]}}
    answer: Json = {
        "description": " ".join(f"`{code}`: {message}" for code, message in said.items()),
        "content": {"application/json": {"schema": schema, "example": example}},
    }
    if status in (RateLimited.status, SystemDisabled.status):
        answer["headers"] = {
            "Retry-After": {**_RETRY_AFTER, "required": status == RateLimited.status}
        }
    return answer


def ok(description: str, schema: Json, example: Json) -> dict[int | str, Json]:
    return {
        200: {
            "description": description,
            "content": {"application/json": {"schema": schema, "example": example}},
        }
    }


# Every answer of a route behind the API key may also be these.
_KEYED: Final = (Unauthorized, RateLimited, PayloadTooLarge, ServerError, SystemDisabled)

_CRYPTO_EXAMPLE: Final[Json] = {
    "success": True,
    "transactionId": "txn_5c0b7f3a9e1d4b2c8a6f0e1d2c3b4a59",
    "provider": "crypto",
    "paymentUrl": "https://pay.example/pay/txn_5c0b7f3a9e1d4b2c8a6f0e1d2c3b4a59",
    "data": {
        "walletAddress": "TXj9Qm1kGkq3a7bVx5v8d3X1nQ2sS5tWcK",
        "amount": 281.69,
        "currency": "USDT",
        "network": "TRC20",
        "rate": 35.5,
        "expiresAt": "2026-11-22T06:09:47.123Z",
    },
}
_TRANSACTION_EXAMPLE: Final[Json] = {
    "id": "txn_5c0b7f3a9e1d4b2c8a6f0e1d2c3b4a59",
    "externalRef": "ORD-2024",
    "status": "completed",
    "amount": 10000,
    "currency": "TRY",
    "fullName": "Ahmet Yilmaz",
    "livemode": True,
    "method": "crypto",
    "provider": "crypto",
    "late": False,
    "createdAt": "2026-11-22T05:09:47.123Z",
    "expiresAt": "2026-11-22T06:09:47.123Z",
    "metadata": {"userId": "u-42"},
    "crypto": {
        "txids": ["9f1c0b6a7d2e4f3a8b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a"],
        "amountUsdt": 281.69,
        "receivedUsdt": 281.69,
        "rate": 35.5,
        "network": "TRC20",
        "address": "TXj9Qm1kGkq3a7bVx5v8d3X1nQ2sS5tWcK",
    },
}

CREATE_REQUEST_BODY: Final[Json] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": _ref("CreatePayment"),
            "examples": {
                "crypto": {
                    "value": {
                        "amount": 10000.00,
                        "provider": "crypto",
                        "fullName": "Ahmet Yilmaz",
                        "externalRef": "ORD-2024",
                        "callbackUrl": "https://shop.example/hook",
                        "metadata": {"userId": "u-42"},
                    }
                },
            },
        }
    },
}

CREATE: Final[Json] = {
    "openapi_extra": {"requestBody": CREATE_REQUEST_BODY, "security": SECURITY},
    "responses": {
        **ok(
            "The payment (a repeat of the same externalRef and amount answers the same)",
            {"oneOf": [_ref("CryptoPaymentCreated"), _ref("ProviderPaymentCreated")]},
            _CRYPTO_EXAMPLE,
        ),
        **errors(
            InvalidRequest,
            InvalidAmount,
            InvalidEmail,
            InvalidPhone,
            LimitExceeded,
            DuplicateRef,
            ProviderError,
            *_KEYED,
        ),
    },
}

STATUS: Final[Json] = {
    "openapi_extra": {"security": SECURITY},
    "responses": {
        **ok(
            "The payment",
            _ref("StatusAnswer"),
            {"success": True, "transaction": _TRANSACTION_EXAMPLE},
        ),
        **errors(InvalidRequest, NotFound, *_KEYED),
    },
}

CANCEL: Final[Json] = {
    "openapi_extra": {"security": SECURITY},
    "responses": {
        **ok(
            "The cancelled payment",
            _ref("StatusAnswer"),
            {
                "success": True,
                "transaction": {
                    **_TRANSACTION_EXAMPLE,
                    "status": "cancelled",
                    "crypto": {**_TRANSACTION_EXAMPLE["crypto"], "txids": [], "receivedUsdt": 0},
                },
            },
        ),
        **errors(NotFound, InvalidState, ProviderError, *_KEYED),
    },
}

EVENTS: Final[Json] = {
    "openapi_extra": {"security": SECURITY},
    "responses": {
        **ok(
            "Your events after the cursor, oldest first (listed once 5 seconds old)",
            _ref("EventsPage"),
            {"success": True, "events": [], "next": "1832", "hasMore": False},
        ),
        **errors(InvalidRequest, *_KEYED),
    },
}

_WEBHOOK_BODY: Final[Json] = {
    "required": False,
    "description": (
        "The provider's own format, read only once verified: Stripe's signed event (the "
        "Stripe-Signature header), AcidPanel's callback (X-Hash, X-Timestamp), Kazawallet's "
        "webhook (its `secret` field; JSON or a form), the bank service's callback (the token "
        "in the path)."
    ),
    "content": {
        "application/json": {"schema": {}},
        "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
    },
}

WEBHOOK: Final[Json] = {
    "openapi_extra": {"requestBody": _WEBHOOK_BODY},
    "responses": {
        **ok("Verified and stored", _ref("WebhookReceived"), {"received": True}),
        **errors(Unauthorized, NotFound, PayloadTooLarge, ServerError, SystemDisabled),
    },
}
