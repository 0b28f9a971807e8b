"""A small PromQL client over Prometheus' HTTP API (``/api/v1/query``), stdlib only."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

__all__ = ["PromQLError", "query", "query_range", "wait_for_value"]


class PromQLError(RuntimeError):
    """Prometheus answered with an error, or could not be reached."""


def _api(base_url: str, path: str, params: dict[str, str], what: str,
         timeout: float) -> Any:
    """GET ``/api/v1/<path>`` and return its ``data``, or raise :class:`PromQLError`."""
    url = f"{base_url.rstrip('/')}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = json.load(resp)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise PromQLError(f"prometheus at {base_url}: {what} {params['query']!r} failed: "
                          f"{exc}") from exc
    if body.get("status") != "success":
        raise PromQLError(f"prometheus at {base_url}: {body.get('error', body)}")
    return body["data"]


def query(base_url: str, expr: str, *, timeout: float = 5.0) -> list[tuple[dict[str, str], float]]:
    """Run an instant query; return ``(labels, value)`` for each series of the vector."""
    data = _api(base_url, "query", {"query": expr}, "query", timeout)
    if data["resultType"] == "scalar":
        return [({}, float(data["result"][1]))]
    return [(r["metric"], float(r["value"][1])) for r in data["result"]]


def wait_for_value(
    base_url: str,
    expr: str,
    predicate: Callable[[float], bool],
    *,
    timeout: float = 30.0,
    interval: float = 0.5,
) -> float | None:
    """Poll ``expr`` until the sum of its series satisfies ``predicate``; return that sum.

    Returns the last value seen (or ``None`` if there never was one) when ``timeout``
    passes first.
    """
    deadline = time.monotonic() + timeout
    last: float | None = None
    while True:
        try:
            series = query(base_url, expr)
        except PromQLError:
            series = []
        if series:
            last = sum(v for _, v in series)
            if predicate(last):
                return last
        if time.monotonic() >= deadline:
            return last
        time.sleep(interval)


def query_range(base_url: str, expr: str, start: float, end: float, step: float, *,
                timeout: float = 10.0) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
    """Run a range query; return ``(labels, [(time, value), ...])`` per series of the matrix.

    NaN values (an empty rate window, say) are dropped from the points.
    """
    params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
    data = _api(base_url, "query_range", params, "range query", timeout)
    out = []
    for r in data["result"]:
        points = [(float(t), float(v)) for t, v in r["values"] if v not in ("NaN", "+Inf", "-Inf")]
        out.append((r["metric"], points))
    return out
