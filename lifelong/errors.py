"""How the CLI reports expected failures: one clear line and an exit code."""

from __future__ import annotations

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


@contextmanager
def cli_errors() -> Iterator[None]:
    """Turn expected failures into one clear line and an exit code."""
    from kafka.errors import KafkaError
    from redis import RedisError

    from deploy.services import ServiceError
    from learning.errors import LearningError
    from lifelong.demo import DemoError
    from model_store.errors import ModelStoreError
    from stream.files import FileFormatError

    try:
        yield
    except (ConfigError, FileFormatError, ValueError) as exc:
        raise fail(str(exc), 2) from exc
    except (ServiceError, ModelStoreError, LearningError, DemoError) as exc:
        raise fail(str(exc), 1) from exc
    except RedisError as exc:  # messages from redis-py never carry the password
        raise fail(f"redis: {exc}", 1) from exc
    except KafkaError as exc:
        raise fail(f"kafka: {exc}", 1) from exc


