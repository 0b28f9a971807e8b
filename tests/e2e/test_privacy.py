"""Privacy as a user runs it, on the real Kafka and Redis (docs/privacy.md).

1. ``lifelong produce`` -> ``learn`` + ``finetune`` -> ``forget``, pseudonyms on: the
   processes' logs (debug level), their /metrics text, the events, DLQ and quarantine
   records (keys, values, headers) and every Redis key hold no raw user id.
2. An erasure survives a ``kill -9`` of a real ``lifelong learn`` between the request (on
   the real erasure topic, read and applied in memory) and the next checkpoint: the store
   is paused so that checkpoint cannot happen, the learner is killed, and after a restart
   the next published version is without the user.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import redis
from kafka import KafkaConsumer

from model_store import Registry
from stream.admin import TopicSpec, delete_topics, ensure_topics
from stream.producer import EventProducer
from stream.pseudonym import Pseudonymizer
from stream.schema import Event, encode

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
KEY = "e2e-privacy-pseudonym-key-0123456789"
MARK = "rawuser-e2e-"  # every raw user id starts with it: what the scans look for
N_USERS, N_EVENTS = 12, 1200


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def _metric(text: str, name: str) -> float:
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith(name + "{") or line.startswith(name + " ")]
    return sum(values) if values else -1.0


class _Proc:
    """A ``lifelong`` subprocess whose merged output is collected by a thread."""

    def __init__(self, args: list[str], env: dict[str, str]):
        self.proc = subprocess.Popen([sys.executable, "-m", "lifelong", *args], cwd=ROOT,
                                     env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            assert self.proc.poll() is None, self.output[-3000:]
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.output[-3000:]}"
            time.sleep(0.2)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._reader.join(10)
        return code


def _run(args: list[str], env: dict[str, str], stdin: str | None = None) -> str:
    done = subprocess.run([sys.executable, "-m", "lifelong", *args], cwd=ROOT, env=env,
                          input=stdin, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout + done.stderr


def _redis_bytes(client: redis.Redis, prefix: str) -> bytes:
    from tests.integration.test_erasure import _dump

    return b"\n".join(_dump(client, key) for key in client.scan_iter(f"{prefix}:*"))


def _topic_bytes(bootstrap: str, topic: str) -> tuple[int, bytes]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=4000)
    parts, n = [], 0
    try:
        for msg in consumer:
            n += 1
            parts += [msg.key or b"", msg.value or b""]
            parts += [k.encode() + b"=" + (v or b"") for k, v in msg.headers]
    finally:
        consumer.close()
    return n, b"\n".join(parts)


def _events(now: float) -> list[bytes]:
    users = [f"{MARK}{k}@example.org" for k in range(N_USERS)]
    out = [encode(Event(f"ev-{k}", users[k % N_USERS], f"item-{(k * 7) % 31}", "rating",
                        float(1 + (k * 3) % 5), now - N_EVENTS + k)) for k in range(N_EVENTS)]
    out += [encode(Event(f"bad-{k}", users[k], "item-1", "rating", 99.0, now))  # quarantine
            for k in range(3)]
    out.append(b'{"not": "an event"}')  # dead letter (carries no id: it cannot be rewritten)
    return out


@pytest.fixture()
def names(kafka, redis_service, unique, signing_key):
    topic = f"e2e-priv-{unique}"
    topics = [topic, f"{topic}.dlq", f"{topic}.q", f"{topic}.er"]
    ensure_topics(kafka.address, [TopicSpec(topic, 1)])
    yield {"topic": topic, "prefix": f"e2e-priv-{unique}", "model": f"priv-{unique}",
           "topics": topics}
    delete_topics(kafka.address, topics)
    client = redis.Redis.from_url(redis_service.address)
    keys = list(client.scan_iter(f"e2e-priv-{unique}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def _env(kafka, redis_url: str, names: dict, **extra: str) -> dict[str, str]:
    topic = names["topic"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KAFKA_BOOTSTRAP_SERVERS": kafka.address,
           "REDIS_URL": redis_url, "LIFELONG_TOPIC": topic,
           "LIFELONG_DLQ_TOPIC": f"{topic}.dlq", "LIFELONG_QUARANTINE_TOPIC": f"{topic}.q",
           "LIFELONG_ERASURE_TOPIC": f"{topic}.er", "LIFELONG_PARTITIONS": "1",
           "LIFELONG_PREFIX": names["prefix"], "LIFELONG_GROUP_ID": f"g-{names['model']}",
           "LIFELONG_MODEL": names["model"], "LIFELONG_PSEUDONYM_KEY": KEY, **extra}
    env.pop("LIFELONG_PSEUDONYM_KEY_FILE", None)
    return env


def test_an_end_to_end_run_leaks_no_raw_user_id(kafka, redis_service, names, tmp_path):
    data = tmp_path / "events.jsonl"
    data.write_bytes(b"\n".join(_events(time.time())) + b"\n")
    env = _env(kafka, redis_service.address, names)
    outputs = [_run(["-v", "produce", str(data), "--format", "jsonl"], env)]
    learn_port, tune_port = _free_port(), _free_port()
    learn = _Proc(["-v", "learn", "--publish-every-events", "400", "--idle-timeout", "60",
                   "--metrics-port", str(learn_port)], env)
    tune = _Proc(["-v", "finetune", "--round-every-events", "400", "--min-fresh", "100",
                  "--factors", "4", "--epochs", "1", "--idle-timeout", "60",
                  "--metrics-port", str(tune_port)], env)
    registry = Registry.from_url(redis_service.address, prefix=names["prefix"])
    metrics: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while True:
            assert learn.proc.poll() is None, learn.output[-3000:]
            assert tune.proc.poll() is None, tune.output[-3000:]
            assert time.monotonic() < deadline, (learn.output[-2000:], tune.output[-2000:])
            try:
                texts = [_scrape(learn_port), _scrape(tune_port)]
            except OSError:
                time.sleep(0.5)
                continue
            learned = _metric(texts[0], "lifelong_learner_events_learned_total")
            deep = registry.latest(f"{names['model']}-deep")
            if learned >= N_EVENTS and deep is not None and deep.number >= 2:
                metrics = texts
                break
            time.sleep(0.5)
    finally:
        assert learn.stop() == 0, learn.output[-3000:]
        assert tune.stop() == 0, tune.output[-3000:]
    outputs += [learn.output, tune.output]
    forgotten = f"{MARK}0@example.org"
    outputs.append(_run(["-v", "forget", "--user", "-"], env, stdin=forgotten + "\n"))
    outputs.append(_run(["-v", "forget", "--via-topic", "--user", f"{MARK}1@example.org"], env))

    p = Pseudonymizer(KEY.encode())
    mark = MARK.encode()
    for text in outputs + metrics:
        assert MARK not in text, text[max(0, text.find(MARK) - 300):text.find(MARK) + 300]
    counts = {}
    for topic in names["topics"]:
        n, blob = _topic_bytes(kafka.address, topic)
        counts[topic] = n
        assert mark not in blob, topic
    topic = names["topic"]
    assert counts[topic] == N_EVENTS + 4 and counts[f"{topic}.q"] == 3
    assert counts[f"{topic}.dlq"] == 1 and counts[f"{topic}.er"] == 1
    client = redis.Redis.from_url(redis_service.address)
    try:
        stored = _redis_bytes(client, names["prefix"])
        assert len(stored) > 10_000 and mark not in stored  # versions, aliases, audit, log
        assert p(f"{MARK}5@example.org").encode() in stored  # pseudonyms are there
        for model in (names["model"], f"{names['model']}-deep"):  # forget erased both
            latest = registry.latest(model)
            assert latest.tags.get("erasure") == "true", model
            assert p(forgotten).encode() not in registry.read_blob(model, latest.number)
    finally:
        client.close()
        registry.close()


@pytest.fixture()
def private_redis(tmp_path):
    """A Redis of this test's own (it is paused and resumed), on a free loopback port."""
    server = shutil.which("redis-server")
    assert server, "redis-server is not on PATH"
    port = _free_port()
    proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "private Redis did not start"
            time.sleep(0.1)
    yield url, proc
    client.close()
    os.kill(proc.pid, signal.SIGCONT)
    proc.terminate()
    proc.wait(20)


