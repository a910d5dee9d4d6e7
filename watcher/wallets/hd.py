"""`hd` mode: one fresh address per payment, derived from an account-level xpub.

Address i is the TRON address of child `0/i` of the account key (BIP44 m/44'/195'/0'/0/i):
Base58Check of `0x41 ‖ keccak256(pubkey)[-20:]`, derived by bip_utils. The server holds the
public key only, so it can watch addresses but never spend from them; an extended private key
in the config is refused.

The index comes from the `counter` row `hd_index` (UPDATE … SET value = value + 1
RETURNING value), whose row lock (PostgreSQL) or single writer (SQLite, BEGIN IMMEDIATE) makes
concurrent creates take distinct indexes. On SQLite the bump is part of the create
transaction, so a create that rolls back gives its index back. On PostgreSQL an API process
takes RESERVE_BLOCK indexes at once, in a statement of its own committed outside any create
(reserve()), and hands them out in order: inside the create transaction, the row lock was held
across the create's remaining round trips and every other create queued on it (at 50
concurrent creates, 25 backends on average waited on that lock), so creates ran one at a time;
one statement per create outside it still made each create take a pooled connection twice.
The price is indexes left unused: by a create that then fails or answers an earlier payment,
and up to RESERVE_BLOCK - 1 by a process that stops. Payments that are never paid leave
unused addresses too; a wallet restored from the seed must scan past BIP44's gap limit of 20
to find later ones.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Final

from bip_utils import Bip32KeyError, Bip44, Bip44Changes, Bip44Coins, Bip44Levels
from bip_utils.base58.base58_ex import Base58ChecksumError
from sqlalchemy import bindparam, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlmodel import col

from watcher.config import ConfigError
from watcher.db.models import Counter
from watcher.wallets.base import Allocation

HD_COUNTER: Final = "hd_index"
RESERVE_BLOCK: Final = 16  # indexes a process takes from the counter at once (PostgreSQL)

# PUBLIC TEST KEY, for the demo, the devchain and tests only: the account xpub
# (m/44'/195'/0') of the BIP39 test mnemonic "abandon abandon abandon abandon abandon abandon
# abandon abandon abandon abandon abandon about" (empty passphrase). Its private keys are
# known to everyone: anything sent to its addresses on a real chain is lost to the first taker.
# Index 0 is TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH, 1 is TSeJkUh4Qv67VNFwY8LaAxERygNdy6NQZK.
DEMO_XPUB: Final = (
    "xpub6D1AabNHCupeiLM65ZR9UStMhJ1vCpyV4XbZdyhMZBiJXALQtmn9p42VTQckoHVn8WNqS7dqnJokZHAHcHGoaQgm"
    "v8D45oNUKx6DZMNZBCd"
)


class HdDeriver:
    """Addresses `0/i` of an account-level TRON xpub."""

    def __init__(self, xpub: str) -> None:
        self._external = _account(xpub.strip()).Change(Bip44Changes.CHAIN_EXT)

    def address(self, index: int) -> str:
        if not 0 <= index < 2**31:
            raise ValueError(f"address index {index} is outside 0 … 2^31-1")
        return str(self._external.AddressIndex(index).PublicKey().ToAddress())


def _account(xpub: str) -> Bip44:
    if not xpub:
        raise ConfigError("wallet.xpub is empty: hd mode needs the account xpub (m/44'/195'/0')")
    try:
        key = Bip44.FromExtendedKey(xpub, Bip44Coins.TRON)
    except (Bip32KeyError, Base58ChecksumError, ValueError) as exc:
        raise ConfigError(f"wallet.xpub is not a valid extended public key: {exc}") from exc
    if not key.IsPublicOnly():
        raise ConfigError(
            "wallet.xpub is an extended PRIVATE key: give the account xpub; "
            "the server must never hold a private key"
        )
    if key.Level() != Bip44Levels.ACCOUNT:
        raise ConfigError(
            f"wallet.xpub is at depth {int(key.Level())}, not an account-level key: "
            "export the xpub of m/44'/195'/0' (depth 3)"
        )
    return key


async def next_index(session: AsyncSession, name: str = HD_COUNTER) -> int:
    """The next index of counter `name` (0, 1, 2, …), atomically, in the caller's transaction."""
    return await _next_on(await session.connection(), name)


async def _next_on(conn: AsyncConnection, name: str, step: int = 1) -> int:
    """The first of the next `step` indexes of counter `name`."""
    value = await _bump(conn, name, step)
    if value is None:
        insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        await conn.execute(
            insert(Counter)
            .values(name=name, value=0)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        value = await _bump(conn, name, step)
    if value is None:
        raise RuntimeError(f"counter {name!r} could not be created")
    return value - step


# Built once, run on the session's connection: a Core statement skips the ORM's execution
# machinery, a good part of a create's CPU time.
_BUMP = (
    update(Counter)
    .where(col(Counter.name) == bindparam("b_name"))
    .values(value=col(Counter.value) + bindparam("b_step"))
    .returning(col(Counter.value))
)


async def _bump(conn: AsyncConnection, name: str, step: int) -> int | None:
    result = await conn.execute(_BUMP, {"b_name": name, "b_step": step})
    value: int | None = result.scalar_one_or_none()
    return value


class HdAllocator:
    """AddressAllocator for `hd` mode: a fresh derived address per payment."""

    row_first = False  # the index is the payment's own; nothing refers to its row

    def __init__(self, xpub: str, engine: AsyncEngine | None = None) -> None:
        self.deriver = HdDeriver(xpub)
        # PostgreSQL: indexes are reserved RESERVE_BLOCK at a time, in a transaction of their
        # own (see the module's docstring).
        self._engine = engine if engine is not None and engine.dialect.name != "sqlite" else None
        self._reserved: deque[int] = deque()
        self._refill = asyncio.Lock()

    async def reserve(self) -> int | None:
        if self._engine is None:
            return None
        async with self._refill:
            if not self._reserved:
                async with self._engine.connect() as conn:
                    auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
                    first = await _next_on(auto, HD_COUNTER, RESERVE_BLOCK)
                self._reserved.extend(range(first, first + RESERVE_BLOCK))
            return self._reserved.popleft()

    async def allocate(
        self,
        session: AsyncSession,
        payment_id: str,
        amount_micro: int,
        release_ms: int,
        reserved: int | None = None,
    ) -> Allocation:
        index = reserved if reserved is not None else await next_index(session)
        return Allocation(self.deriver.address(index), index, amount_micro)
