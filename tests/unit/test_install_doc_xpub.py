"""The xpub recipe in docs/install.md runs as printed and agrees with the daemon's derivation.

An operator runs it once, offline, on their real recovery phrase: a recipe that fails there
leaves them without a wallet.xpub, and one that prints another first address than the daemon
derives would have them check the wrong thing.
"""

from __future__ import annotations

import getpass
import re
from pathlib import Path

import pytest

from watcher.wallets.hd import DEMO_XPUB, HdDeriver

INSTALL_DOC = Path(__file__).resolve().parents[2] / "docs" / "install.md"
# BIP39's test phrase: DEMO_XPUB is the account key of m/44'/195'/0' it gives.
TEST_PHRASE = " ".join(["abandon"] * 11 + ["about"])


def _xpub_recipe() -> str:
    found = re.search(r"/tmp/x/bin/python - <<'EOF'\n(.*?)\nEOF\n", INSTALL_DOC.read_text(), re.S)
    assert found is not None, "docs/install.md no longer has the xpub recipe"
    return found.group(1)


def test_xpub_recipe_prints_the_account_xpub_and_the_daemons_first_address(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = iter([TEST_PHRASE, ""])  # the phrase, then an empty passphrase
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    exec(compile(_xpub_recipe(), str(INSTALL_DOC), "exec"), {})
    xpub, first_address = capsys.readouterr().out.split()
    assert xpub == DEMO_XPUB
    assert first_address == HdDeriver(DEMO_XPUB).address(0)
