"""follower.check_infos: transaction infos are taken only if they are exactly the block's."""

from __future__ import annotations

from typing import Any

import pytest

from watcher.tron.client import BlockShape, Header
from watcher.tron.follower import InconsistentBlock, check_infos

HEADER = Header(7, "00" * 32, "11" * 32, 1_800_000_000_000, "22" * 32)


def info(txid: Any) -> dict[str, Any]:
    return {"id": txid, "blockNumber": 7, "blockTimeStamp": HEADER.timestamp_ms}


def test_infos_of_the_block_pass() -> None:
    check_infos(BlockShape(HEADER, 2), [info("aa" * 32), info("bb" * 32)])


@pytest.mark.parametrize(
    "infos",
    [
        [info("aa" * 32), {"blockNumber": 7}],  # no id: its transfers would share txid ""
        [info("aa" * 32), info("aa" * 32)],  # one txid twice: one of them would be lost
        [info("aa" * 32), info(None)],
        [info("aa" * 32), info("")],
    ],
)
def test_infos_without_distinct_ids_are_retried(infos: list[Any]) -> None:
    """Transfers are credited once per (txid, log index): infos whose ids are missing or
    repeated would make two transfers one key, and the second would never be credited."""
    with pytest.raises(InconsistentBlock):
        check_infos(BlockShape(HEADER, len(infos)), infos)
