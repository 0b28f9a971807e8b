"""What the benchmarks share: the repeat summary, the commit measured, the clean-up of a Redis
key prefix."""

from __future__ import annotations

import os
import statistics
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["commit", "drop_prefix", "summary"]

ROOT = Path(__file__).resolve().parents[1]


def summary(values: list[float]) -> dict[str, Any]:
    """Median, range and the values of a benchmark's repeats.

    >>> summary([3.0, 1.0, 2.0])
    {'median': 2.0, 'min': 1.0, 'max': 3.0, 'values': [3.0, 1.0, 2.0]}
    """
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "values": values}


def commit() -> str:
    """The short hash of the checkout's HEAD, which a results file records (``""`` outside git)."""
    proc = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, cwd=ROOT)
    return proc.stdout.strip()


def drop_prefix(prefix: str, url: str | None = None) -> None:
    """Delete every key under ``prefix:`` in the Redis at ``url`` (default ``REDIS_URL``)."""
    import redis

    client = redis.Redis.from_url(url or os.environ["REDIS_URL"])
    try:
        for key in client.scan_iter(f"{prefix}:*", count=1000):
            client.delete(key)
    finally:
        client.close()
