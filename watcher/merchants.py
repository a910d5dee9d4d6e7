"""Merchants, their API keys (stored as SHA-256) and webhook secrets (stored encrypted)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from watcher.clock import now_ms
from watcher.db.models import ApiKey, Merchant
from watcher.secrets import SecretBox, hash_api_key, new_api_key, new_webhook_secret, same

# How many times this process has changed which keys authenticate (a rotation, a merchant
# disabled or enabled). A key remembered as valid (watcher.api.keycache) counts only while
# this is what it was before the key was looked up.
_key_changes = 0


def key_changes() -> int:
    return _key_changes


def _keys_changed(session: AsyncSession) -> None:
    """Count a change now and again once its transaction commits: a lookup made meanwhile
    read the keys as they were, and must not be remembered."""

    def bump(*_: object) -> None:
        global _key_changes
        _key_changes += 1

    bump()
    event.listen(session.sync_session, "after_commit", bump, once=True)


class MerchantExists(Exception):
    """A merchant with this name already exists."""


class MerchantNotFound(Exception):
    """No merchant with this name or id."""


@dataclass(frozen=True)
class Credentials:
    """Shown once, at creation or rotation; an empty field was not issued this time."""

    id: int
    name: str
    api_key: str
    test_api_key: str
    webhook_secret: str
    test_webhook_secret: str

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "api_key": self.api_key,
            "test_api_key": self.test_api_key,
            "webhook_secret": self.webhook_secret,
            "test_webhook_secret": self.test_webhook_secret,
        }


@dataclass(frozen=True)
class AuthedKey:
    merchant_id: int
    key_id: int
    sandbox: bool


async def create_merchant(session: AsyncSession, box: SecretBox, name: str) -> Credentials:
    name = name.strip()
    if not name:
        raise ValueError("merchant name is empty")
    if (await session.execute(select(col(Merchant.id)).where(col(Merchant.name) == name))).first():
        raise MerchantExists(f"merchant {name!r} already exists")
    secret, test_secret = new_webhook_secret(), new_webhook_secret(test=True)
    merchant = Merchant(
        name=name,
        webhook_secret_enc=box.encrypt(secret),
        test_webhook_secret_enc=box.encrypt(test_secret),
        created_ms=now_ms(),
    )
    session.add(merchant)
    await session.flush()
    assert merchant.id is not None
    live, test = await _issue_keys(session, merchant.id)
    return Credentials(merchant.id, name, live, test, secret, test_secret)


async def _issue_keys(session: AsyncSession, merchant_id: int) -> tuple[str, str]:
    keys = []
    for sandbox in (False, True):
        key = new_api_key(sandbox)
        session.add(
            ApiKey(
                merchant_id=merchant_id,
                key_hash=hash_api_key(key),
                prefix=key[:12],
                sandbox=sandbox,
                created_ms=now_ms(),
            )
        )
        keys.append(key)
    await session.flush()
    return keys[0], keys[1]


async def find_merchant(session: AsyncSession, ref: str) -> Merchant:
    cond = col(Merchant.id) == int(ref) if ref.isdigit() else col(Merchant.name) == ref
    merchant = (await session.execute(select(Merchant).where(cond))).scalar_one_or_none()
    if merchant is None:
        raise MerchantNotFound(f"no merchant {ref!r}")
    return merchant


async def rotate(session: AsyncSession, box: SecretBox, ref: str, *, secret: bool) -> Credentials:
    """Revoke the merchant's keys and issue new ones (and new webhook secrets, live and test,
    if asked)."""
    merchant = await find_merchant(session, ref)
    assert merchant.id is not None
    _keys_changed(session)
    await session.execute(
        update(ApiKey)
        .where(col(ApiKey.merchant_id) == merchant.id, col(ApiKey.revoked_ms).is_(None))
        .values(revoked_ms=now_ms())
    )
    live, test = await _issue_keys(session, merchant.id)
    plain = test_plain = ""
    if secret:
        plain, test_plain = new_webhook_secret(), new_webhook_secret(test=True)
        merchant.webhook_secret_enc = box.encrypt(plain)
        merchant.test_webhook_secret_enc = box.encrypt(test_plain)
        session.add(merchant)
    return Credentials(merchant.id, merchant.name, live, test, plain, test_plain)


async def new_test_secret(session: AsyncSession, box: SecretBox, ref: str) -> Credentials:
    """Issue a new test webhook secret only: the keys and the live secret stay as they are."""
    merchant = await find_merchant(session, ref)
    assert merchant.id is not None
    plain = new_webhook_secret(test=True)
    merchant.test_webhook_secret_enc = box.encrypt(plain)
    session.add(merchant)
    return Credentials(merchant.id, merchant.name, "", "", "", plain)


async def ensure_test_secrets(session: AsyncSession, box: SecretBox) -> int:
    """Give each merchant that has none a test webhook secret (merchants made before test
    callbacks had their own secret); the number issued.

    The merchant learns it with `watcher merchant test-secret` (which issues a fresh one) or
    `rotate-key --secret`; until then its test callbacks fail verification, as they should.
    """
    rows = (
        await session.execute(
            select(Merchant).where(col(Merchant.test_webhook_secret_enc).is_(None))
        )
    ).scalars()
    issued = 0
    for merchant in rows:
        merchant.test_webhook_secret_enc = box.encrypt(new_webhook_secret(test=True))
        session.add(merchant)
        issued += 1
    return issued


async def set_disabled(session: AsyncSession, ref: str, disabled: bool) -> Merchant:
    """Stop (or restart) every API key of a merchant; its payments keep being watched."""
    merchant = await find_merchant(session, ref)
    _keys_changed(session)
    merchant.disabled = disabled
    await session.flush()
    return merchant


async def authenticate(session: AsyncSession, key: str) -> AuthedKey | None:
    """Look the key up by its SHA-256; the hash lookup is the constant-time part.

    A 256-bit random key hashed with SHA-256 leaks nothing through an index lookup's timing.
    """
    if not key.startswith(("sk_live_", "sk_test_")) or len(key) > 128:
        return None
    row = (
        await session.execute(
            select(
                col(ApiKey.id), col(ApiKey.merchant_id), col(ApiKey.sandbox), col(ApiKey.key_hash)
            )
            .join(Merchant, col(Merchant.id) == col(ApiKey.merchant_id))
            .where(
                col(ApiKey.key_hash) == hash_api_key(key),
                col(ApiKey.revoked_ms).is_(None),
                col(Merchant.disabled).is_(False),
            )
        )
    ).first()
    if row is None or not same(row.key_hash, hash_api_key(key)):
        return None
    return AuthedKey(merchant_id=row.merchant_id, key_id=row.id, sandbox=row.sandbox)
