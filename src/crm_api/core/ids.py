"""Time-ordered identifiers and the clock."""

import os
import time
from datetime import UTC, datetime
from uuid import UUID

_RAND_B_BITS = 62


def uuid7() -> UUID:
    """A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    rand_a = (rand >> _RAND_B_BITS) & 0xFFF
    rand_b = rand & ((1 << _RAND_B_BITS) - 1)
    value = (millis & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return UUID(int=value)


def utcnow() -> datetime:
    return datetime.now(UTC)
