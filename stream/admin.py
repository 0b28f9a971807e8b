"""Topic admin: create the events and dead-letter topics if they do not exist."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import TopicAlreadyExistsError

__all__ = ["TopicSpec", "delete_topics", "ensure_topics"]

log = logging.getLogger(__name__)


class TopicSpec:
    """A topic to create: name, partitions, replication factor, topic configs.

    ``config`` (e.g. ``{"retention.ms": "604800000"}``) is set at creation and, on a topic
    that already exists, applied with an incremental alter (other settings untouched).
    """

    def __init__(self, name: str, partitions: int = 3, replication: int = 1,
                 config: Mapping[str, str] | None = None):
        if partitions < 1:
            raise ValueError(f"topic {name!r}: partitions must be >= 1, got {partitions}")
        self.name = name
        self.partitions = partitions
        self.replication = replication
        self.config = dict(config or {})

    def __repr__(self) -> str:
        return f"TopicSpec({self.name!r}, {self.partitions}, {self.replication})"


def ensure_topics(bootstrap_servers: str, specs: Sequence[TopicSpec],
                  **client_config: Any) -> list[str]:
    """Create the topics that are missing; return the names created.

    ``client_config``: more kafka-python options (SASL / TLS).
    """
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="lifelong-admin",
                             **client_config)
    try:
        existing = set(admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        created = []
        for spec in missing:
            try:
                admin.create_topics([NewTopic(spec.name, spec.partitions, spec.replication,
                                              topic_configs=spec.config)])
                created.append(spec.name)
                log.info("created topic %s (%d partitions)", spec.name, spec.partitions)
            except TopicAlreadyExistsError:
                pass
        configured = [ConfigResource(ConfigResourceType.TOPIC, s.name, configs=s.config)
                      for s in specs if s.config and s.name not in created]
        if configured:  # e.g. the retention of the dead letters (docs/privacy.md)
            admin.alter_configs(configured)
        return created
    finally:
        admin.close()


def delete_topics(bootstrap_servers: str, names: Sequence[str], **client_config: Any) -> None:
    """Delete topics (tests clean up with this)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="lifelong-admin",
                             **client_config)
    try:
        existing = set(admin.list_topics())
        doomed = [n for n in names if n in existing]
        if doomed:
            admin.delete_topics(doomed)
    finally:
        admin.close()
