"""`column IN (values)` for lists of hundreds or thousands of values, written per database.

SQLAlchemy renders an IN list when the statement runs, one bound parameter per value; on
PostgreSQL each also gets a cast (`$n::VARCHAR`), and every new length is another statement
for asyncpg to prepare. The follower asks with ~2 000 addresses and ~500 txids per run of
blocks: on PostgreSQL that is one array parameter instead (`= ANY($1::VARCHAR[])`, the same
index lookups), one statement whatever the length. SQLite keeps IN: a `?` per value is cheap
to render and SQLite has no arrays.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import String, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement


def one_of(session: AsyncSession, column: Any, values: Collection[str]) -> ColumnElement[bool]:
    """`column` is one of `values` (strings), as the session's database reads it fastest."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(String)))  # type: ignore[no-any-return]
    return column.in_(values)  # type: ignore[no-any-return]
