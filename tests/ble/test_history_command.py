"""``battery-hawk history`` end to end: the CLI, the real bleak backend, the fake BlueZ."""

from __future__ import annotations

import csv
import io
import itertools
import json
from datetime import datetime, timedelta

import pytest

from battery_hawk.cli import main
from battery_hawk.models import Reading
from battery_hawk.simulator.history import StoredRecord
from tests.fakebluez.controller import FakeBlueZ
from tests.fakebluez.history import add_history

ADDR = "AA:BB:CC:DD:EE:31"
CAR = Reading(voltage=12.84, soc=87.0, temperature=21.0)


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def test_jsonl_prints_the_last_hour_oldest_first_2_minutes_apart(
    fake_bluez: FakeBlueZ, capsys: pytest.CaptureFixture[str]
) -> None:
    memory = add_history(fake_bluez, ADDR, "bm6", CAR)
    memory.set_records([StoredRecord(voltage=round(12.0 + i / 100, 2), soc=50 + i % 50,
                                     temperature=20) for i in range(90)])  # 3 h

    code = main(["history", ADDR.lower(), "--type", "bm200", "--since", "1h",
                 "--format", "jsonl", "--timeout", "10"])

    assert code == 0
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(docs) == 30  # 60 minutes back from the newest, at 2 minutes
    assert [d["voltage"] for d in docs] == [round(12.0 + i / 100, 2) for i in range(60, 90)]
    assert {(d["address"], d["type"], d["source"]) for d in docs} == {(ADDR, "bm6", "history")}
    stamps = [_parse(d["timestamp"]) for d in docs]
    assert {b - a for a, b in itertools.pairwise(stamps)} == {timedelta(minutes=2)}


def test_csv_prints_a_bm2_history_with_its_cranking_voltages(
    fake_bluez: FakeBlueZ, capsys: pytest.CaptureFixture[str]
) -> None:
    add_history(fake_bluez, ADDR, "bm2", CAR, minutes=20)

    assert main(["history", ADDR, "--type", "bm2", "--timeout", "10"]) == 0

    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 10
    assert {(r["voltage"], r["soc"], r["min_crank_voltage"]) for r in rows} == {
        ("12.84", "", "11.34")
    }


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--type", "victron", "--key", "00" * 16], "keep no history"),
        (["--type", "bm99"], "unknown device type"),
        (["--type", "bm6", "--since", "six hours"], "not a span"),
        (["--type", "bm6", "--since", "99999999999d"], "--since: '99999999999d' is longer"),
        (["--type", "bm6", "--key", "zz"], "--key: "),
    ],
)
def test_bad_usage_exits_2_naming_the_option(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", ADDR, *argv]) == 2
    assert complaint in capsys.readouterr().err


def test_a_bad_address_is_a_usage_error_before_the_radio_is_touched(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["history", "AA:BB:CC:DD:EE", "--type", "bm6"]) == 2
    assert "is not a MAC address like AA:BB:CC:DD:EE:FF" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "span"),
    [("90m", timedelta(minutes=90)), ("6h", timedelta(hours=6)), ("1d", timedelta(days=1)),
     ("1h30m", timedelta(minutes=90)), ("3600s", timedelta(hours=1))],
)
def test_since_takes_spans_in_s_m_h_d(text: str, span: timedelta) -> None:
    from battery_hawk.history.command import parse_since

    assert parse_since(text) == span
