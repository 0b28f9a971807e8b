"""Serve a registry's metrics over HTTP for Prometheus to scrape.

>>> from prometheus_client import CollectorRegistry
>>> server = MetricsServer(CollectorRegistry(), port=0)
>>> server.port > 0
True
>>> server.close()
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, start_http_server

__all__ = ["MetricsServer"]

log = logging.getLogger(__name__)


class MetricsServer:
    """``/metrics`` for ``registry`` on ``addr:port`` (port 0 picks a free one) in a thread."""

    def __init__(self, registry: CollectorRegistry, port: int = 0, addr: str = "127.0.0.1"):
        self.registry = registry
        self.addr = addr
        self._server, self._thread = start_http_server(port, addr=addr, registry=registry)
        self.port: int = self._server.server_address[1]
        log.info("serving metrics on http://%s:%d/metrics", addr, self.port)

    @property
    def target(self) -> str:
        """``host:port``, as a Prometheus scrape target."""
        return f"{self.addr}:{self.port}"

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
