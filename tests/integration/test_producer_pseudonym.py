"""The producer SDK pseudonymises before a record leaves the process (real Kafka)."""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer

from stream.admin import TopicSpec, delete_topics, ensure_topics
from stream.producer import EventProducer
from stream.pseudonym import Pseudonymizer
from stream.schema import Event, decode, encode

pytestmark = pytest.mark.integration


def test_events_and_raw_records_leave_with_the_pseudonym_only(kafka, unique) -> None:
    topic = f"it-pseudo-{unique}"
    p = Pseudonymizer(b"producer-test-key-0123456789", key_id="k1")
    ensure_topics(kafka.address, [TopicSpec(topic, 1)])
    try:
        with EventProducer(kafka.address, topic, pseudonymizer=p) as producer:
            producer.send(Event("e1", "raw-alice", "i1", "rating", 4.0, 1.0))
            producer.send_all([encode(Event("e2", "raw-alice", "i2", "click", 1.0, 2.0)),
                               b"not json"])
        consumer = KafkaConsumer(topic, bootstrap_servers=kafka.address,
                                 auto_offset_reset="earliest", consumer_timeout_ms=10_000)
        records = []
        for message in consumer:
            records.append(message)
            if len(records) == 3:
                break
        consumer.close()
        assert len(records) == 3
        for message in records[:2]:
            assert b"raw-alice" not in message.value and message.key == p("raw-alice").encode()
            assert decode(message.value).user_id == p("raw-alice")
        assert records[2].value == b"not json" and records[2].key is None  # sent unchanged
    finally:
        delete_topics(kafka.address, [topic])
