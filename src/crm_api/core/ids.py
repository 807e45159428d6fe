"""Time-ordered identifiers and the clock."""

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


class Clock:
    """What time it is, in UTC. Tests pin it to make time-dependent rules (overdue tasks, future
    activities) exact; nothing else ever does."""

    def __init__(self) -> None:
        self._pinned: datetime | None = None

    def now(self) -> datetime:
        return self._pinned or datetime.now(UTC)

    @contextmanager
    def pinned(self, at: datetime) -> Iterator[None]:
        self._pinned = at.astimezone(UTC)
        try:
            yield
        finally:
            self._pinned = None


clock = Clock()


def utcnow() -> datetime:
    return clock.now()
