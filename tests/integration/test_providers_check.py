"""`watcher providers check` against the provider stand-ins on loopback, as an operator runs it
(the installed command, in its own process): each configured provider and whether our
credentials work there; secrets never printed."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.providers import (
    ACID_API_KEY,
    ACID_CREDENTIAL_KEY,
    ACID_SECRET_KEY,
    fake_acid,
)
from watcher.devchain import acidpanel as fake_acidpanel
from watcher.devchain import stripe as fake_stripe
from watcher.devchain.stripe import FakeStripe

WATCHER = str(Path(sys.executable).with_name("watcher"))
STRIPE_KEY = "sk_live_51CheckTheLocalStripe"  # the local fake's


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[str, str]]:
    async with (
        fake_stripe.serve(FakeStripe(secret_key=STRIPE_KEY)) as stripe_url,
        fake_acidpanel.serve(fake_acid()) as acid_url,
    ):
        yield stripe_url, acid_url


def _config(
    path: Path,
    stripe_url: str,
    acid_url: str,
    *,
    stripe_key: str = STRIPE_KEY,
    acid_secret: str = ACID_SECRET_KEY,
) -> Path:
    path.write_text(
        f"""
[providers]
card = "stripe"
bank = "acidpanel"
wallet = "kazawallet"

[providers.stripe]
secret_key = "{stripe_key}"
webhook_secret = "whsec_check"
api_base = "{stripe_url}"

[providers.acidpanel]
base_url = "{acid_url}"
api_key = "{ACID_API_KEY}"
secret_key = "{acid_secret}"
credential_key = "{ACID_CREDENTIAL_KEY}"
timeout_s = 3

[providers.kazawallet]
api_key = "kz_key_check"
api_secret = "kz_secret_check"
"""
    )
    return path


async def _check(cfg: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        WATCHER,
        "--config",
        str(cfg),
        "providers",
        "check",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_check_reports_each_provider_as_ok(fakes: tuple[str, str], tmp_path: Path) -> None:
    cfg = _config(tmp_path / "watcher.toml", *fakes)
    code, out, _ = await _check(cfg)
    print(out)
    assert code == 0
    lines = out.splitlines()
    assert any(line.startswith("stripe") and "card" in line and " ok " in line for line in lines)
    assert any(
        line.startswith("acidpanel") and "bank" in line and "Welcome, Fake Provider!" in line
        for line in lines
    )
    assert any(line.startswith("kazawallet") and "not checked" in line for line in lines)
    code, out, _ = await _check(cfg, "--json")
    assert code == 0
    assert json.loads(out) == {
        "providers": [
            {
                "name": "stripe",
                "methods": ["card"],
                "ok": True,
                "checked": True,
                "detail": "the secret key can read checkout sessions",
            },
            {
                "name": "acidpanel",
                "methods": ["bank"],
                "ok": True,
                "checked": True,
                "detail": "Welcome, Fake Provider!",
            },
            {
                "name": "kazawallet",
                "methods": ["wallet"],
                "ok": True,
                "checked": False,
                "detail": "Kazawallet has no call to check credentials with; the API key is "
                "checked by the first payment link, the API secret by the first webhook",
            },
        ]
    }


async def test_wrong_credentials_fail_the_check_without_printing_secrets(
    fakes: tuple[str, str], tmp_path: Path
) -> None:
    cfg = _config(
        tmp_path / "watcher.toml",
        *fakes,
        acid_secret="sk_wrong_acid_secret",
        stripe_key="sk_test_51WrongStripeKeyForCheck",
    )
    code, out, err = await _check(cfg)
    print(out)
    assert code == 1
    assert "AcidPanel refused the credentials (HTTP 401): Invalid hash" in out
    assert "FAILED" in out and "HTTP 401" in out
    for secret in (
        "sk_wrong_acid_secret",
        "sk_test_51WrongStripeKeyForCheck",
        STRIPE_KEY,
        ACID_CREDENTIAL_KEY,
    ):
        assert secret not in out + err


async def test_a_stripe_test_key_is_called_out(tmp_path: Path) -> None:
    """Live card payments never complete in Stripe's test mode: the check says so."""
    test_key = "sk_test_51CheckTheLocalStripe"
    async with (
        fake_stripe.serve(FakeStripe(secret_key=test_key)) as stripe_url,
        fake_acidpanel.serve(fake_acid()) as acid_url,
    ):
        cfg = _config(tmp_path / "watcher.toml", stripe_url, acid_url, stripe_key=test_key)
        code, out, err = await _check(cfg, "--json")
    assert code == 0  # it works; it just takes no money
    [stripe_row] = [p for p in json.loads(out)["providers"] if p["name"] == "stripe"]
    assert "test-mode key" in stripe_row["detail"] and "never complete" in stripe_row["detail"]
    assert test_key not in out + err


async def test_a_provider_that_cannot_be_reached_is_not_said_to_refuse(tmp_path: Path) -> None:
    """Nothing listens at api_base: the operator is told Stripe could not be reached (as for
    AcidPanel), not that it refused the credentials, which would send them to the wrong fix."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    cfg = _config(tmp_path / "watcher.toml", closed, closed + "/api/provider")
    code, out, err = await _check(cfg, "--json")
    assert code == 1
    rows = {p["name"]: p for p in json.loads(out)["providers"]}
    assert rows["acidpanel"]["detail"] == "AcidPanel could not be reached (ConnectError)"
    assert rows["stripe"]["detail"] == "Stripe could not be reached (APIConnectionError)"
    assert STRIPE_KEY not in out + err
