"""The crash soak and fault harness: the daemon as real `watcher` processes on a devchain,
payments made and paid the way payers make them, SIGKILLs and faults injected, and an audit
of what the database, the chain and a counting merchant endpoint show at the end.

- `processes`: the `watcher` processes of a layout (`run`, or api/scan/deliver x2), their
  config, SIGKILL and restart;
- `merchant`: the callback endpoint that counts receipts by eventId (and can be down);
- `payers`: the mix of payments (full, partial then the rest, over, late, through a fork),
  paid on the devchain, and the forks;
- `audit`: the checks at the end, and the printed summary;
- `run`: the soak itself, for bench/soak.py and tests/e2e/test_soak.py.
"""
