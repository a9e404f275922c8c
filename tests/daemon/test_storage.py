"""seq counters: one more per reading, kept across restarts, cheap on the disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from battery_hawk.storage import Announced, Announcements, SeqStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_seq_grows_by_one_per_device(tmp_path: Path) -> None:
    store = SeqStore(tmp_path)
    assert [store.next("a"), store.next("a"), store.next("b"), store.next("a")] == [1, 2, 1, 3]


def test_seq_carries_on_without_a_gap_after_a_clean_stop(tmp_path: Path) -> None:
    store = SeqStore(tmp_path)
    for _ in range(5):
        store.next("car")
    store.close()
    assert SeqStore(tmp_path).next("car") == 6


def test_no_seq_is_reused_after_a_crash(tmp_path: Path) -> None:
    store = SeqStore(tmp_path, block=10, flush_interval=1e9)
    handed_out = [store.next("car") for _ in range(13)]  # never flushed nor closed: a crash
    again = SeqStore(tmp_path, block=10)
    after = [again.next("car") for _ in range(3)]
    assert not set(after) & set(handed_out)
    assert after == [21, 22, 23]  # the rest of the reserved block 11..20 is skipped


def test_the_disk_sees_one_write_per_block_not_one_per_reading(tmp_path: Path) -> None:
    clock = FakeClock()
    store = SeqStore(tmp_path, block=50, flush_interval=5.0, clock=clock)
    path = tmp_path / "seq.json"
    store.next("car")
    first = path.stat().st_mtime_ns, path.read_text()
    for _ in range(48):
        store.next("car")  # clock stands still: inside the reserved block, no write
    assert (path.stat().st_mtime_ns, path.read_text()) == first
    clock.now = 5.0
    store.next("car")  # the interval passed: the last seq is written too
    assert SeqStore(tmp_path).last("car") == 50


def test_the_older_file_format_is_read(tmp_path: Path) -> None:
    (tmp_path / "seq.json").write_text('{"car": 41}')
    assert SeqStore(tmp_path).next("car") == 42


def test_a_damaged_file_alone_skips_one_block_instead_of_crashing(tmp_path: Path) -> None:
    (tmp_path / "seq.json").write_text("{not json")  # one write ever, and it is damaged
    assert SeqStore(tmp_path, block=10).next("car") == 11  # at most 1..10 were handed out


@pytest.mark.parametrize("damage", ["garbled", "truncated", "missing"])
def test_no_seq_is_reused_after_a_crash_that_damaged_the_file(tmp_path: Path,
                                                              damage: str) -> None:
    clock = FakeClock()
    store = SeqStore(tmp_path, block=10, flush_interval=5.0, clock=clock)
    handed_out: dict[str, list[int]] = {"car": [], "van": [], "boat": []}
    for round_ in range(37):  # several renewals and periodic writes, boat joins late
        clock.now += 1.0
        for device, seqs in handed_out.items():
            if device != "boat" or round_ >= 25:
                seqs.append(store.next(device))
    path = tmp_path / "seq.json"  # a crash, and the newest file is damaged
    if damage == "garbled":
        path.write_bytes(b"\x00\xff" * 20)
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:9])
    else:
        path.unlink()  # the crash came between keeping the old file and the new rename
    again = SeqStore(tmp_path, block=10)
    for device, seqs in handed_out.items():
        assert again.next(device) > max(seqs), device


def test_announcements_merge_fields_and_remember_active_alerts(tmp_path: Path) -> None:
    known = Announcements(tmp_path)
    assert known.update("car", ["voltage", "soc"], ["low_voltage"]) is True
    assert known.update("car", ["voltage"], ["low_voltage"]) is False  # nothing new
    assert known.update("car", ["temperature"], ["low_voltage"]) is True
    known.set_active("car", ["low_voltage"])
    known.flush()  # a clean stop
    again = Announcements(tmp_path)
    assert again.get("car") == Announced(("voltage", "soc", "temperature"), ("low_voltage",),
                                         ("low_voltage",))
    again.forget("car")
    again.flush()
    assert "car" not in Announcements(tmp_path)


def test_announcement_changes_within_the_interval_are_written_together(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    known = Announcements(tmp_path, flush_interval=5.0, clock=clock)
    known.update("dev0", ["voltage"], [])  # the first change after a quiet spell: at once
    assert set(Announcements(tmp_path).items()) == {("dev0", Announced(("voltage",)))}
    for i in range(1, 200):  # startup of 200 devices: not 200 ever-growing files
        known.update(f"dev{i}", ["voltage"], [])
    assert len(Announcements(tmp_path).items()) == 1
    clock.now += 4.9
    known.flush_if_due()
    assert len(Announcements(tmp_path).items()) == 1
    clock.now += 0.1
    known.flush_if_due()
    assert len(Announcements(tmp_path).items()) == 200
    known.set_active("dev7", ["low_voltage"])
    assert Announcements(tmp_path).get("dev7").active == ()  # within the interval: waits
    known.flush()  # a clean stop writes what waits
    assert Announcements(tmp_path).get("dev7").active == ("low_voltage",)


def test_a_changed_fingerprint_announces_again(tmp_path: Path) -> None:
    known = Announcements(tmp_path)
    assert known.update("car", ["voltage"], [], "Car|BM6|180") is True
    assert known.update("car", ["voltage"], [], "Car|BM6|180") is False
    assert known.update("car", ["voltage"], [], "Car|BM6|900") is True  # new poll interval


def test_an_unwritable_disk_is_logged_once(tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    clock = FakeClock()
    store = SeqStore(blocker / "sub", flush_interval=1.0, clock=clock)  # parent is a file
    for _ in range(5):
        clock.now += 1
        store.next("car")
    assert caplog.text.count("cannot write") == 1


def test_devices_renew_their_seq_blocks_together(tmp_path: Path) -> None:
    store = SeqStore(tmp_path, flush_interval=float("inf"), block=10)
    path = tmp_path / "seq.json"
    writes, before = 0, b""
    for round_ in range(120):  # 20 devices, joining one a round, read in turn
        for device in range(min(round_ + 1, 20)):
            store.next(f"dev{device}")
            now = path.read_bytes()
            writes += now != before
            before = now
    # one device's renewal renews every device past half its block: about one write per
    # 5 rounds, not one per device and block (20 devices x 11 blocks = 220)
    assert writes <= 40, writes
    assert [store.last(f"dev{d}") for d in range(20)] == [120 - d for d in range(20)]
