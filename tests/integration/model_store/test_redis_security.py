"""Redis ACL users and TLS, configured by URL only; refused blobs counted by subscribers.

Each test starts its own private ``redis-server`` on a free loopback port (never the shared
one) with an ACL file and/or TLS certificates made here by ``openssl``, and stops it after.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from lifelong.cli import app
from model_store import Registry, Signer
from model_store.subscriber import Subscriber
from tests.unit.model_store.conformance import KEY
from tests.unit.model_store.helpers import Const
from tests.unit.model_store.subscriber_conformance import eventually, failures

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-Pa55"
# "lifelong" may do anything; "reco" is the least the store needs, under its own prefix only
LEAST = ("resetkeys ~lifelong:* resetchannels &lifelong:* -@all +@read +@write +@transaction "
         "+@pubsub +@connection")
ACL = (f"user lifelong on >{PASSWORD} ~* &* +@all\n"
       f"user reco on >{PASSWORD} {LEAST}\n"
       "user default off\n")


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is needed for the Redis ACL/TLS tests", pytrace=False)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _make_certs(directory: Path) -> dict[str, Path]:
    """A throw-away CA, a server certificate for 127.0.0.1 and a client certificate."""
    openssl = _binary("openssl")
    files = {n: directory / n for n in ("ca.crt", "ca.key", "server.crt", "server.key",
                                        "client.crt", "client.key")}

    def ossl(*args: object) -> None:
        subprocess.run([openssl, *map(str, args)], check=True, capture_output=True)

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=lifelong-test-ca", "-keyout", files["ca.key"], "-out", files["ca.crt"])
    for who, ext in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
                     ("client", "extendedKeyUsage=clientAuth")):
        csr, extfile = directory / f"{who}.csr", directory / f"{who}.ext"
        extfile.write_text(ext + "\n")
        ossl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=lifelong-{who}",
             "-keyout", files[f"{who}.key"], "-out", csr)
        ossl("x509", "-req", "-in", csr, "-CA", files["ca.crt"], "-CAkey", files["ca.key"],
             "-CAcreateserial", "-days", "1", "-extfile", extfile, "-out", files[f"{who}.crt"])
    return files


class SecureRedis:
    """A private redis-server started with extra arguments; ``url`` reaches it."""

    def __init__(self, directory: Path, args: list[str], url: str) -> None:
        self.proc = subprocess.Popen(
            [_binary("redis-server"), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(directory), *args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = url
        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        try:
            assert eventually(lambda: self._ping(client), timeout=10), "redis did not start"
        finally:
            client.close()

    def _ping(self, client: redis.Redis) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"redis-server exited with {self.proc.returncode}", pytrace=False)
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


Start = Callable[[list[str], str], SecureRedis]


@pytest.fixture()
def start_redis(tmp_path: Path) -> Iterator[Start]:
    servers: list[SecureRedis] = []

    def start(args: list[str], url: str) -> SecureRedis:
        servers.append(SecureRedis(tmp_path, args, url))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture()
def acl_file(tmp_path: Path) -> Path:
    path = tmp_path / "users.acl"
    path.write_text(ACL)
    return path


def publish_load_subscribe(url: str, model: str = "reco") -> None:
    """What every deployment needs from its Redis URL: publish, load, follow."""
    publisher = Registry.from_url(url, signer=Signer(KEY))
    reader = Registry.from_url(url, signer=Signer(KEY))
    try:
        v1 = publisher.publish_object(model, Const(1.0))
        assert reader.load_object(model, v1.number)[1].value == 1.0
        big = bytes(range(256)) * 40_000  # 10 MB in 3 chunks
        publisher.publish(f"{model}-blob", big, format="safetensors")
        assert reader.read_blob(f"{model}-blob", "latest") == big
        with Subscriber(reader, model, poll_interval=5.0) as sub:  # woken by pub/sub
            assert sub.predict("u", "i") == 1.0
            v2 = publisher.publish_object(model, Const(2.0))
            assert sub.wait_for_version(v2.number, timeout=5) and sub.predict("u", "i") == 2.0
    finally:
        publisher.close()
        reader.close()


def test_acl_user_publishes_loads_and_subscribes(start_redis: Start, acl_file: Path) -> None:
    port = _free_port()
    server = start_redis(["--port", str(port), "--aclfile", str(acl_file)],
                         f"redis://lifelong:{PASSWORD}@127.0.0.1:{port}/0")
    publish_load_subscribe(server.url)
    least = f"redis://reco:{PASSWORD}@127.0.0.1:{port}/0"
    publish_load_subscribe(least, "least")
    registry = Registry.from_url(least, signer=Signer(KEY))
    assert registry.gc("reco", keep_last=0, grace_seconds=0) == []  # 1: rollback target
    assert len(list(registry.follow("least", after="0-0", timeout=0.1))) == 2
    registry.close()
    outside = Registry.from_url(least, prefix="other", signer=Signer(KEY))
    with pytest.raises(redis.exceptions.NoPermissionError):
        outside.publish("reco", b"x", format="raw")
    outside.close()


def test_wrong_password_is_a_clear_error_that_hides_the_password(
    start_redis: Start, acl_file: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = _free_port()
    start_redis(["--port", str(port), "--aclfile", str(acl_file)],
                f"redis://lifelong:{PASSWORD}@127.0.0.1:{port}/0")
    wrong = "not-the-" + PASSWORD
    for url in (f"redis://lifelong:{wrong}@127.0.0.1:{port}/0", f"redis://127.0.0.1:{port}/0"):
        registry = Registry.from_url(url, signer=Signer(KEY))
        with pytest.raises(redis.AuthenticationError) as caught:
            registry.publish("reco", b"x", format="raw")
        text = f"{caught.value!s} {caught.value!r} {registry.backend!r} {registry.backend.client!r}"
        assert PASSWORD not in text and wrong not in text
        registry.close()
    bad = f"redis://lifelong:{wrong}@127.0.0.1:{port}/0"
    with pytest.raises(redis.AuthenticationError, match="invalid username-password pair"):
        Registry.from_url(bad).models()

    metrics = CollectorRegistry()  # a subscriber counts it and keeps trying
    caplog.set_level(logging.DEBUG)
    reader = Registry.from_url(bad, signer=Signer(KEY))
    with Subscriber(reader, "reco", poll_interval=0.1, metrics_registry=metrics):
        assert eventually(lambda: failures(metrics, "reco", "connection") >= 2)
    reader.close()
    assert "invalid username-password pair" in caplog.text and wrong not in caplog.text

    monkeypatch.setenv("REDIS_URL", bad)  # the CLI: one red line, no password
    result = CliRunner().invoke(app, ["models", "show", "reco"])
    assert result.exit_code == 1
    assert "Redis refused the credentials" in result.output and wrong not in result.output


def test_tls_with_an_acl_user_from_the_url(start_redis: Start, acl_file: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    certs = _make_certs(tmp_path)
    port = _free_port()
    tls = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(certs["server.crt"]),
           "--tls-key-file", str(certs["server.key"]), "--tls-ca-cert-file", str(certs["ca.crt"]),
           "--tls-auth-clients", "no", "--aclfile", str(acl_file)]
    url = f"rediss://lifelong:{PASSWORD}@127.0.0.1:{port}/0?ssl_ca_certs={certs['ca.crt']}"
    start_redis(tls, url)
    publish_load_subscribe(url)
    Registry.from_url(url, signer=Signer(KEY)).publish("cli", b"w", format="raw")

    monkeypatch.setenv("REDIS_URL", url)  # the whole configuration is the URL
    monkeypatch.setenv("LIFELONG_SIGNING_KEY", KEY.decode())
    monkeypatch.delenv("LIFELONG_SIGNING_KEY_FILE", raising=False)
    result = CliRunner().invoke(app, ["models", "verify", "cli"])
    assert result.exit_code == 0 and "cli v1: ok" in result.output, result.output

    untrusted = Registry.from_url(f"rediss://lifelong:{PASSWORD}@127.0.0.1:{port}/0")
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        untrusted.models()  # the system CAs do not know this server: refused
    untrusted.close()
    plain = Registry.from_url(f"redis://lifelong:{PASSWORD}@127.0.0.1:{port}/0",
                              socket_timeout=2.0)
    with pytest.raises(redis.ConnectionError):
        plain.models()  # no TLS to a TLS-only port
    plain.close()


def test_mutual_tls_needs_the_client_certificate(start_redis: Start, tmp_path: Path) -> None:
    certs = _make_certs(tmp_path)
    port = _free_port()
    base = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={certs['ca.crt']}"
    url = f"{base}&ssl_certfile={certs['client.crt']}&ssl_keyfile={certs['client.key']}"
    start_redis(["--port", "0", "--tls-port", str(port),
                 "--tls-cert-file", str(certs["server.crt"]),
                 "--tls-key-file", str(certs["server.key"]),
                 "--tls-ca-cert-file", str(certs["ca.crt"]), "--tls-auth-clients", "yes"], url)
    publish_load_subscribe(url)
    anonymous = Registry.from_url(base, socket_timeout=2.0)
    with pytest.raises(redis.ConnectionError):
        anonymous.models()
    anonymous.close()


def test_refused_blobs_are_counted_by_reason(redis_url: str, prefix: str,
                                             client: redis.Redis) -> None:
    registry = Registry.from_url(redis_url, prefix=prefix, signer=Signer(KEY))
    metrics = CollectorRegistry()
    registry.publish_object("reco", Const(1.0))
    registry.promote("reco", 1)
    with Subscriber(registry, "reco", alias="production", poll_interval=0.1,
                    metrics_registry=metrics) as sub:
        registry.publish_object("reco", Const(2.0))
        client.hset(f"{prefix}:{{reco}}:v:2", "signature", "")  # stripped signature
        registry.promote("reco", 2)
        assert eventually(lambda: failures(metrics, "reco", "unsigned") >= 1)
        registry.publish_object("reco", Const(3.0))
        client.set(f"{prefix}:{{reco}}:v:3:chunk:0", b"\x80\x05N.")  # altered bytes
        registry.promote("reco", 3)
        assert eventually(lambda: failures(metrics, "reco", "integrity") >= 1)
        assert sub.predict("u", "i") == 1.0 and sub.current[0].number == 1
        assert metrics.get_sample_value("lifelong_subscriber_model_version",
                                        {"model": "reco", "alias": "production"}) == 1.0
    registry.close()

