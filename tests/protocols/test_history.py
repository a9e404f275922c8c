"""History downloads of BM2 / BM6 / BM7 as pure conversations: requests, pages, records.

Published facts these tests hold the parser to (see battery_hawk.protocols.history):
marcomc/BMGateway's BM6 record ``52b53170`` = 13.23 V, 83 %, 23 °C, type 0; its BM7
records ``53b620f0`` = 13.39 V, 98 %, 15 °C and ``53a620e0`` = 13.38 V, 98 %, 14 °C; its
captured one-page trailer ``fffefe00040900000000000000000000`` (0x409 - 9 = 1024 bytes,
256 records). Longer pages are built from that layout (battery_hawk.simulator.history).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from battery_hawk.errors import DecodeError
from battery_hawk.models import Reading
from battery_hawk.protocols import BM2, BM6, BM7, Victron
from battery_hawk.protocols._aes import ZeroIvCbc
from battery_hawk.protocols.bm6 import BM6_KEY
from battery_hawk.protocols.bm7 import BM7_KEY
from battery_hawk.protocols.history import (
    HISTORY_INTERVAL,
    MAX_PAGES,
    BM2History,
    HistoryRecord,
    HistorySession,
    LeagendPages,
    history_session,
    leagend_history_request,
    pages_for,
    parse_leagend_blocks,
)
from battery_hawk.simulator.history import (
    StoredRecord,
    bm2_history_notifications,
    leagend_history_notifications,
    leagend_page_plaintext,
)

AT = datetime(2026, 11, 22, 19, 0, tzinfo=UTC)
HEADER = bytes.fromhex("d1550501000000000000000000000000")  # as captured for one page


def _blocks(plain: bytes) -> list[bytes]:
    return [plain[i : i + 16] for i in range(0, len(plain), 16)]


def _day(count: int) -> list[StoredRecord]:
    """count records, oldest first, voltage, SoC and temperature varying per step."""
    return [
        StoredRecord(voltage=round(12.0 + i % 100 / 100, 2), soc=50 + i % 50,
                     temperature=10 + i % 20, kind=i % 3 * 2)
        for i in range(count)
    ]


def _feed_all(session: HistorySession, notifications: list[bytes]) -> None:
    for note in notifications:
        assert session.feed(note) is None
    assert session.done


# ------------------------------------------------------------------ BM6 / BM7 pages


def test_request_puts_the_cumulative_page_count_in_byte_7() -> None:
    assert leagend_history_request(1) == bytes.fromhex("d1550500000000010000000000000000")
    assert leagend_history_request(3) == bytes.fromhex("d1550500000000030000000000000000")
    with pytest.raises(ValueError):
        leagend_history_request(0)


def test_session_request_is_the_encrypted_page_request() -> None:
    session = history_session(BM7(), pages=2)
    assert ZeroIvCbc(BM7_KEY).decrypt(session.request()) == leagend_history_request(2)


def test_published_records_decode_to_the_published_values() -> None:
    trailer = bytes.fromhex("fffefe000015") + bytes(10)  # 3 records (12 bytes) + 9
    plain = HEADER + bytes.fromhex("53b620f053a620e052b53170") + bytes(4) + trailer
    records = parse_leagend_blocks(_blocks(plain), AT, family="bm7")
    assert records == [
        HistoryRecord(AT - 2 * HISTORY_INTERVAL, 13.23, 83.0, 23.0, None, 0),
        HistoryRecord(AT - HISTORY_INTERVAL, 13.38, 98.0, 14.0, None, 0),
        HistoryRecord(AT, 13.39, 98.0, 15.0, None, 0),
    ]


def test_a_full_page_with_the_captured_trailer_gives_256_records_2_minutes_apart() -> None:
    raw = bytes.fromhex("52b53170") * 256
    plain = HEADER + raw + bytes.fromhex("fffefe00040900000000000000000000")
    records = parse_leagend_blocks(_blocks(plain), AT)
    assert len(records) == 256
    assert records[0].timestamp == AT - 255 * HISTORY_INTERVAL
    assert records[-1].timestamp == AT
    assert {(r.voltage, r.soc, r.temperature) for r in records} == {(13.23, 83.0, 23.0)}


@pytest.mark.parametrize("driver", [BM6(), BM7()], ids=["bm6", "bm7"])
def test_long_history_round_trips_through_the_session(driver: BM6 | BM7) -> None:
    stored = _day(720)  # 24 h
    assert driver.key is not None
    notes = leagend_history_notifications(stored, 3, driver.key, blocks_per_notification=4)
    session = history_session(driver, pages=3)
    _feed_all(session, notes)
    records = session.records(AT)
    assert records == [
        HistoryRecord(AT - (719 - i) * HISTORY_INTERVAL, s.voltage, float(s.soc),
                      float(s.temperature), None, s.kind)
        for i, s in enumerate(stored)
    ]


def test_fewer_pages_give_the_newest_records_only() -> None:
    stored = _day(600)
    session = LeagendPages(BM6_KEY, 1)
    _feed_all(session, leagend_history_notifications(stored, 1))
    records = session.records(AT)
    assert len(records) == 256
    assert records[-1].voltage == stored[-1].voltage
    assert records[0].voltage == stored[600 - 256].voltage


def test_an_empty_history_is_an_empty_list() -> None:
    session = LeagendPages(BM6_KEY, 1)
    _feed_all(session, leagend_history_notifications([], 1))
    assert session.records(AT) == []
    # the zero-length trailer BMGateway saw for a zero selector is empty too
    assert parse_leagend_blocks([HEADER, bytes.fromhex("fffefe") + bytes(13)], AT) == []


def test_live_replies_and_echoes_around_the_page_are_skipped() -> None:
    key = BM6_KEY
    aes = ZeroIvCbc(key)
    live = aes.encrypt(bytes.fromhex("d15507000d0062053a"))
    notes = leagend_history_notifications(_day(10), 1, key)
    session = LeagendPages(key, 1)
    _feed_all(session, [live, notes[0], live, *notes[1:]])
    assert [r.voltage for r in session.records(AT)] == [s.voltage for s in _day(10)]


def test_a_page_without_its_trailer_is_a_decode_error() -> None:
    plain = leagend_page_plaintext(_day(40), 1)
    session = LeagendPages(BM6_KEY, 1)
    for block in _blocks(plain)[:-2]:
        session.feed(ZeroIvCbc(BM6_KEY).encrypt(block))
    assert not session.done
    with pytest.raises(DecodeError, match="no ff fe fe trailer"):
        session.records(AT)


def test_a_page_that_lost_a_block_is_a_decode_error() -> None:
    blocks = _blocks(leagend_page_plaintext(_day(40), 1))
    del blocks[3]
    with pytest.raises(DecodeError, match="trailer says 160 data bytes, 144 arrived"):
        parse_leagend_blocks(blocks, AT)


def test_a_corrupt_record_is_a_decode_error() -> None:
    blocks = _blocks(leagend_page_plaintext(_day(8), 1))
    blocks[1] = bytes.fromhex("52bf3170") + blocks[1][4:]  # SoC 0xf3 = 243 %
    with pytest.raises(DecodeError, match="state of charge of 243"):
        parse_leagend_blocks(blocks, AT)


def test_a_page_under_the_wrong_key_is_a_decode_error() -> None:
    session = LeagendPages(BM7_KEY, 1)
    for note in leagend_history_notifications(_day(8), 1, BM6_KEY):
        session.feed(note)
    assert not session.done
    with pytest.raises(DecodeError, match="no d1 55 05 header"):
        session.records(AT)


def test_a_notification_of_partial_blocks_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="not whole 16-byte blocks"):
        LeagendPages(BM6_KEY, 1).feed(bytes(20))


@pytest.mark.parametrize(
    ("span", "pages"),
    [(timedelta(0), 1), (timedelta(minutes=20), 1), (timedelta(hours=8), 1),
     (timedelta(hours=9), 2), (timedelta(hours=24), 3), (timedelta(days=5), MAX_PAGES)],
)
def test_pages_for_a_span_reach_back_far_enough(span: timedelta, pages: int) -> None:
    assert pages_for(span) == pages


# ------------------------------------------------------------------ BM2


def test_bm2_session_asks_for_the_count_then_the_announced_items() -> None:
    stored = [StoredRecord(voltage=12.5 + i / 100, min_crank_voltage=10.0 + i / 100, kind=i % 4)
              for i in range(30)]
    count_reply, notes = bm2_history_notifications(stored)
    driver = BM2()
    session = history_session(driver)
    assert driver.decrypt(session.request())[:2] == b"\xe7\x01"
    download = session.feed(count_reply)
    assert download is not None and session.pause
    assert driver.decrypt(download)[:7] == bytes.fromhex("e30000" "0000001e")
    _feed_all(session, notes)
    assert session.records(AT) == [
        HistoryRecord(AT - (29 - i) * HISTORY_INTERVAL, s.voltage, None, None,
                      s.min_crank_voltage, s.kind)
        for i, s in enumerate(stored)
    ]


def test_bm2_empty_history_ends_at_the_count() -> None:
    count_reply, _notes = bm2_history_notifications([])
    session = BM2History(BM2())
    assert session.feed(count_reply) is None
    assert session.done and session.records(AT) == []


def test_bm2_download_cut_short_is_a_decode_error() -> None:
    count_reply, notes = bm2_history_notifications([StoredRecord(12.0)] * 8)
    session = BM2History(BM2())
    session.feed(count_reply)
    for note in notes[:-1]:
        session.feed(note)
    assert not session.done
    with pytest.raises(DecodeError, match="no ff fe fe end marker"):
        session.records(AT)


def test_history_record_as_reading_keeps_the_measured_fields() -> None:
    record = HistoryRecord(AT, 12.7, 80.0, 21.0, None, 2)
    assert record.reading() == Reading(voltage=12.7, soc=80.0, temperature=21.0)


def test_families_without_memory_have_no_session() -> None:
    with pytest.raises(ValueError, match="keep no history"):
        history_session(Victron(key=bytes(16)))


def test_a_trailer_after_the_last_record_of_a_block_may_spill_into_the_next() -> None:
    # 3 records end at byte 12 of a block; the trailer's length is in the next block
    raw = bytes.fromhex("53b620f053a620e052b53170")
    plain = HEADER + raw + bytes.fromhex("fffefe00") + bytes.fromhex("0015") + bytes(14)
    session = LeagendPages(BM7_KEY, 1, family="bm7")
    aes = ZeroIvCbc(BM7_KEY)
    blocks = [aes.encrypt(b) for b in _blocks(plain)]  # each block its own message
    session.feed(blocks[0] + blocks[1])
    assert not session.done  # the length has not arrived yet
    session.feed(blocks[2])
    assert session.done
    assert [r.voltage for r in session.records(AT)] == [13.23, 13.38, 13.39]


def test_a_trailer_inside_a_block_ends_the_page_there() -> None:
    raw = bytes.fromhex("53b620f052b53170")
    plain = HEADER + raw + bytes.fromhex("fffefe000011") + bytes(2)
    assert [r.voltage for r in parse_leagend_blocks(_blocks(plain), AT)] == [13.23, 13.39]