def test_an_erasure_survives_kill_9_of_the_learner_before_its_checkpoint(kafka, names,
                                                                        private_redis):
    url, redis_proc = private_redis
    env = _env(kafka, url, names, LIFELONG_PUBLISH_EVERY_EVENTS="300",
               LIFELONG_PUBLISH_EVERY_SECONDS="2")  # (no publish while the store is paused)
    raw = f"{MARK}kill@example.org"
    pseudonym = Pseudonymizer(KEY.encode())(raw).encode()
    now = time.time()
    with EventProducer(kafka.address, names["topic"]) as producer:
        producer.send_all([Event(f"k{k}", [raw, "someone-else"][k % 2], f"i{k % 9}", "rating",
                                 float(1 + k % 5), now - 1000 + k) for k in range(600)])
    model = names["model"]
    registry = Registry.from_url(url, prefix=names["prefix"])
    learner = _Proc(["learn", "--idle-timeout", "300"], env)
    second = None
    try:
        deadline = time.monotonic() + 120
        while (v := registry.latest(model)) is None or v.offsets.get(f"{names['topic']}:0") != 600:
            assert learner.proc.poll() is None, learner.output[-3000:]
            assert time.monotonic() < deadline, learner.output[-3000:]
            time.sleep(0.3)
        before = registry.latest(model)
        assert pseudonym in registry.read_blob(model, before.number)

        os.kill(redis_proc.pid, signal.SIGSTOP)  # the store: no checkpoint can happen now
        _run(["forget", "--via-topic", "--user", raw], env)  # Kafka only
        learner.wait_for("erased a user on request", timeout=60)  # read, applied in memory
        learner.proc.kill()  # kill -9, before the version covering the request
        assert learner.proc.wait(30) == -signal.SIGKILL
        os.kill(redis_proc.pid, signal.SIGCONT)
        assert registry.latest(model).number == before.number  # nothing was published
        assert pseudonym in registry.read_blob(model, before.number)

        second = _Proc(["learn", "--idle-timeout", "300"], env)  # resumes from `before`
        deadline = time.monotonic() + 120
        while registry.latest(model).number == before.number:
            assert second.proc.poll() is None, second.output[-3000:]
            assert time.monotonic() < deadline, second.output[-3000:]
            time.sleep(0.3)
        after = registry.latest(model)
        assert after.offsets[f"{names['topic']}.er:0"] == 1  # it covers the request
        assert after.offsets[f"{names['topic']}:0"] == 600
        assert pseudonym not in registry.read_blob(model, after.number)
        assert raw not in learner.output + second.output
    finally:
        os.kill(redis_proc.pid, signal.SIGCONT)
        if learner.proc.poll() is None:
            learner.proc.kill()
        if second is not None:
            second.stop()
        registry.close()
