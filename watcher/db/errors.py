"""Which database errors are worth another attempt.

Loops that must outlive a dropped connection, a deadlock or a busy SQLite file (the chain
follower, the expiry sweeps) retry these and let every other error end them loudly.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

# SQLSTATE classes worth retrying: connection exception, transaction rollback (deadlock,
# serialization failure), insufficient resources, operator intervention (server restart).
TRANSIENT_SQLSTATES = ("08", "40", "53", "57P")


def transient_db_error(exc: BaseException) -> bool:
    """A database error that a later attempt may not meet. asyncpg's deadlock, serialization
    failure and admin shutdown reach SQLAlchemy as a plain DBAPIError, not OperationalError."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    if not isinstance(exc, DBAPIError) or isinstance(exc, IntegrityError):
        return False
    if exc.connection_invalidated:
        return True
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return isinstance(state, str) and state.startswith(TRANSIENT_SQLSTATES)
