"""`watcher devchain` as another process uses it: start, read its URL, drive it, stop it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from watcher.tron.address import to_base58

SHOP = to_base58("41" + "11" * 20)


@pytest.fixture
def devchain_process() -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    watcher = str(Path(sys.executable).parent / "watcher")
    cmd = [watcher, "devchain", "--port", "0", "--json", "--block-time-ms", "0"]
    cmd += ["--solidify-lag", "2", "--usdt-price", "38.10"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.rstrip() == "}":
            break
    try:
        yield proc, json.loads("".join(lines))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)
        proc.stdout.close()


def test_standalone_devchain_is_driven_over_its_control_api(
    devchain_process: tuple[subprocess.Popen[str], dict[str, Any]],
) -> None:
    proc, info = devchain_process
    url = str(info["url"])
    assert info["usdtContract"] == "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
    with httpx.Client(base_url=url) as http:
        txid = http.post("/_dev/transfer", json={"to": SHOP, "amount": 10_000_000}).json()["txid"]
        http.post("/_dev/mine", json={"n": 3})
        got = http.post("/wallet/gettransactioninfobyid", json={"value": txid}).json()
        assert got["blockNumber"] == info["head"] + 1
        node = http.get("/wallet/getnodeinfo").json()
        assert node["solidityBlock"].startswith(f"Num:{info['head'] + 1},")  # head + 3 - lag 2
        ticker = http.get("/api/v3/ticker/price", params={"symbol": "USDTTRY"}).json()
        assert ticker == {"symbol": "USDTTRY", "price": "38.10000000"}
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0
