"""What operators can read (metrics, logs, `chain status`, files on disk) holds no node
credentials, and the database files are as private as the master key beside them."""

from __future__ import annotations

import asyncio
import io
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from typer.testing import CliRunner

from tests.support.servers import serve_asgi
from watcher.cli import app
from watcher.config import LogSettings, TronSettings
from watcher.db.engine import create_engine
from watcher.db.migrate import upgrade
from watcher.logs import configure_logging
from watcher.metrics import Metrics
from watcher.tron.client import NodeError, TronClient, node_session

WATCHER = str(Path(sys.executable).with_name("watcher"))
# A node URL as operators write them for hosted nodes: basic auth and a token in the path.
NODE = "http://watcher:hunter2@127.0.0.1:9/tok3n-Secret/jsonrpc?key=qu3ry"
SECRETS = ("hunter2", "tok3n-Secret", "qu3ry", "watcher:")


def _clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} shown in:\n{text[-2000:]}"


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    configure_logging(LogSettings(level="DEBUG", json_logs=True), stream=buf)
    yield buf
    configure_logging(LogSettings(level="WARNING", json_logs=False))


async def test_metrics_and_logs_name_nodes_without_credentials(logs: io.StringIO) -> None:
    metrics = Metrics()
    settings = TronSettings(endpoints=[NODE, "http://127.0.0.1:9/other-Token"])
    async with node_session() as http:
        client = TronClient(settings, http, metrics=metrics, rounds=1)
        with pytest.raises(NodeError):
            await client.head()
    body = metrics.render()[0].decode()
    assert 'endpoint="http://***@127.0.0.1:9/***"' in body
    assert 'endpoint="http://127.0.0.1:9/***"' in body
    _clean(body)
    assert "tron.node_error" in logs.getvalue()
    _clean(logs.getvalue())


def test_chain_status_names_nodes_without_credentials(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    cfg = tmp_path / "w.toml"
    cfg.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{db}"\n[tron]\nendpoints = ["{NODE}"]\n'
    )
    runner = CliRunner()
    assert runner.invoke(app, ["--config", str(cfg), "db", "upgrade"]).exit_code == 0
    shown = runner.invoke(app, ["--config", str(cfg), "chain", "status", "--json"])
    assert shown.exit_code == 1
    assert json.loads(shown.stdout)["endpoints"][0]["url"] == "http://***@127.0.0.1:9/***"
    _clean(shown.stdout + shown.stderr)
    shown = runner.invoke(app, ["--config", str(cfg), "chain", "status"])
    assert "127.0.0.1:9" in shown.stdout
    _clean(shown.stdout + shown.stderr)


def _mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


def test_sqlite_files_are_created_private_under_a_umask_of_022(tmp_path: Path) -> None:
    db = tmp_path / "data" / "w.db"
    cfg = tmp_path / "w.toml"
    cfg.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{db}"\n')
    done = subprocess.run(
        [WATCHER, "--config", str(cfg), "init", "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "WATCHER_SECRET_KEY": ""},
        preexec_fn=lambda: os.umask(0o022),
    )
    assert done.returncode == 0, done.stderr
    assert _mode(db) == "0o600"
    assert _mode(db.parent / "watcher.key") == "0o600"

    other = tmp_path / "other.db"

    async def open_and_look() -> dict[str, str]:
        previous = os.umask(0o022)
        engine = create_engine(f"sqlite+aiosqlite:///{other}")
        try:
            await upgrade(engine)
            async with engine.connect() as conn:  # -wal and -shm exist while it is open
                await conn.exec_driver_sql("SELECT 1")
                return {p.name: _mode(p) for p in tmp_path.glob("other.db*")}
        finally:
            os.umask(previous)
            await engine.dispose()

    modes = asyncio.run(open_and_look())
    assert modes == {"other.db": "0o600", "other.db-wal": "0o600", "other.db-shm": "0o600"}


@pytest.mark.parametrize(
    "url",
    [
        # asyncpg takes the password from the query string as well as from the userinfo.
        "postgresql+asyncpg://watcher@127.0.0.1:9/shop?password=hunter2",
        "postgresql+psycopg://watcher:hunter2@127.0.0.1:9/shop?sslpassword=hunter2",
    ],
)
def test_database_errors_show_the_url_without_its_password(tmp_path: Path, url: str) -> None:
    cfg = tmp_path / "w.toml"
    cfg.write_text(f'[database]\nurl = "{url}"\n')
    shown = CliRunner().invoke(app, ["--config", str(cfg), "payments", "list"])
    assert shown.exit_code == 1
    assert "error:" in shown.stderr and "database.url" in shown.stderr
    assert "hunter2" not in shown.stdout + shown.stderr, shown.stderr


def test_a_misspelt_node_url_is_refused_without_its_credentials(tmp_path: Path) -> None:
    cfg = tmp_path / "w.toml"
    cfg.write_text('[tron]\nendpoints = ["htps://watcher:hunter2@node.example/tok3n-Secret"]\n')
    shown = CliRunner().invoke(app, ["--config", str(cfg), "payments", "list"])
    assert shown.exit_code == 1
    assert "tron.endpoints" in shown.stderr and "node.example" in shown.stderr
    _clean(shown.stdout + shown.stderr)


async def test_a_node_api_key_with_a_stray_space_is_never_echoed(logs: io.StringIO) -> None:
    """A key pasted with a trailing space cannot go into a header: the HTTP library's error
    quotes the header value, and that text went to the log and `chain status` on every poll."""
    key = "5b1c9e2a-4d3f-4e8a-9c7b-2f6d0e1a3b4c"
    async with serve_asgi(Starlette()) as url, node_session() as http:
        settings = TronSettings(endpoints=[url], api_key=key + " ")
        client = TronClient(settings, http, rounds=1)
        with pytest.raises(NodeError) as raised:
            await client.head()
        (probed,) = await client.probe()
    assert "tron.api_key" in str(raised.value)
    for text in (str(raised.value), str(probed["error"]), logs.getvalue()):
        assert key not in text, text
