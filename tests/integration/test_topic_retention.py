"""Dead-letter / quarantine retention on the real Kafka: set at creation, then altered."""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from stream.admin import TopicSpec, delete_topics, ensure_topics

pytestmark = pytest.mark.integration


def _retention(bootstrap: str, topic: str) -> str:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="it-retention")
    try:
        found = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs=["retention.ms"])],
            config_filter="All")
    finally:
        admin.close()
    return str(found["topic"][topic]["retention.ms"]["value"])


def test_dead_letter_retention_is_set_and_then_changed(kafka, unique) -> None:
    topic = f"it-dlq-retention-{unique}"
    try:
        assert ensure_topics(kafka.address, [TopicSpec(topic, 1,
                                                       config={"retention.ms": "3600000"})])
        assert _retention(kafka.address, topic) == "3600000"
        assert ensure_topics(kafka.address, [TopicSpec(topic, 1,
                                                       config={"retention.ms": "7200000"})]) == []
        assert _retention(kafka.address, topic) == "7200000"
    finally:
        delete_topics(kafka.address, [topic])
