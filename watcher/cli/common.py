"""What every command shares: settings, the database, async running, JSON or rich output."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.text import Text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from watcher import eventloop, jsonio
from watcher.config import ConfigError, Settings, load_settings
from watcher.db.engine import create_engine, session_factory, sqlite_path
from watcher.db.errors import DatabaseUnavailable
from watcher.db.migrate import is_current
from watcher.merchants import ensure_test_secrets
from watcher.secrets import SecretBox, SecretKeyError, open_box

T = TypeVar("T")

# Piped output gets a wide console: operators grep full ids, not "txn_c0…".
# Markup, emoji codes and highlighting are off: most of what is printed is text that
# merchants and payers wrote (externalRef, names, a receiver's answer), shown as it is.
# Styles are given explicitly (`styled`), never parsed out of the text.
_PLAIN: dict[str, Any] = {"markup": False, "emoji": False, "highlight": False}
out = Console(width=None if sys.stdout.isatty() else 200, **_PLAIN)
err = Console(stderr=True, **_PLAIN)


def styled(*parts: str | tuple[str, str]) -> Text:
    """Plain text with styled pieces: `styled(("error:", "red"), " ", message)`."""
    return Text.assemble(*parts)


@dataclass
class State:
    config_path: str | None = None
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings(self.config_path)
            except ConfigError as exc:
                fail(str(exc))
        return self._settings


def state(ctx: typer.Context, config: str | None = None) -> State:
    """The shared state; `config` is a `--config` given after the subcommand."""
    obj = ctx.find_root().obj
    assert isinstance(obj, State)
    if config is not None:
        if obj.config_path is not None and obj.config_path != config:
            fail(f"--config given twice ({obj.config_path} and {config}); give it once", 2)
        obj.config_path = config
    return obj


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(styled(("error:", "red"), " ", message), soft_wrap=True)
    raise typer.Exit(code)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's async work; a database that cannot be used is its one error line."""
    try:
        return eventloop.run(coro)
    except DatabaseUnavailable as exc:
        fail(str(exc))


@asynccontextmanager
async def database(
    settings: Settings, *, require_current: bool = True
) -> AsyncIterator[tuple[AsyncEngine, async_sessionmaker[AsyncSession]]]:
    """The engine and a session factory; refuses a database that is not migrated.

    A SQLite file that does not exist is not created here (only `init`, `db upgrade` and the
    daemon create one): a command run from the wrong directory must not leave an empty
    database, and a new master key, behind.
    """
    if require_current:
        require_database_file(settings)
    engine = create_engine(settings.database.url)
    try:
        if require_current and not await is_current(engine):
            fail("the database schema is not current: run `watcher db upgrade` first")
        yield engine, session_factory(engine)
    finally:
        await engine.dispose()


def require_database_file(settings: Settings) -> None:
    """Fail with the path looked at when the SQLite database file does not exist."""
    path = sqlite_path(settings.database.url)
    if path is None or path.exists():
        return
    written = make_url(settings.database.url).database or ""
    relative = (
        ""
        if Path(written).is_absolute()
        else f"; database.url is relative to the working directory {Path.cwd()}"
    )
    fail(
        f"no database at {path}{relative}. Run the command where the database is, make "
        "database.url absolute, or create the database with `watcher init` "
        "(or `watcher db upgrade`)"
    )


async def secret_box(session: AsyncSession, settings: Settings) -> SecretBox:
    """The master key for webhook secrets; a clear error when it is missing or wrong.

    Merchants made before test callbacks had their own secret get one here (in the caller's
    transaction), as at every daemon start.
    """
    try:
        box = await open_box(session, settings.database.url)
    except SecretKeyError as exc:
        fail(str(exc))
    await ensure_test_secrets(session, box)
    return box


async def with_session(settings: Settings, fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `fn` in one committed transaction."""
    async with database(settings) as (_, sessions), sessions() as s, s.begin():
        return await fn(s)


def yes_no(value: bool) -> str:
    """Booleans as people read them in tables and listings."""
    return "yes" if value else "no"


def camel(key: str) -> str:
    """`test_api_key` -> `testApiKey`: the HTTP API's naming, used in every JSON output."""
    head, *rest = key.split("_")
    return head + "".join(part.capitalize() for part in rest)


def print_json(data: Any) -> None:
    """Only JSON on stdout, so scripts can parse it."""
    sys.stdout.write(jsonio.dumps(data, indent=2) + "\n")
