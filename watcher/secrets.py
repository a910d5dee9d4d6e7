"""The master key that encrypts webhook secrets at rest (they are needed to sign, so they
cannot be hashed), and API key generation and hashing.

The key comes from WATCHER_SECRET_KEY (a Fernet key, urlsafe base64 of 32 bytes) or from a
key file beside the SQLite database (or in the working directory for PostgreSQL), created with
mode 0600 by the first command that needs it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from watcher.db.engine import sqlite_path
from watcher.db.models import Merchant

KEY_FILE_NAME = "watcher.key"


class SecretKeyError(Exception):
    """The master key is missing, unreadable or does not decrypt stored secrets."""


def key_file_for(database_url: str) -> Path:
    path = sqlite_path(database_url)
    return (path.parent if path else Path.cwd()) / KEY_FILE_NAME


def load_box(database_url: str, *, create: bool = True) -> SecretBox:
    env = os.environ.get("WATCHER_SECRET_KEY", "").strip()
    if env:
        return SecretBox(env.encode())
    path = key_file_for(database_url)
    if path.exists():
        return SecretBox(path.read_bytes().strip())
    if not create:
        raise SecretKeyError(f"no WATCHER_SECRET_KEY and no key file at {path}")
    key = Fernet.generate_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole under another name, then linked into place: processes starting together
    # (api.processes, or `watcher api` and `watcher scan` at boot) all end up with the one key
    # that won, never a half-written file or an error for the ones that lost.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(key + b"\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return SecretBox(path.read_bytes().strip())
    finally:
        os.unlink(tmp)
    return SecretBox(key)


async def open_box(session: AsyncSession, database_url: str) -> SecretBox:
    """The master key for this database, checked against what it already encrypted.

    A new key is made only for a database that holds no webhook secret yet: with merchants
    present, a missing key file means a lost key, and a fresh one would silently make every
    stored secret unreadable (callbacks could no longer be signed).
    """
    sample = (
        await session.execute(select(col(Merchant.webhook_secret_enc)).limit(1))
    ).scalar_one_or_none()
    try:
        box = load_box(database_url, create=sample is None)
    except SecretKeyError as exc:
        if sample is None:
            raise
        raise SecretKeyError(
            f"{exc}; this database holds webhook secrets encrypted with that key: restore the "
            "key file or set WATCHER_SECRET_KEY"
        ) from exc
    if sample is not None:
        box.decrypt(sample)  # a wrong key fails here, before anything is signed with it
    return box


class SecretBox:
    def __init__(self, key: bytes):
        try:
            self._fernet = Fernet(key)
        except ValueError as exc:
            raise SecretKeyError("the master key is not a valid Fernet key") from exc

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise SecretKeyError(
                "stored webhook secrets do not decrypt with this master key "
                "(WATCHER_SECRET_KEY or the key file): is it the key this database was made with?"
            ) from exc


def new_api_key(sandbox: bool) -> str:
    return ("sk_test_" if sandbox else "sk_live_") + secrets.token_urlsafe(32)


def new_webhook_secret(*, test: bool = False) -> str:
    """`whsec_…` signs live callbacks, `whsec_test_…` those of test-mode payments."""
    return ("whsec_test_" if test else "whsec_") + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def new_id(prefix: str) -> str:
    """Random public id with 128+ bits: txn_…, evt_…"""
    return prefix + secrets.token_hex(16)
