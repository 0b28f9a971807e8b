"""How the CLI reports expected failures: one clear line and an exit code."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from lifelong.config import ConfigError

__all__ = ["cli_errors", "fail"]

console = Console(stderr=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` as an error and return the exit to raise."""
    console.print("[bold red]error:[/] ", end="")
    console.print(message, markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code)


# (module, class name, exit code, message prefix), in the order they are tried
_EXPECTED = (
    ("stream.files", "FileFormatError", 2, ""),
    ("deploy.services", "ServiceError", 1, ""),
    ("model_store.errors", "ModelStoreError", 1, ""),
    ("learning.errors", "LearningError", 1, ""),
    ("lifelong.demo", "DemoError", 1, ""),
    ("redis.exceptions", "RedisError", 1, "redis: "),  # never carries the password
    ("kafka.errors", "KafkaError", 1, "kafka: "),
)


def _expected(exc: BaseException) -> tuple[int, str] | None:
    """The exit code and prefix of an expected failure, or None.

    The classes are looked up among the modules already imported: an exception of a module
    never imported cannot have been raised, and ``evaluate`` (no services) then imports
    neither Kafka nor Redis for its error handling.

    >>> _expected(ValueError("bad")), _expected(KeyError("x"))
    ((2, ''), None)
    """
    if isinstance(exc, (ConfigError, ValueError)):
        return 2, ""
    for module, name, code, prefix in _EXPECTED:
        found = getattr(sys.modules.get(module), name, None)
        if isinstance(found, type) and isinstance(exc, found):
            return code, prefix
    return None


@contextmanager
def cli_errors() -> Iterator[None]:
    """Turn expected failures into one clear line and an exit code."""
    try:
        yield
    except Exception as exc:
        expected = _expected(exc)
        if expected is None:
            raise
        code, prefix = expected
        raise fail(f"{prefix}{exc}", code) from exc
