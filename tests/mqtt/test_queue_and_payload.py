"""The message queue and payload encoding, without a broker."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest

from battery_hawk.errors import PayloadError
from battery_hawk.mqtt import encode_payload
from battery_hawk.mqtt.queue import MessageQueue, QueuedMessage


def _msg(seq: int) -> QueuedMessage:
    return QueuedMessage("t", str(seq).encode(), 1, False, seq, 0.0)


def test_queue_drops_oldest_when_full() -> None:
    queue = MessageQueue(3)
    dropped = [queue.put(_msg(i)) for i in range(5)]
    assert [d.seq if d else None for d in dropped] == [None, None, None, 0, 1]
    assert [m.seq for m in queue.snapshot()] == [2, 3, 4]


def test_in_flight_messages_count_against_the_bound_and_are_not_recalled_by_overflow() -> None:
    queue = MessageQueue(3)
    for i in range(3):
        queue.put(_msg(i))
    assert queue.take() is not None and queue.take() is not None  # 0 and 1 in flight
    dropped = queue.put(_msg(3))
    assert dropped is not None and dropped.seq == 2  # oldest *pending*
    assert (len(queue), queue.in_flight, queue.pending) == (3, 2, 1)


def test_recalled_messages_go_back_to_the_head_in_order() -> None:
    queue = MessageQueue(10)
    for i in range(5):
        queue.put(_msg(i))
    taken = [queue.take() for _ in range(3)]
    assert [m.seq for m in taken if m] == [0, 1, 2]
    queue.ack(taken[1])  # type: ignore[arg-type]
    recalled = queue.recall_in_flight()
    queue.requeue(recalled)
    assert [m.seq for m in queue.snapshot()] == [0, 2, 3, 4]
    assert [queue.take().seq for _ in range(4)] == [0, 2, 3, 4]  # type: ignore[union-attr]


def test_dicts_serialise_as_json_with_iso_datetimes() -> None:
    stamp = dt.datetime(2026, 11, 22, 19, 0, 0, 123000, tzinfo=dt.UTC)
    data = encode_payload({"voltage": 12.84, "timestamp": stamp, "current": None})
    assert json.loads(data) == {"voltage": 12.84, "timestamp": "2026-11-22T19:00:00.123000+00:00",
                                "current": None}


@pytest.mark.parametrize("payload,expected", [
    (b"\x00\x01", b"\x00\x01"), ("online", b"online"), (42, b"42"), (12.5, b"12.5"),
    ([1, "a"], b'[1,"a"]'), (None, b""), (dt.date(2026, 1, 2), b"2026-01-02"),
])
def test_payload_types_encode_as_documented(payload: object, expected: bytes) -> None:
    assert encode_payload(payload) == expected


@pytest.mark.parametrize("payload", [{"x": object()}, {"x": float("nan")}, float("inf"), {1j}])
def test_unserialisable_payloads_raise_payload_error(payload: object) -> None:
    with pytest.raises(PayloadError):
        encode_payload(payload)


async def test_one_message_wakes_one_waiting_publisher_not_all() -> None:
    queue = MessageQueue(10)
    waiters = [asyncio.create_task(queue.wait_pending()) for _ in range(5)]
    await asyncio.sleep(0)  # every waiter is parked
    queue.put(_msg(1))
    await asyncio.sleep(0)
    assert sum(w.done() for w in waiters) == 1
    queue.requeue([_msg(0)])  # a recalled message wakes one more
    await asyncio.sleep(0)
    assert sum(w.done() for w in waiters) == 2
    for w in waiters:
        w.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)


async def test_a_cancelled_waiter_passes_its_wake_up_on() -> None:
    queue = MessageQueue(10)
    first = asyncio.create_task(queue.wait_pending())
    second = asyncio.create_task(queue.wait_pending())
    await asyncio.sleep(0)
    queue.put(_msg(1))  # wakes `first` ...
    first.cancel()  # ... which is cancelled before it runs
    await asyncio.gather(first, return_exceptions=True)
    await asyncio.wait_for(second, 1)  # the message is not stranded


def _state(seq: int, topic: str = "s") -> QueuedMessage:
    return QueuedMessage(topic, str(seq).encode(), 1, True, seq, 0.0, supersede=True)


def test_a_newer_state_message_supersedes_the_pending_one_for_its_topic() -> None:
    queue = MessageQueue(10)
    queue.put(_msg(0))
    for seq in range(1, 200):
        queue.supersede("s")
        queue.put(_state(seq))
    queue.put(_msg(200))
    assert len(queue) == 3
    assert [m.payload for m in queue.snapshot()] == [b"0", b"199", b"200"]
    assert [queue.take().payload for _ in range(3)] == [b"0", b"199", b"200"]  # type: ignore[union-attr]
    assert queue.take() is None


def test_events_are_never_superseded_and_other_topics_are_untouched() -> None:
    queue = MessageQueue(10)
    queue.put(_state(0, "a"))
    queue.put(_msg(1))
    queue.put(_msg(2))
    assert queue.supersede("t") is None  # events on "t" are not state
    old = queue.supersede("a")
    assert old is not None and old.seq == 0
    queue.put(_state(3, "b"))
    assert [m.seq for m in queue.snapshot()] == [1, 2, 3]


def test_a_recalled_state_message_is_not_requeued_behind_a_newer_one() -> None:
    queue = MessageQueue(10)
    queue.put(_state(0))
    taken = queue.take()
    assert taken is not None
    assert queue.supersede("s") is None  # in flight: cannot be recalled
    queue.put(_state(1))
    superseded = queue.requeue(queue.recall_in_flight())
    assert [m.seq for m in superseded] == [0]
    assert [m.seq for m in queue.snapshot()] == [1]
