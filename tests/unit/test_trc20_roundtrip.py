"""The follower's hand-written log decoding agrees with tronpy's ABI encoder (the devchain's)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from watcher.devchain import trc20
from watcher.tron import decode

addresses = st.binary(min_size=20, max_size=20).map(lambda body: "41" + body.hex())


@given(addresses, addresses, st.integers(min_value=0, max_value=2**256 - 1))
def test_decoder_reads_what_tronpy_encodes(sender: str, recipient: str, amount: int) -> None:
    topic0, from_word, to_word = trc20.transfer_topics(sender, recipient)
    assert topic0 == decode.TRANSFER_TOPIC
    assert decode.word_address(from_word) == sender
    assert decode.word_address(to_word) == recipient
    assert decode.word_uint(trc20.word_uint(amount)) == amount
    call = trc20.transfer_call(recipient, amount)
    assert call[:8] == trc20.TRANSFER_SELECTOR
    assert decode.word_address(call[8:72]) == recipient
    assert decode.word_uint(call[72:]) == amount
