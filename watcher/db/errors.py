"""Which database errors are worth another attempt.

Loops that must outlive a dropped connection, a deadlock or a busy SQLite file (the chain
follower, the expiry sweeps) retry these and let every other error end them loudly.

    OperationalError (SQLAlchemy)
    └── DatabaseUnavailable   no connection could be opened: the server is down or refuses
                              us, the database or role does not exist, the SQLite file
                              cannot be created or is not a database. Raised by the engine
                              (db.engine) when it connects, with one line naming database.url:
                              commands print it as their error, the API answers 503.
    └── WriterBusy            a SQLite writer bounded by db.engine.bounded_writes (an API
                              request) did not get to write in time: the file is locked by
                              another process, or this one's writers queue too long. 503.
"""

from __future__ import annotations

import socket
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

from watcher.redact import redact_db_url

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


class DatabaseUnavailable(OperationalError):
    """The database cannot be used; the message says why and names database.url.

    An OperationalError, so every loop that retries transient database errors rides
    through an outage without knowing this class.
    """

    def __init__(self, message: str, orig: BaseException | None = None):
        super().__init__(None, None, orig or ConnectionError(message))
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[type[DatabaseUnavailable], tuple[str]]:
        return DatabaseUnavailable, (self.message,)


def shown_url(url: str) -> str:
    return redact_db_url(url)


def unavailable(url: str, why: str, orig: BaseException | None = None) -> DatabaseUnavailable:
    return DatabaseUnavailable(f"database.url = {shown_url(url)}: {why}", orig)


def cannot_connect(url: str, exc: BaseException) -> DatabaseUnavailable:
    """Why opening a connection to `url` failed, in one line an operator can act on."""
    return unavailable(url, _why(url, exc), exc)


def _why(url: str, exc: BaseException) -> str:
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        return f"cannot open {Path(u.database or '').resolve()}: {_message(exc)}"
    where = f"{u.host or 'localhost'}:{u.port or 5432}"
    server = _server_message(exc)
    if server is not None:
        return server  # 'database "x" does not exist', 'role "y" does not exist', …
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host {u.host!r} ({exc.strerror or exc})"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused at {where}: is PostgreSQL running there?"
    if isinstance(exc, TimeoutError):
        return f"no answer from {where} in time"
    if isinstance(exc, OSError):
        return f"cannot connect to {where}: {exc.strerror or exc}"
    return f"cannot connect to {where}: {_message(exc)}"


def _server_message(exc: BaseException) -> str | None:
    """The PostgreSQL server's own message (asyncpg's error, wrapped by SQLAlchemy's
    adapter): it names the database or role, never a password."""
    seen: BaseException | None = exc
    while seen is not None:
        if type(seen).__module__.startswith("asyncpg") and getattr(seen, "sqlstate", None):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    return None


def _message(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).splitlines()
    return text[0] if text and text[0] else type(exc).__name__


class WriterBusy(OperationalError):
    """The database is busy: no turn to write in the time a request may wait."""

    def __init__(self, detail: str):
        super().__init__(None, None, TimeoutError(f"the SQLite database is busy: {detail}"))
        self.why = detail

    def __str__(self) -> str:
        return f"the SQLite database is busy: {self.why}"

    def __reduce__(self) -> tuple[type[WriterBusy], tuple[str]]:
        return WriterBusy, (self.why,)
