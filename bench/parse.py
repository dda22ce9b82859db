"""What strict request parsing costs: ``parse_payload(SetRequest, raw)`` (exact JSON types, no
duplicate keys, no lone surrogates) and a repeated transaction answered from memory, beside a
lax baseline in the same run (``json.loads`` + pydantic's default, lax validation).

Usage: ``python bench/parse.py [--n 50000]``
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from setbridge.hub.transactions import TransactionLog
from setbridge.codec import parse_payload
from setbridge.messages import SetRequest, SetResponse

PAYLOADS = {
    "short": b'{"v": 1, "action": "roll", "transaction": "a7f3", "source": "script-supervisor-ipad"}',
    "node-red": b'{"v": 1, "action": "cut", "transaction": 1795399504123, "source": "node-red", "ts": 1795399504.1, '
                b'"note": "extra fields are ignored", "meta": {"flow": "setbridge", "ids": [1, 2, 3]}}',
}


def rate(fn: Callable[[], object], n: int) -> float:
    """Calls per second of ``fn``, best of 3 runs of ``n``."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000)
    n = ap.parse_args().n
    print(f"{'payload':<10} {'baseline (lax) /s':>18} {'strict /s':>12} {'strict µs':>10} {'overhead µs':>12}")
    for name, raw in PAYLOADS.items():
        lax = rate(lambda raw=raw: SetRequest.model_validate(json.loads(raw)), n)
        strict = rate(lambda raw=raw: parse_payload(SetRequest, raw), n)
        print(f"{name:<10} {lax:>18,.0f} {strict:>12,.0f} {1e6 / strict:>10.1f} {1e6 / strict - 1e6 / lax:>12.1f}")
    log = TransactionLog(capacity=10_000)
    answer = SetResponse(transaction="a7f3", ok=True, state="rolling", seq=1)
    for i in range(10_000):
        log.remember(f"tx-{i}", ("roll", None), answer)
    hit = rate(lambda: log.recall("tx-5000", ("roll", None)), n)
    miss = rate(lambda: log.recall("tx-new", ("roll", None)), n)
    print(f"transaction memory full (10,000 answers): recall hit {hit:,.0f}/s, miss {miss:,.0f}/s")


if __name__ == "__main__":
    main()
