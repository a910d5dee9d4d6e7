"""Crash soak: payments paid on the devchain while the daemon is SIGKILLed and restarted.

    .venv/bin/python bench/soak.py [--payments 2000] [--kills 20] [--db sqlite|postgres]
        [--split] [--rate 10] [--ttl-s 60] [--seed 1]

A mix of payments (full, partial then the rest, over, late, and a share whose transfers are
moved or dropped by devchain forks) is created through the API and paid on a devchain making
a block every 0.5 s, while `watcher run` (or, with --split on PostgreSQL, `watcher api` x2,
`scan` x2 and `deliver` x2, killing the active scanner and the delivery workers) is killed
with SIGKILL at --kills random moments and started again. A merchant endpoint on loopback
counts the callbacks by eventId. At the end it prints what it injected (kills with their
moments, forks) and what it found (payments per expected final state, events, receipts,
duplicates, losses, transfers credited), and exits 1 on any violation. The harness is
tests/support/soak/ (the suite runs a short form of it: tests/e2e/test_soak.py).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.soak.run import Options, soak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--payments", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--split", action="store_true", help="api/scan/deliver x2 (PostgreSQL)")
    parser.add_argument("--rate", type=float, default=10.0, help="payments started per second")
    parser.add_argument("--ttl-s", type=float, default=60.0, help="how long a payment is open")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep logs and database")
    args = parser.parse_args()
    if args.split and args.db != "postgres":
        parser.error("--split needs --db postgres (SQLite runs one daemon)")
    opts = Options(
        payments=args.payments,
        kills=args.kills,
        db=args.db,
        split=args.split,
        rate=args.rate,
        ttl_s=args.ttl_s,
        seed=args.seed,
        keep=args.keep,
    )
    result = asyncio.run(soak(opts, lambda line: print(line, flush=True)))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
