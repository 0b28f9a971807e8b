"""`lifelong learn --task ranking --impressions-topic`: the join across a kill -9 of the learner.

Impressions (through :class:`stream.impression_logger.ImpressionLogger`) and views/clicks
(through the event producer) go to their own real Kafka topics, in phases of event time
far enough apart that each phase's impressions expire when the next phase arrives. A real
``lifelong learn`` process joins them; it is killed with SIGKILL mid-stream, the rest is
produced, and a restarted process resumes from the last version (learner, dedup window and
join state, with the offsets of both topics). The first phases are already on both topics
when the learner starts, and the restart reads the rest as a backlog too: the join holds a
click read before its impression. At the end every shown slot ended exactly once, joined or
negative, every event was learned once, every click joined, and negatives were counted.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pytest
import redis

from consumers.checkpoint import Checkpoint
from model_store import Registry
from stream.admin import TopicSpec, delete_topics, ensure_topics
from stream.impression import Impression
from stream.impression_logger import ImpressionLogger
from stream.producer import EventProducer
from stream.schema import Event
from tests.integration.test_restart import _lifelong

pytestmark = pytest.mark.integration

PHASES, USERS, SHOWN, WINDOW = 12, 10, 6, 1000.0
T0 = 1_700_000_000.0


def phase(k: int, rng: random.Random) -> tuple[list[Impression], list[Event]]:
    """USERS impressions of SHOWN items at t0 + 5000 k; views, and clicks on shown items."""
    t = T0 + 5000.0 * k
    imps, events = [], []
    for u in range(USERS):
        user = f"u{u}"
        shown = tuple(rng.sample([f"i{j}" for j in range(40)], SHOWN))
        imps.append(Impression(f"imp-{k}-{u}", user, shown, t + u))
        events.append(Event(f"v-{k}-{u}", user, rng.choice(shown), "view", 1.0, t + u + 0.5))
        for item in shown:
            if rng.random() < 0.3:
                events.append(Event(f"c-{k}-{u}-{item}", user, item, "click", 1.0,
                                    t + u + rng.uniform(20, 200)))
    events.sort(key=lambda e: e.ts)
    return imps, events


@pytest.fixture()
def env(kafka, redis_service, unique, signing_key):
    topic, imp_topic = f"it-rk-{unique}", f"it-rk-imp-{unique}"
    ensure_topics(kafka.address, [TopicSpec(topic, 1), TopicSpec(imp_topic, 1)])
    values = {
        **os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka.address,
        "REDIS_URL": redis_service.address, "LIFELONG_PREFIX": f"it-rk-{unique}",
        "LIFELONG_TOPIC": topic, "LIFELONG_DLQ_TOPIC": f"{topic}.dlq",
        "LIFELONG_QUARANTINE_TOPIC": f"{topic}.quarantine", "LIFELONG_GROUP_ID": f"it-rk-{unique}",
        "LIFELONG_MODEL": "reco", "LIFELONG_TASK": "ranking", "LIFELONG_PARTITIONS": "1",
        "LIFELONG_IMPRESSIONS_TOPIC": imp_topic, "LIFELONG_QUALITY": "off",
        "LIFELONG_SIGNING_KEY": signing_key,
    }
    for var in ("LIFELONG_SIGNING_KEY_FILE", "LIFELONG_PSEUDONYM_KEY",
                "LIFELONG_PSEUDONYM_KEY_FILE"):
        values.pop(var, None)
    yield values
    delete_topics(kafka.address, [topic, imp_topic, f"{topic}.dlq", f"{topic}.quarantine"])
    client = redis.Redis.from_url(redis_service.address)
    keys = list(client.scan_iter(f"it-rk-{unique}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def produce(env: dict[str, str], phases: list[tuple[list[Impression], list[Event]]]) -> None:
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    with ImpressionLogger(bootstrap, env["LIFELONG_IMPRESSIONS_TOPIC"]) as logger, \
            EventProducer(bootstrap, env["LIFELONG_TOPIC"]) as producer:
        for imps, events in phases:
            for imp in imps:
                logger.send(imp)
            logger.flush(10)
            time.sleep(0.3)  # the impressions of a phase reach the learner before its clicks
            producer.send_all(events)
            producer.flush()


def learn(env: dict[str, str], *extra: str) -> subprocess.Popen:
    return subprocess.Popen([_lifelong(), "learn", "--publish-every-events", "15",
                             "--publish-every-seconds", "1", "--impression-window",
                             str(WINDOW), *extra], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def test_impressions_and_clicks_join_across_a_kill_9_of_learn(env) -> None:
    rng = random.Random(11)
    phases = [phase(k, rng) for k in range(PHASES)]
    # a late view expires the last phase's impressions too
    phases.append(([], [Event("flush", "u0", "i0", "view", 1.0, T0 + 5000.0 * (PHASES + 1))]))
    events = [e for _, evs in phases for e in evs]
    clicks = sum(e.type == "click" for e in events)
    first_half = sum(len(evs) for _, evs in phases[: PHASES // 2 - 1])
    registry = Registry.from_url(env["REDIS_URL"], prefix=env["LIFELONG_PREFIX"])
    # a backlog on both topics before the learner starts (it reads them topic by topic, so
    # clicks can come before their impressions: the join holds them), then live traffic
    produce(env, phases[:3])
    proc = learn(env)
    try:
        produce(env, phases[3 : PHASES // 2])
        deadline = time.monotonic() + 120
        while True:
            latest = registry.latest("reco")
            if latest is not None and latest.extra["events_seen"] >= first_half:
                break
            assert proc.poll() is None, proc.stderr.read()[-3000:] if proc.stderr else ""
            assert time.monotonic() < deadline, "no version covering the first phases in time"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    killed = registry.latest("reco")
    assert killed is not None and killed.extra["events_seen"] < len(events)
    _, obj = registry.load_object("reco", killed.number)
    before = Checkpoint.of(obj).impressions
    assert before is not None and 0 < before["counters"]["impressions"] < PHASES * USERS

    produce(env, phases[PHASES // 2 :])
    again = learn(env, "--idle-timeout", "8")
    _, err = again.communicate(timeout=240)
    assert again.returncode == 0, err[-3000:]

    latest = registry.latest("reco")
    assert latest is not None and latest.extra["events_seen"] == len(events)  # once each
    _, obj = registry.load_object("reco", "latest")
    checkpoint = Checkpoint.of(obj)
    counters = checkpoint.impressions["counters"]
    n_imps = PHASES * USERS
    assert counters["impressions"] == n_imps and counters["expired"] == n_imps
    assert counters["duplicate"] == 0  # the restart resumed at the checkpointed offsets
    # every shown slot ended exactly once: joined or negative, never both, never twice
    assert counters["joined"] + counters["negative"] == n_imps * SHOWN
    # every click was on a shown item within the window: all join, whatever the read order
    assert counters["joined"] == clicks and counters["unmatched"] == 0
    assert counters["joined"] + counters["unmatched"] + counters["repeat"] == clicks
    learner = checkpoint.learner
    assert 0 < learner.negatives_learned <= counters["negative"]
    assert before["counters"]["joined"] <= counters["joined"]
    registry.close()
