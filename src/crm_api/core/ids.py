"""Time-ordered identifiers and the clock."""

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from uuid import UUID, SafeUUID

# UUIDv7 layout: 48 bits of Unix milliseconds, version 7, 12 random bits, variant 0b10, 62
# random bits. _RANDOM_BITS selects the random fields from 80 random bits in place.
_VERSION_AND_VARIANT = 0x7 << 76 | 0b10 << 62
_RANDOM_BITS = 0xFFF << 64 | (1 << 62) - 1
_MILLIS_BITS = (1 << 48) - 1
_new_uuid = object.__new__
_set_field = object.__setattr__


class _RandomBytes:
    """Cryptographically random bytes, read from the OS a few kilobytes at a time: one system
    call per id costs as much as the rest of making it."""

    def __init__(self, chunk: int = 4096) -> None:
        self._chunk = chunk
        self._lock = threading.Lock()
        self.forget()

    def forget(self) -> None:
        """Drops what was read; a forked child must not hand out its parent's bytes."""
        self._buffer = b""
        self._offset = 0

    def take(self, count: int) -> bytes:
        with self._lock:
            offset = self._offset
            if offset + count > len(self._buffer):
                self._buffer, offset = os.urandom(self._chunk), 0
            self._offset = offset + count
            return self._buffer[offset : offset + count]


_random = _RandomBytes()
os.register_at_fork(after_in_child=_random.forget)


def uuid7() -> UUID:
    """A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits. Writes make several per
    record, so it skips UUID()'s argument checks: the value is a valid 128-bit UUID by
    construction."""
    millis = (time.time_ns() // 1_000_000) & _MILLIS_BITS
    rand = int.from_bytes(_random.take(10), "big") & _RANDOM_BITS
    value = millis << 80 | _VERSION_AND_VARIANT | rand
    made = _new_uuid(UUID)
    _set_field(made, "int", value)
    _set_field(made, "is_safe", SafeUUID.unknown)
    return made


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
