"""The master key of webhook secrets: made once, never silently replaced."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from watcher.cli import app
from watcher.config import Settings
from watcher.secrets import SecretKeyError
from watcher.services import build_services
from watcher.wallets.hd import DEMO_XPUB

runner = CliRunner()


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("WATCHER_SECRET_KEY")
    path = tmp_path / "watcher.toml"
    path.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "w.db"}"\n')
    return path


def _cli(cfg: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--config", str(cfg), *args])
    return result.exit_code, result.stdout, result.stderr


def test_lost_key_file_is_refused_not_replaced(cfg: Path) -> None:
    code, out, _ = _cli(cfg, "init", "--json")
    assert code == 0 and json.loads(out)["webhook_secret"].startswith("whsec_")
    key = cfg.parent / "watcher.key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert _cli(cfg, "merchant", "add", "second")[0] == 0
    key.unlink()
    code, _, err = _cli(cfg, "merchant", "add", "third")
    assert code == 1 and "restore the key file" in err
    assert not key.exists()  # no fresh key that would orphan the stored secrets


def test_a_wrong_key_stops_the_daemon_before_it_signs_anything(
    cfg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _cli(cfg, "init")[0] == 0
    monkeypatch.setenv("WATCHER_SECRET_KEY", Fernet.generate_key().decode())
    settings = Settings(
        database={"url": f"sqlite+aiosqlite:///{cfg.parent / 'w.db'}"},
        wallet={"xpub": DEMO_XPUB},
    )

    async def start() -> None:
        async with build_services(settings):
            pass

    with pytest.raises(SecretKeyError, match="do not decrypt"):
        asyncio.run(start())
    code, _, err = _cli(cfg, "merchant", "rotate-key", "default", "--secret")
    assert code == 1 and "do not decrypt" in err
