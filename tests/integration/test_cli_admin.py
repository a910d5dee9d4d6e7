"""The operator CLI against a real database: init, merchants, payments, switch, config errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from watcher.cli import app
from watcher.db.engine import create_engine, session_factory
from watcher.merchants import authenticate

runner = CliRunner()


def _cli(cfg: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--config", str(cfg), *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def cfg(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "watcher.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n')
    return path


def _authenticates(db_url: str, key: str) -> bool:
    async def go() -> bool:
        engine = create_engine(db_url)
        try:
            async with session_factory(engine)() as s:
                return await authenticate(s, key) is not None
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_init_add_list_rotate(cfg: Path, db_url: str) -> None:
    code, out, _ = _cli(cfg, "init", "--name", "first", "--json")
    assert code == 0
    first = json.loads(out)
    assert {"id", "name", "api_key", "test_api_key", "webhook_secret"} <= set(first)
    assert "test_webhook_secret" in first
    assert first["api_key"].startswith("sk_live_") and first["test_api_key"].startswith("sk_test_")
    assert first["test_webhook_secret"].startswith("whsec_test_")
    code, out, _ = _cli(cfg, "init", "--json")
    assert code == 0 and json.loads(out) == {"initialized": True, "merchant": None}

    code, out, _ = _cli(cfg, "merchant", "add", "Kasa Ltd", "--json")
    added = json.loads(out)
    assert code == 0 and added["name"] == "Kasa Ltd"
    code, _, err = _cli(cfg, "merchant", "add", "Kasa Ltd")
    assert code == 1 and "already exists" in err

    code, out, _ = _cli(cfg, "merchant", "list", "--json")
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["first", "Kasa Ltd"]
    assert all(r["activeKeys"] == 2 and r["payments"] == 0 for r in rows)

    assert _authenticates(db_url, added["api_key"])
    code, out, _ = _cli(cfg, "merchant", "rotate-key", "Kasa Ltd", "--json")
    rotated = json.loads(out)
    assert code == 0 and rotated["api_key"] != added["api_key"] and rotated["webhook_secret"] == ""
    assert not _authenticates(db_url, added["api_key"])
    assert _authenticates(db_url, rotated["api_key"])
    code, _, err = _cli(cfg, "merchant", "rotate-key", "nobody")
    assert code == 1 and "no merchant" in err


def test_rotation_and_test_secret_show_each_secret_once(cfg: Path) -> None:
    added = json.loads(_cli(cfg, "init", "--name", "shop", "--json")[1])
    code, out, _ = _cli(cfg, "merchant", "rotate-key", "shop", "--secret", "--json")
    rotated = json.loads(out)
    assert code == 0 and rotated["webhook_secret"].startswith("whsec_")
    assert rotated["test_webhook_secret"].startswith("whsec_test_")
    assert rotated["test_webhook_secret"] != added["test_webhook_secret"]
    code, out, _ = _cli(cfg, "merchant", "test-secret", "shop", "--json")
    fresh = json.loads(out)
    assert code == 0 and {"id", "name", "test_webhook_secret"} <= set(fresh)
    assert not {"api_key", "webhook_secret"} & set(fresh)
    assert fresh["test_webhook_secret"].startswith("whsec_test_")
    assert fresh["test_webhook_secret"] != rotated["test_webhook_secret"]
    code, out, _ = _cli(cfg, "merchant", "test-secret", "shop")
    assert code == 0 and "test webhook secret:" in out and "live API key" not in out
    code, _, err = _cli(cfg, "merchant", "test-secret", "nobody")
    assert code == 1 and "no merchant" in err


def test_system_switch_and_payments_views(cfg: Path) -> None:
    assert _cli(cfg, "db", "upgrade")[0] == 0
    code, out, _ = _cli(cfg, "system", "disable", "--json")
    assert code == 0 and json.loads(out) == {"disabled": True}
    code, out, _ = _cli(cfg, "system", "status", "--json")
    assert json.loads(out) == {"disabled": True}
    assert json.loads(_cli(cfg, "system", "enable", "--json")[1]) == {"disabled": False}
    code, out, _ = _cli(cfg, "payments", "list", "--json")
    assert code == 0 and json.loads(out) == []
    code, _, err = _cli(cfg, "payments", "list", "--status", "weird")
    assert code == 1 and "unknown status" in err
    code, _, err = _cli(cfg, "payments", "show", "txn_missing")
    assert code == 1 and "no payment" in err


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[tron]\nfinalty = 3\n")
    code, _, err = _cli(bad, "payments", "list")
    assert code == 1 and "tron.finalty" in err
    code, _, err = _cli(tmp_path / "missing.toml", "payments", "list")
    assert code == 1 and "does not exist" in err


def test_commands_refuse_an_unmigrated_database(tmp_path: Path) -> None:
    cfg = tmp_path / "w.toml"
    cfg.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "empty.db"}"\n')
    code, _, err = _cli(cfg, "merchant", "list")
    assert code == 1 and "watcher db upgrade" in err
