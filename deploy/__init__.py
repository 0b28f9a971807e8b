"""Starting and finding real Kafka, Redis and Prometheus (env, testcontainers, local)."""

from deploy.services import (
    Endpoint,
    ServiceError,
    ServiceStatus,
    add_scrape_target,
    down,
    export_lines,
    lifelong_home,
    remove_scrape_target,
    resolve,
    status,
    up,
)

__all__ = [
    "Endpoint",
    "ServiceError",
    "ServiceStatus",
    "add_scrape_target",
    "down",
    "export_lines",
    "lifelong_home",
    "remove_scrape_target",
    "resolve",
    "status",
    "up",
]
