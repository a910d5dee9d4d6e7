"""The CLI behaves like one program: options where an operator types them, one JSON naming,
yes/no for booleans, tables for people and JSON for scripts, warnings for settings that are
silently ignored."""

from __future__ import annotations

import asyncio
import json
from importlib.metadata import version
from pathlib import Path

import pytest
from typer.testing import CliRunner

from watcher.cli import app
from watcher.clock import now_ms
from watcher.db.engine import create_engine, session_factory
from watcher.db.models import Payment
from watcher.merchants import authenticate

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WATCHER_CONFIG", "WATCHER_DATABASE__URL", "WATCHER_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def cfg(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "watcher.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n')
    return path


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def _db(db_url: str, fn):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        engine = create_engine(db_url)
        try:
            async with session_factory(engine)() as s, s.begin():
                return await fn(s)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _cells(table: str, key: str) -> list[str]:
    """The cells of the one table row holding `key`, whatever the borders."""
    (line,) = [x for x in table.splitlines() if key in x]
    return [c for c in line.split() if c not in "│┃|"]


def test_config_is_accepted_after_the_subcommand(cfg: Path) -> None:
    assert _run("--config", str(cfg), "db", "upgrade")[0] == 0
    code, out, err = _run("merchant", "add", "Kasa", "--config", str(cfg), "--json")
    assert code == 0, err
    assert json.loads(out)["name"] == "Kasa"
    code, out, _ = _run("merchant", "list", f"--config={cfg}", "--json")
    assert code == 0 and [m["name"] for m in json.loads(out)] == ["Kasa"]
    code, out, _ = _run("merchant", "list", "-c", str(cfg), "--json")
    assert code == 0 and [m["name"] for m in json.loads(out)] == ["Kasa"]


def test_two_different_configs_are_refused(cfg: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text("")
    code, out, err = _run("--config", str(other), "merchant", "list", "--config", str(cfg))
    assert code == 2 and out == ""
    assert "--config given twice" in err


def test_version() -> None:
    code, out, _ = _run("--version")
    assert code == 0 and out == f"watcher {version('kasa-watcher')}\n"


def test_flags_take_no_value_in_help() -> None:
    for command in (["merchant", "list"], ["payments", "show"], ["chain", "status"]):
        code, out, _ = _run(*command, "--help")
        assert code == 0
        (line,) = [x for x in out.splitlines() if "--json" in x]
        assert "<bool>" not in line and "BOOLEAN" not in line, line
        assert "--config" in out


def test_merchant_json_is_camel_case_and_keeps_the_keys_scripts_read(cfg: Path) -> None:
    code, out, _ = _run("--config", str(cfg), "init", "--name", "first", "--json")
    created = json.loads(out)
    assert code == 0
    assert created["api_key"] == created["apiKey"] and created["apiKey"].startswith("sk_live_")
    assert created["test_api_key"] == created["testApiKey"]
    assert created["webhook_secret"] == created["webhookSecret"]
    code, out, _ = _run("--config", str(cfg), "merchant", "list", "--json")
    (row,) = json.loads(out)
    assert (row["activeKeys"], row["payments"], row["disabled"]) == (2, 0, False)
    assert "active_keys" not in row and "createdAt" in row


def test_merchant_disable_stops_its_keys_and_enable_restores_them(cfg: Path, db_url: str) -> None:
    code, out, _ = _run("--config", str(cfg), "init", "--name", "shop", "--json")
    key = json.loads(out)["apiKey"]
    code, out, _ = _run("--config", str(cfg), "merchant", "disable", "shop", "--json")
    assert code == 0 and json.loads(out) == {"id": 1, "name": "shop", "disabled": True}
    assert _db(db_url, lambda s: authenticate(s, key)) is None
    code, out, _ = _run("--config", str(cfg), "merchant", "list")
    assert _cells(out, "shop")[-1] == "yes"
    code, out, _ = _run("--config", str(cfg), "merchant", "enable", "1")
    assert code == 0 and "enabled" in out
    assert _db(db_url, lambda s: authenticate(s, key)) is not None
    code, out, _ = _run("--config", str(cfg), "merchant", "list")
    assert _cells(out, "shop")[-1] == "no"
    code, _, err = _run("--config", str(cfg), "merchant", "disable", "nobody")
    assert code == 1 and "no merchant 'nobody'" in err


def test_payments_show_is_a_table_unless_json(cfg: Path, db_url: str) -> None:
    assert _run("--config", str(cfg), "init", "--json")[0] == 0

    async def add(s):  # type: ignore[no-untyped-def]
        now = now_ms()
        s.add(
            Payment(
                id="txn_show",
                merchant_id=1,
                external_ref="ORD-7",
                provider="crypto",
                amount_kurus=1_000_000,
                full_name="Ahmet Yilmaz",
                status="expired",
                late=True,
                created_ms=now,
                updated_ms=now,
                expires_ms=now + 60_000,
                address="TJRabPrwbZy45sbavfcjinPJC18kjpRTv8",
                address_index=7,
                amount_micro=281_690_000,
                received_micro=100_000_000,
                rate="35.5",
            )
        )

    _db(db_url, add)
    code, out, _ = _run("--config", str(cfg), "payments", "show", "txn_show")
    assert code == 0
    assert not out.lstrip().startswith("{")
    lines = {line.split(None, 1)[0]: line.split(None, 1)[1:] for line in out.splitlines() if line}
    assert lines["status"] == ["expired"]
    assert lines["late"] == ["yes"]
    assert lines["test"] == ["no"]
    assert lines["amount"] == ["10000 TRY"]
    assert lines["received"] == ["100 USDT of 281.69"]
    # where a restored wallet finds the funds (past its gap limit)
    assert lines["address"] == ["TJRabPrwbZy45sbavfcjinPJC18kjpRTv8 (m/44'/195'/0'/0/7)"]
    code, out, _ = _run("--config", str(cfg), "payments", "show", "txn_show", "--json")
    detail = json.loads(out)
    assert (detail["status"], detail["late"], detail["livemode"]) == ("expired", True, True)
    assert detail["addressIndex"] == 7


def test_an_ignored_environment_variable_gets_a_warning(cfg: Path) -> None:
    env = {"WATCHER_DATABASE_URL": "sqlite+aiosqlite:////nowhere.db", "WATCHER_TRON_APIKEY": "x"}
    code, out, err = _run("--config", str(cfg), "system", "status", "--json", env=env)
    assert code == 0 and json.loads(out) == {"disabled": False}
    flat = " ".join(err.split())
    assert "WATCHER_DATABASE_URL is not a setting and is ignored" in flat
    assert "did you mean WATCHER_DATABASE__URL?" in flat
    assert "WATCHER_TRON_APIKEY is not a setting and is ignored" in flat
    assert "sqlite+aiosqlite" not in flat and " x " not in flat  # values are not echoed
    code, _, err = _run("--config", str(cfg), "system", "status", env={"WATCHER_CONFIG": ""})
    assert "ignored" not in err
