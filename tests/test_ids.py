"""Time-ordered identifiers (crm_api.core.ids)."""

import os
import time
from uuid import UUID

from crm_api.core.ids import uuid7


def test_uuid7_is_a_version_7_uuid_of_the_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    made = [uuid7() for _ in range(2000)]  # several refills of the random buffer
    after = time.time_ns() // 1_000_000

    for value in made:
        assert value.version == 7
        assert value.variant == "specified in RFC 4122"
        assert before <= value.int >> 80 <= after
        parsed = UUID(str(value))
        assert parsed == value
        assert hash(parsed) == hash(value)
    assert len(set(made)) == len(made)


def test_uuid7_orders_by_creation_time() -> None:
    first = uuid7()
    time.sleep(0.002)
    second = uuid7()

    assert first < second
    assert str(first) < str(second)


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    uuid7()  # the parent has random bytes buffered
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.write(write, uuid7().bytes)
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    from_child = os.read(read, 16)
    os.close(read)

    ours = uuid7().bytes
    assert from_child[6:] != ours[6:]  # the random parts (the time may be the same)
