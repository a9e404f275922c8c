"""Log lines: context fields per task, journald priority prefixes, secrets masked."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from battery_hawk.logs import bind, log_context, setup_logging, under_journald


@pytest.fixture(autouse=True)
def _restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_json_lines_carry_the_context_of_their_own_task() -> None:
    out = io.StringIO()
    setup_logging("DEBUG", "json", stream=out)
    log = logging.getLogger("battery_hawk.test")
    bind(gateway_id="garage", adapter="hci0")

    async def device(did: str, address: str) -> None:
        bind(device_id=did, address=address)
        await asyncio.sleep(0)  # interleave with the other device
        log.warning("reading from %s", did)

    await asyncio.gather(device("car", "AA:BB:CC:DD:EE:01"), device("van", "AA:BB:CC:DD:EE:02"))
    with log_context(device_id="boat"):
        log.info("inside")
    log.info("gateway only")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    by_message = {line["message"]: line for line in lines}
    car = by_message["reading from car"]
    assert (car["device_id"], car["address"], car["gateway_id"], car["adapter"]) == (
        "car", "AA:BB:CC:DD:EE:01", "garage", "hci0")
    assert by_message["reading from van"]["device_id"] == "van"
    assert by_message["inside"]["device_id"] == "boat"
    assert "device_id" not in by_message["gateway only"]
    assert car["level"] == "WARNING" and car["logger"] == "battery_hawk.test"


def test_under_journald_text_lines_start_with_their_syslog_priority(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "journal"
    with path.open("w") as stream:
        info = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino}")
        assert under_journald(stream)
        setup_logging("DEBUG", "text", stream=stream)
        log = logging.getLogger("battery_hawk.test")
        log.debug("detail")
        log.info("started")
        log.warning("device offline")
        log.error("broken")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("failed")
    lines = path.read_text().splitlines()
    assert lines[0].startswith("<7>DEBUG") and lines[1].startswith("<6>INFO")
    assert lines[2] == "<4>WARNING battery_hawk.test: device offline"  # no time: journald's
    assert lines[3].startswith("<3>ERROR")
    assert all(line.startswith("<3>") for line in lines[4:])  # the traceback too
    assert any("RuntimeError: boom" in line for line in lines[4:])


def test_a_stream_that_is_not_the_journal_gets_no_prefix(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")
    out = io.StringIO()
    assert not under_journald(out)
    setup_logging("INFO", "text", stream=out)
    logging.getLogger("battery_hawk.test").warning("plain")
    assert not out.getvalue().startswith("<") and "plain" in out.getvalue()


def test_secrets_are_masked_whoever_logs_them() -> None:
    out = io.StringIO()
    key = "0df4d0395b7d1a876c0c33ecb9e70dcd"
    setup_logging("DEBUG", "json", stream=out, secrets=["hunter2-pass", key, key.upper()])
    log = logging.getLogger("some.library")
    log.debug("CONNECT user=bh password=%s", "hunter2-pass")
    log.info("key %s / %s", key, key.upper())
    text = out.getvalue()
    assert "hunter2" not in text and key not in text and key.upper() not in text
    assert text.count("***") == 3
