"""The CLI as an operator meets it: bad settings, the wrong directory, help texts, clean stderr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from watcher.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WATCHER_CONFIG", "WATCHER_DATABASE__URL", "WATCHER_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)


def _cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def _config_error(tmp_path: Path, text: str) -> str:
    cfg = tmp_path / "w.toml"
    cfg.write_text(text)
    code, out, err = _cli("--config", str(cfg), "system", "status")
    assert code == 1 and out == ""
    assert "Traceback" not in err
    return " ".join(err.split())


def test_bad_values_name_the_key_and_the_value(tmp_path: Path) -> None:
    err = _config_error(tmp_path, '[tron]\nstart_block = "earliest"\n')
    assert "tron.start_block = 'earliest': Input should be 'latest', or a valid integer" in err
    assert "literal[" not in err
    err = _config_error(tmp_path, "[callbacks]\nmax_attemps = 3\n")
    assert "callbacks.max_attemps: unknown setting (did you mean max_attempts?)" in err
    err = _config_error(tmp_path, '[log]\nlevel = "LOUD"\n')
    assert "log.level = 'LOUD'" in err and "INFO" in err


def test_a_bad_database_url_is_a_config_error_and_hides_the_password(tmp_path: Path) -> None:
    err = _config_error(tmp_path, '[database]\nurl = "mysql://u@h/db"\n')
    assert "database.url" in err and "only SQLite" in err
    err = _config_error(tmp_path, '[database]\nurl = "not a url"\n')
    assert "database.url = 'not a url': not a database URL" in err
    err = _config_error(tmp_path, '[database]\nurl = "postgresql://u:hunter2@h/db"\n')
    assert "use the async driver: postgresql+asyncpg://u:***@h/db" in err
    assert "hunter2" not in err


def test_environment_overrides_and_watcher_config_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHER_API__PORT", "abc")
    code, _, err = _cli("system", "status")
    assert code == 1 and "api.port = 'abc' (from environment variable WATCHER_API__PORT)" in err
    monkeypatch.delenv("WATCHER_API__PORT")
    monkeypatch.setenv("WATCHER_CONFIG", str(tmp_path / "gone.toml"))
    code, _, err = _cli("system", "status")
    assert code == 1 and "(WATCHER_CONFIG) does not exist" in " ".join(err.split())


def test_commands_from_another_directory_leave_no_database_or_key_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "w.toml"
    cfg.write_text('[database]\nurl = "sqlite+aiosqlite:///./watcher.db"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for args in (("payments", "list"), ("merchant", "add", "shop"), ("rate", "show", "--offline")):
        code, out, err = _cli("--config", str(cfg), *args)
        err = " ".join(err.split())
        assert code == 1 and out == "", args
        assert f"no database at {elsewhere / 'watcher.db'}" in err
        assert f"relative to the working directory {elsewhere}" in err
    assert list(elsewhere.iterdir()) == []

    code, _, _ = _cli("--config", str(cfg), "init", "--json")
    assert code == 0 and (elsewhere / "watcher.db").exists()
    code, out, _ = _cli("--config", str(cfg), "payments", "list", "--json")
    assert code == 0 and json.loads(out) == []


def test_run_with_no_xpub_says_so_without_a_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "w.toml"
    db = tmp_path / "w.db"
    cfg.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{db}"\n[api]\nport = 0\n')
    code, _, err = _cli("--config", str(cfg), "run")
    assert code == 1
    assert "error: invalid configuration: wallet.xpub is empty" in err
    assert "Traceback" not in err


def test_an_invalid_master_key_is_an_error_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "w.toml"
    cfg.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "w.db"}"\n')
    monkeypatch.setenv("WATCHER_SECRET_KEY", "not-a-fernet-key")
    code, _, err = _cli("--config", str(cfg), "init")
    assert code == 1 and "the master key is not a valid Fernet key" in err


def test_one_shot_commands_keep_stderr_free_of_info_logs(tmp_path: Path) -> None:
    cfg = tmp_path / "w.toml"
    cfg.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "w.db"}"\n[log]\nlevel = "DEBUG"\n'
    )
    assert _cli("--config", str(cfg), "db", "upgrade")[0] == 0
    code, out, err = _cli("--config", str(cfg), "rate", "show", "--offline", "--json")
    assert code == 0 and json.loads(out)["lastStored"] is None
    assert err == ""


def test_callbacks_retry_all_dead_with_none_dead(tmp_path: Path) -> None:
    cfg = tmp_path / "w.toml"
    cfg.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "w.db"}"\n')
    assert _cli("--config", str(cfg), "db", "upgrade")[0] == 0
    code, out, _ = _cli("--config", str(cfg), "callbacks", "retry", "--all-dead")
    assert code == 0 and out.strip() == "no dead callbacks to retry"


def test_devchain_is_a_plain_command() -> None:
    code, out, _ = _cli("devchain", "--help")
    assert code == 0 and "Usage: watcher devchain [OPTIONS]" in out
    assert "COMMAND" not in out and "/_dev/transfer" in out
