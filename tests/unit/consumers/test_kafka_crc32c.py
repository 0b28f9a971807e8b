"""kafka-python checks every record batch with CRC32C; the C ``crc32c`` package must be used.

Without it kafka-python falls back to a pure-Python CRC (4.4 s of a 32 s, 100k-event
``learn`` profile, issue 10).
"""

from __future__ import annotations

import random

import crc32c
from kafka.record import _crc32c as pure
from kafka.record import util


def test_kafka_python_uses_the_c_crc32c() -> None:
    assert util.crc32c_c is crc32c.crc32c
    assert util.calc_crc32c.__defaults__ == (crc32c.crc32c,)


def test_c_and_pure_python_crc32c_agree() -> None:
    assert util.calc_crc32c(memoryview(b"123456789")) == 0xE3069283  # RFC 3720 check value
    rng = random.Random(7)
    for size in (0, 1, 7, 64, 4096, 100_003):
        data = rng.randbytes(size)
        assert util.calc_crc32c(memoryview(data)) == pure.crc(memoryview(data))
