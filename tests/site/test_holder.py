"""Who holds the device: the signs that the phone app or another gateway has a Leagend."""

from __future__ import annotations

import logging

import pytest

from battery_hawk.site.holder import HolderBoard, HolderWatch, Sign, holder_attributes


def test_connecting_fails_while_it_advertises_means_someone_else_may_hold_it() -> None:
    watch = HolderWatch(recent=60, silence=120)
    watch.advert(100.0)
    watch.connect_failed(130.0)
    assert watch.check(130.0) is not None
    assert watch.check(130.0).sign is Sign.REFUSES_CONNECTIONS  # type: ignore[union-attr]
    watch.read_ok(200.0)
    assert watch.check(200.0) is None


def test_a_failed_connect_long_after_the_last_advert_is_no_sign_by_itself() -> None:
    watch = HolderWatch(recent=60, silence=120)
    watch.advert(100.0)
    watch.connect_failed(200.0)
    assert watch.check(200.0) is None


def test_falling_silent_without_being_read_means_someone_else_may_hold_it() -> None:
    watch = HolderWatch(recent=60, silence=120)
    watch.read_ok(90.0)
    watch.advert(100.0)
    watch.connect_failed(170.0)
    assert watch.check(219.0) is None  # quiet, but not for long enough
    suspect = watch.check(220.0)
    assert suspect is not None and suspect.sign is Sign.STOPPED_ADVERTISING


@pytest.mark.parametrize("case", ["read meanwhile", "never tried", "deaf scanner"])
def test_silence_is_no_sign_when_we_read_it_never_tried_or_hear_nothing_at_all(
        case: str) -> None:
    watch = HolderWatch(recent=60, silence=120)
    watch.advert(100.0)
    if case == "read meanwhile":
        watch.connect_failed(150.0)
        watch.read_ok(160.0)
    elif case == "deaf scanner":
        watch.connect_failed(170.0)
    assert watch.check(400.0, scanner_hears=case != "deaf scanner") is None


def test_a_never_advertising_device_raises_no_suspicion() -> None:
    watch = HolderWatch()
    watch.connect_failed(10.0)
    assert watch.check(1000.0) is None


def test_the_board_says_each_raise_and_clear_once_and_only_of_leagend_monitors(
        caplog: pytest.LogCaptureFixture) -> None:
    board = HolderBoard(recent=60, silence=120)
    board.add("car", "Car", "bm6")
    board.add("house", "House", "victron")
    for did in ("car", "house"):
        board.advert(did, 100.0)
        board.connect_failed(did, 110.0)
    with caplog.at_level(logging.INFO, logger="battery_hawk.site.holder"):
        first = board.changes(110.0)
        again = board.changes(115.0)
        board.read_ok("car", 120.0)
        cleared = board.changes(121.0)
    assert [(did, s is not None) for did, s in first] == [("car", True)]
    assert again == []
    assert cleared == [("car", None)]
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]
    assert "phone app" in caplog.records[0].getMessage()


def test_the_board_watches_only_the_devices_this_gateway_reads() -> None:
    board = HolderBoard(recent=60, silence=120)
    board.add("car", "Car", "bm2")
    board.advert("car", 100.0)
    board.connect_failed("car", 110.0)
    assert board.changes(110.0, watched=lambda _: False) == []
    assert len(board.changes(111.0)) == 1


def test_the_attributes_document_names_the_sign() -> None:
    watch = HolderWatch()
    watch.advert(1.0)
    watch.connect_failed(2.0)
    assert holder_attributes(watch.check(2.0)) == {
        "held_elsewhere": True, "held_sign": "refuses_connections",
        "held_message": watch.check(2.0).message}  # type: ignore[union-attr]
    assert holder_attributes(None) == {"held_elsewhere": False, "held_sign": None,
                                       "held_message": None}

