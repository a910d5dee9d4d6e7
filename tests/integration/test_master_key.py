"""The master key of webhook secrets: made once, never silently replaced."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from watcher.cli import app
from watcher.config import Settings
from watcher.secrets import SecretKeyError, key_file_for, load_box
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


def test_processes_starting_together_make_one_key_file_and_all_use_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WATCHER_SECRET_KEY")
    url = f"sqlite+aiosqlite:///{tmp_path / 'watcher.db'}"
    ctx = multiprocessing.get_context("fork")
    with ctx.Manager() as manager, ProcessPoolExecutor(8, mp_context=ctx) as pool:
        start = manager.Event()
        futures = [pool.submit(_box_key, url, start) for _ in range(8)]
        start.set()
        keys = {f.result(timeout=30) for f in futures}
    on_disk = key_file_for(url).read_bytes().strip()
    assert keys == {on_disk}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert key_file_for(url).stat().st_mode & 0o777 == 0o600


def _box_key(url: str, start: Any) -> bytes:
    """The key file's content, once this process's box is shown to encrypt with it."""
    start.wait()
    token = load_box(url).encrypt("probe")
    key = key_file_for(url).read_bytes().strip()
    assert Fernet(key).decrypt(token.encode()) == b"probe"  # InvalidToken: another key
    return key
