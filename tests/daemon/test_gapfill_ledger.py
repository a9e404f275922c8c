"""GapLedger: gaps between live readings, what history may fill, never twice."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from battery_hawk.history.gapfill import Gap, GapLedger, history_payload
from battery_hawk.models import DeviceInfo
from battery_hawk.protocols.history import HISTORY_INTERVAL, HistoryRecord

T0 = datetime(2026, 11, 22, 18, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
THRESHOLD = timedelta(minutes=3)
INFO = DeviceInfo("car", "AA:BB:CC:DD:EE:01", "Car", "BM6", "Leagend", "bm6")


def _records(start: datetime, end: datetime) -> list[HistoryRecord]:
    """One record every 2 minutes from start to end inclusive, oldest first."""
    count = int((end - start) / HISTORY_INTERVAL) + 1
    return [HistoryRecord(start + i * HISTORY_INTERVAL, 12.5, 80.0, 20.0) for i in range(count)]


def test_readings_closer_than_the_threshold_make_no_gap(tmp_path: Path) -> None:
    ledger = GapLedger(tmp_path)
    for i in range(5):
        assert ledger.observe_live("car", T0 + i * MIN, THRESHOLD) is None
    assert ledger.pending("car") == ()


def test_a_silence_over_the_threshold_is_a_gap(tmp_path: Path) -> None:
    ledger = GapLedger(tmp_path)
    ledger.observe_live("car", T0, THRESHOLD)
    gap = ledger.observe_live("car", T0 + 20 * MIN, THRESHOLD)
    assert gap == Gap(T0, T0 + 20 * MIN)
    assert ledger.pending("car") == (gap,)


def test_the_last_live_reading_survives_a_restart(tmp_path: Path) -> None:
    first = GapLedger(tmp_path, flush_interval=3600)
    first.observe_live("car", T0, THRESHOLD)
    first.observe_live("car", T0 + MIN, THRESHOLD)
    first.close()

    second = GapLedger(tmp_path)
    assert second.observe_live("car", T0 + 21 * MIN, THRESHOLD) == Gap(T0 + MIN, T0 + 21 * MIN)
    third = GapLedger(tmp_path)  # pending gaps are on disk at once
    assert third.pending("car") == (Gap(T0 + MIN, T0 + 21 * MIN),)


def test_records_inside_the_gap_are_chosen_oldest_first_away_from_live_ones(
    tmp_path: Path,
) -> None:
    ledger = GapLedger(tmp_path)
    ledger.observe_live("car", T0, THRESHOLD)
    ledger.observe_live("car", T0 + 20 * MIN, THRESHOLD)
    # the device's 2-minute grid is offset by 30 s from the live readings
    records = _records(T0 - 10 * MIN + 30 * timedelta(seconds=1), T0 + 30 * MIN)
    chosen = ledger.select("car", reversed(records))
    # 18:00:30 is 30 s from the live reading at 18:00: covered by it, left out
    assert [r.timestamp for r in chosen] == [
        T0 + timedelta(minutes=2, seconds=30) + i * HISTORY_INTERVAL for i in range(9)
    ]


def test_a_record_within_a_minute_of_a_live_reading_is_left_out(tmp_path: Path) -> None:
    ledger = GapLedger(tmp_path)
    ledger.observe_live("car", T0, THRESHOLD)
    ledger.observe_live("car", T0 + 10 * MIN, THRESHOLD)
    chosen = ledger.select("car", _records(T0, T0 + 10 * MIN))
    assert [r.timestamp for r in chosen] == [T0 + m * MIN for m in (2, 4, 6, 8)]


def test_a_settled_period_is_never_published_twice(tmp_path: Path) -> None:
    ledger = GapLedger(tmp_path)
    ledger.observe_live("car", T0, THRESHOLD)
    ledger.observe_live("car", T0 + 10 * MIN, THRESHOLD)
    chosen = ledger.select("car", _records(T0, T0 + 10 * MIN))
    ledger.settle("car", chosen)
    assert ledger.pending("car") == ()
    assert ledger.select("car", _records(T0, T0 + 10 * MIN)) == []
    # a later gap that overlaps the filled period (e.g. a clock step) gets only newer points
    ledger.observe_live("car", T0 + 11 * MIN, THRESHOLD)
    ledger.observe_live("car", T0 + 20 * MIN, THRESHOLD)
    restarted = GapLedger(tmp_path)
    assert len(restarted.pending("car")) == 1  # loaded from disk
    again = restarted.select("car", _records(T0, T0 + 20 * MIN))
    assert [r.timestamp for r in again] == [T0 + m * MIN for m in (12, 14, 16, 18)]


def test_an_unreadable_file_starts_afresh(tmp_path: Path) -> None:
    (tmp_path / "history.json").write_text("{not json")
    ledger = GapLedger(tmp_path)
    assert ledger.pending("car") == ()
    ledger.observe_live("car", T0, THRESHOLD)
    ledger.close()
    assert json.loads((tmp_path / "history.json").read_text())["car"]["last_live"]


def test_history_payload_is_the_reading_document_without_seq() -> None:
    record = HistoryRecord(T0, 12.61, 78.0, 19.0)
    doc = json.loads(history_payload(INFO, record))
    assert doc["timestamp"] == "2026-11-22T18:00:00.000Z"
    assert (doc["voltage"], doc["soc"], doc["temperature"]) == (12.61, 78.0, 19.0)
    assert doc["source"] == "history"
    assert "seq" not in doc
    assert (doc["device_id"], doc["model"]) == ("car", "BM6")
