"""A local TRON node (and Binance ticker) simulator for the demo, tests and benchmarks."""

from watcher.devchain.chain import DevChain, ForkRefused
from watcher.devchain.server import DevChainServer

__all__ = ["DevChain", "DevChainServer", "ForkRefused"]
