"""RadioSet: several radios as one Transport (ble/radios.py), over small fake radios.

The fake radios are Transports whose adverts the test hands in and whose connects
succeed or fail as told; the set's choosing, merging and bookkeeping are real.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator

import pytest

from battery_hawk.ble.link import NotifyCallback, Transport
from battery_hawk.ble.radios import ADD_GRACE, FLAP_WINDOW, RadioSet, pump_backoff
from battery_hawk.errors import (
    AdapterNotReadyError,
    BluetoothUnavailableError,
    DeviceNotFoundError,
    OutOfSlotsError,
    RadioStartingError,
    TransportError,
)
from battery_hawk.models import Advertisement
from tests.support.brokers import wait_until

A = "AA:00:00:00:00:0A"
B = "AA:00:00:00:00:0B"


class FakeLink:
    def __init__(self, radio: str) -> None:
        self.radio = radio

    @property
    def is_connected(self) -> bool:
        return True

    async def write(self, char_uuid: str, data: bytes, *, response: bool = True) -> None:
        return None

    async def read(self, char_uuid: str) -> bytes:
        return self.radio.encode()

    async def start_notify(self, char_uuid: str, callback: NotifyCallback) -> None:
        return None

    async def stop_notify(self, char_uuid: str) -> None:
        return None

    async def wait_disconnected(self) -> None:
        await asyncio.Event().wait()


class FakeRadio:
    """A Transport: adverts come from `hear`, connects fail while `fail` is set."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.fail: TransportError | None = None
        self.connects: list[str] = []
        self.open = 0
        self.streams = 0  # advertisements() calls so far
        self._listeners: set[asyncio.Queue[Advertisement | TransportError]] = set()

    def hear(self, address: str, rssi: int, data: bytes = b"") -> None:
        adv = Advertisement(address, rssi=rssi, manufacturer_data={0x02E1: data} if data else {})
        for queue in self._listeners:
            queue.put_nowait(adv)

    def break_listening(self, exc: TransportError) -> None:
        for queue in self._listeners:
            queue.put_nowait(exc)

    @property
    def listening(self) -> int:
        return len(self._listeners)

    @contextlib.asynccontextmanager
    async def connect(self, address: str, *, timeout: float | None = None
                      ) -> AsyncIterator[FakeLink]:
        self.connects.append(address)
        if self.fail is not None:
            raise self.fail
        self.open += 1
        try:
            yield FakeLink(self.name)
        finally:
            self.open -= 1

    async def advertisements(self) -> AsyncIterator[Advertisement]:
        queue: asyncio.Queue[Advertisement | TransportError] = asyncio.Queue()
        self._listeners.add(queue)
        self.streams += 1
        try:
            while True:
                item = await queue.get()
                if isinstance(item, TransportError):
                    raise item
                yield item
        finally:
            self._listeners.discard(queue)

    async def scan(self, timeout: float) -> list[Advertisement]:
        return []


class Clock:
    """Monotonic time that a test can move on (past the grace a new radio gets)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def radio_set(*radios: FakeRadio, clock: Clock | None = None) -> RadioSet:
    clock = clock or Clock()
    radio_set = RadioSet(rng=random.Random(1), clock=clock)
    for radio in radios:
        radio_set.add_radio(radio.name, radio)
    clock.advance(ADD_GRACE)  # the radios have been there a while
    return radio_set


async def collect(stream: AsyncIterator[Advertisement], into: list[Advertisement]) -> None:
    async for adv in stream:
        into.append(adv)


@contextlib.asynccontextmanager
async def listening(radios: RadioSet, *fakes: FakeRadio
                    ) -> AsyncIterator[list[Advertisement]]:
    got: list[Advertisement] = []
    stream = radios.advertisements()
    task = asyncio.create_task(collect(stream, got))
    try:
        await wait_until(lambda: all(f.listening for f in fakes))
        yield got
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await stream.aclose()  # type: ignore[attr-defined]


async def test_adverts_of_every_radio_arrive_stamped_with_the_radio() -> None:
    hci0, hci1 = FakeRadio("hci0"), FakeRadio("hci1")
    radios = radio_set(hci0, hci1)
    async with listening(radios, hci0, hci1) as got:
        hci0.hear(A, -50)
        hci1.hear(B, -70, b"\x01")
        await wait_until(lambda: len(got) == 2)
    assert {(a.address, a.radio, a.rssi) for a in got} == {(A, "hci0", -50), (B, "hci1", -70)}
    assert radios.hearing(A) == {"hci0": -50}


async def test_one_advert_heard_on_two_radios_is_handed_on_once() -> None:
    hci0, hci1 = FakeRadio("hci0"), FakeRadio("hci1")
    radios = radio_set(hci0, hci1)
    async with listening(radios, hci0, hci1) as got:
        hci0.hear(A, -50, b"\x10")
        hci1.hear(A, -80, b"\x10")  # the same advert, weaker, on the other radio
        hci0.hear(A, -51, b"\x11")  # the next one (new data) is handed on
        await wait_until(lambda: len(got) == 2 and radios.hearing(A) == {"hci0": -51, "hci1": -80})
        assert [(a.radio, a.manufacturer_data[0x02E1]) for a in got] == [
            ("hci0", b"\x10"), ("hci0", b"\x11")]


async def test_a_device_is_connected_through_the_radio_that_hears_it_best() -> None:
    hci0, hci1 = FakeRadio("hci0"), FakeRadio("hci1")
    radios = radio_set(hci0, hci1)
    async with listening(radios, hci0, hci1):
        hci0.hear(A, -50)
        hci1.hear(A, -80, b"\x01")
        hci0.hear(B, -90)
        hci1.hear(B, -60, b"\x02")
        await wait_until(lambda: len(radios.hearing(A)) == 2 and len(radios.hearing(B)) == 2)
    async with radios.connect(A) as link:
        assert await link.read("x") == b"hci0"
    async with radios.connect(B) as link:
        assert await link.read("x") == b"hci1"
    assert (radios.last_radio(A), radios.last_radio(B)) == ("hci0", "hci1")
    assert (hci0.connects, hci1.connects) == ([A], [B])


async def test_when_the_best_radio_fails_the_next_one_reads_and_is_preferred_after() -> None:
    hci0, hci1 = FakeRadio("hci0"), FakeRadio("hci1")
    radios = radio_set(hci0, hci1)
    async with listening(radios, hci0, hci1):
        hci0.hear(A, -60)
        hci1.hear(A, -70, b"\x01")
        await wait_until(lambda: len(radios.hearing(A)) == 2)
    hci0.fail = DeviceNotFoundError("not found")
    async with radios.connect(A) as link:
        assert await link.read("x") == b"hci1"
    assert radios.choose(A) == ["hci1", "hci0"]  # a failure and a success since
    hci0.fail = None
    async with radios.connect(A):
        pass
    assert hci0.connects == [A] and hci1.connects == [A, A]


async def test_a_radio_that_never_heard_the_device_is_not_tried_when_another_did() -> None:
    proxy, hci0 = FakeRadio("proxy"), FakeRadio("hci0")
    radios = radio_set(proxy, hci0)
    async with listening(radios, proxy, hci0):
        proxy.hear(A, -60)  # only the proxy hears A
        hci0.hear(B, -60)
        await wait_until(lambda: radios.hearing(A) and radios.hearing(B))
    proxy.fail = AdapterNotReadyError("proxy: not connected")
    with pytest.raises(AdapterNotReadyError):
        async with radios.connect(A):
            pass
    assert hci0.connects == []  # it would only have searched for A, holding its slot
    unheard = "AA:00:00:00:00:0C"  # heard by no radio (yet): every radio may try
    async with radios.connect(unheard) as link:
        assert await link.read("x") == b"hci0"
    assert hci0.connects == [unheard]


async def test_a_device_only_an_absent_proxy_ever_heard_is_not_searched_for_locally() -> None:
    proxy, hci0 = FakeRadio("proxy"), FakeRadio("hci0")
    clock = Clock()
    radios = RadioSet(rng=random.Random(1), clock=clock)
    radios.add_radio("proxy", proxy)
    radios.add_radio("hci0", hci0)
    clock.advance(ADD_GRACE)
    async with listening(radios, proxy, hci0):
        proxy.hear(A, -60)
        await wait_until(lambda: radios.hearing(A))
    clock.advance(radios.rules.heard_within + 1)  # the proxy went away long ago
    proxy.fail = AdapterNotReadyError("proxy: not connected")
    with pytest.raises(AdapterNotReadyError):
        async with radios.connect(A):
            pass
    assert hci0.connects == []
    # a device no radio has heard yet (at start): every radio may try, not only two
    hci2 = FakeRadio("hci2")
    radios.add_radio("hci2", hci2)
    proxy.fail = hci0.fail = DeviceNotFoundError("not heard")
    async with radios.connect(B) as link:
        assert await link.read("x") == b"hci2"


async def test_a_radio_that_is_full_is_not_held_against_the_device() -> None:
    proxy, hci0 = FakeRadio("proxy"), FakeRadio("hci0")
    radios = radio_set(proxy, hci0)
    async with listening(radios, proxy, hci0):
        proxy.hear(A, -50)
        hci0.hear(A, -70, b"\x01")
        await wait_until(lambda: len(radios.hearing(A)) == 2)
    proxy.fail = OutOfSlotsError("proxy: every connection slot is taken")
    async with radios.connect(A) as link:
        assert await link.read("x") == b"hci0"
    proxy.fail = None
    assert radios.choose(A)[0] == "proxy"  # full a moment ago: still the best radio
    async with radios.connect(A) as link:
        assert await link.read("x") == b"proxy"


async def test_a_flood_of_random_addresses_keeps_the_tables_bounded() -> None:
    hci0 = FakeRadio("hci0")
    radios = radio_set(hci0)
    rng = random.Random(3)
    first = "02:00:00:00:00:01"
    async with listening(radios, hci0):
        hci0.hear(first, -80)
        for batch in range(20):  # 20,000 phones and trackers with rotating addresses
            for i in range(1000):
                last = ":".join(f"{rng.randrange(256):02X}" for _ in range(6))
                hci0.hear(last, -80, (batch * 1000 + i).to_bytes(3, "big"))
            hci0.hear(A, -50)  # the monitor keeps advertising among them
            await wait_until(lambda a=last: radios.hearing(a) != {} and
                             radios.hearing(A) != {})
    assert radios.hearing(A) == {"hci0": -50}  # heard lately: kept
    assert radios.hearing(first) == {}  # heard 20,000 addresses ago: shed


async def test_a_radio_that_keeps_dropping_is_said_once_as_such(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "battery_hawk.ble.radios")
    hci0, hci1 = FakeRadio("hci0"), FakeRadio("hci1")
    clock = Clock()
    radios = radio_set(hci0, hci1, clock=clock)
    for _ in range(100):  # a loose USB dongle: unplugged and back ten times a second
        radios.remove_radio("hci1", "BlueZ removed it")
        radios.add_radio("hci1", hci1)
        clock.advance(0.1)
    said = [r.getMessage() for r in caplog.records]
    assert said[:4] == [
        "hci1 dropped (BlueZ removed it); its devices move to hci0",
        "hci1 is back: devices it hears best are read through it again",
        "hci1 dropped (BlueZ removed it); its devices move to hci0",
        "hci1 is back: devices it hears best are read through it again",
    ]
    assert said[4].startswith("hci1 keeps dropping and coming back (3 times in 0 s")
    assert len(said) == 5  # not 200 lines
    clock.advance(FLAP_WINDOW)  # it held for a minute: its next drop is said again
    radios.remove_radio("hci1", "BlueZ removed it")
    assert caplog.records[-1].getMessage() == (
        "hci1 dropped (BlueZ removed it); its devices move to hci0")


async def test_the_last_radios_error_is_raised_when_every_try_fails() -> None:
    hci0, hci1 = FakeRadio("hci0"), FakeRadio("hci1")
    hci0.fail = DeviceNotFoundError("hci0 does not see it")
    hci1.fail = DeviceNotFoundError("hci1 does not see it")
    radios = radio_set(hci0, hci1)
    with pytest.raises(DeviceNotFoundError, match="hci1 does not see it"):
        async with radios.connect(A):
            pass


async def test_a_set_without_radios_says_so() -> None:
    with pytest.raises(BluetoothUnavailableError, match="no Bluetooth radio"):
        async with RadioSet().connect(A):
            pass


async def test_a_held_link_takes_a_slot_of_its_radio() -> None:
    hci0, hci1 = FakeRadio("hci0"), FakeRadio("hci1")
    radios = radio_set(hci0, hci1)
    async with radios.connect(A):
        assert {v.radio: v.free_slots for v in radios.views(B)} == {"hci0": 0, "hci1": 1}
        assert radios.choose(B) == ["hci1", "hci0"]
    assert {v.radio: v.free_slots for v in radios.views(B)} == {"hci0": 1, "hci1": 1}


async def test_a_radio_reports_its_own_free_slots() -> None:
    proxy = FakeRadio("proxy")
    radios = RadioSet()
    radios.add_radio("proxy", proxy, slots=3, free_slots=lambda: 2)
    assert [v.free_slots for v in radios.views(A)] == [2]


async def test_a_removed_radios_devices_move_and_it_is_taken_back_when_it_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "battery_hawk.ble.radios")
    hci0, hci1, clock = FakeRadio("hci0"), FakeRadio("hci1"), Clock()
    radios = radio_set(hci0, hci1, clock=clock)
    async with listening(radios, hci0, hci1):
        hci0.hear(B, -85)
        hci1.hear(B, -55, b"\x01")
        await wait_until(lambda: len(radios.hearing(B)) == 2)
        assert radios.choose(B)[0] == "hci1"

        assert radios.remove_radio("hci1", "BlueZ removed it")
        assert not radios.remove_radio("hci1")
        await wait_until(lambda: hci1.listening == 0)
        async with radios.connect(B) as link:
            assert await link.read("x") == b"hci0"

        radios.add_radio("hci1", hci1)  # back: its stream joins the running merge
        clock.advance(ADD_GRACE)
        await wait_until(lambda: hci1.listening == 1)
        hci1.hear(B, -55, b"\x02")
        await wait_until(lambda: "hci1" in radios.hearing(B))
        async with radios.connect(B) as link:
            assert await link.read("x") == b"hci1"
    said = [r.getMessage() for r in caplog.records]
    assert said == ["hci1 dropped (BlueZ removed it); its devices move to hci0",
                    "hci1 is back: devices it hears best are read through it again"]


async def test_a_radio_just_added_is_given_a_moment_before_it_counts_as_failing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "battery_hawk.ble.radios")
    hci0, hci1, clock = FakeRadio("hci0"), FakeRadio("hci1"), Clock()
    radios = radio_set(hci0, clock=clock)
    async with listening(radios, hci0):
        radios.add_radio("hci1", hci1)
        await wait_until(lambda: hci1.listening == 1)
        hci1.break_listening(BluetoothUnavailableError("adapter 'hci1' not found"))
        await wait_until(lambda: hci1.streams == 2 and hci1.listening == 1)  # at once
        assert radios.failing("hci1") is None
        hci1.hear(A, -50)
        await wait_until(lambda: radios.hearing(A) == {"hci1": -50})
    assert [r.getMessage() for r in caplog.records] == []


async def test_a_radio_that_cannot_listen_is_dropped_once_and_taken_back_when_it_hears(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "battery_hawk.ble.radios")
    hci0, hci1 = FakeRadio("hci0"), FakeRadio("hci1")
    radios = radio_set(hci0, hci1)
    async with listening(radios, hci0, hci1) as got:
        hci1.break_listening(AdapterNotReadyError("hci1 is powered off"))
        await wait_until(lambda: radios.failing("hci1") is not None)
        hci0.hear(A, -60)
        await wait_until(lambda: len(got) == 1)
        assert radios.choose(A) == ["hci0", "hci1"]
        await wait_until(lambda: hci1.listening == 1)  # opened again after a backoff
        hci1.hear(A, -40, b"\x01")
        await wait_until(lambda: radios.failing("hci1") is None)
        assert radios.choose(A) == ["hci1", "hci0"]
    said = [r.getMessage() for r in caplog.records]
    assert said == ["hci1 dropped: hci1 is powered off; its devices move to hci0",
                    "hci1 is back: devices it hears best are read through it again"]


async def test_a_radio_whose_adapter_fails_on_connect_goes_last_until_it_works() -> None:
    hci0, hci1 = FakeRadio("hci0"), FakeRadio("hci1")
    radios = radio_set(hci0, hci1)
    hci0.fail = BluetoothUnavailableError("no adapter hci0")
    async with radios.connect(A) as link:
        assert await link.read("x") == b"hci1"
    assert radios.failing("hci0") == "no adapter hci0"
    assert radios.choose(B) == ["hci1", "hci0"]


async def test_when_every_radio_fails_to_listen_the_stream_raises_why() -> None:
    hci0 = FakeRadio("hci0")
    radios = radio_set(hci0)
    stream = radios.advertisements()
    first = asyncio.ensure_future(anext(stream))
    await wait_until(lambda: hci0.listening == 1)
    hci0.break_listening(AdapterNotReadyError("rfkill blocks it"))
    with pytest.raises(AdapterNotReadyError, match="rfkill"):
        await first
    await stream.aclose()  # type: ignore[attr-defined]
    assert hci0.listening == 0


async def test_a_radio_of_a_taken_name_is_refused() -> None:
    radios = radio_set(FakeRadio("hci0"))
    with pytest.raises(ValueError):
        radios.add_radio("hci0", FakeRadio("hci0"))


def test_the_set_is_a_transport() -> None:
    transport: Transport = RadioSet()
    assert transport is not None


def test_pump_backoff_doubles_to_a_minute_with_jitter() -> None:
    rng = random.Random(3)
    delays = [pump_backoff(n, rng) for n in (1, 2, 3, 8, 20)]
    assert 0.8 <= delays[0] <= 1.2 and 1.6 <= delays[1] <= 2.4 and 3.2 <= delays[2] <= 4.8
    assert 48 <= delays[3] <= 72 and 48 <= delays[4] <= 72
    with pytest.raises(ValueError):
        pump_backoff(0, rng)


async def test_the_last_radio_dropped_says_its_devices_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "battery_hawk.ble.radios")
    radios = radio_set(FakeRadio("hci0"))
    radios.remove_radio("hci0", "BlueZ removed it")
    assert [r.getMessage() for r in caplog.records] == [
        "hci0 dropped (BlueZ removed it); no other radio works: its devices wait for one"]
    with pytest.raises(BluetoothUnavailableError, match="no Bluetooth radio"):
        async with radios.connect(A):
            pass


async def test_a_radio_still_coming_up_is_passed_over_without_a_drop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "battery_hawk.ble.radios")
    proxy, hci0 = FakeRadio("esphome:p"), FakeRadio("hci0")
    radios = radio_set(proxy, hci0)
    proxy.fail = RadioStartingError("proxy p: still connecting")
    async with radios.connect(A) as link:
        assert await link.read("x") == b"hci0"
    assert radios.failing("esphome:p") is None
    hci0.fail = DeviceNotFoundError("not here")
    # the radio coming up may yet reach it: that is what the caller hears
    with pytest.raises(RadioStartingError):
        async with radios.connect(B):
            pass
    proxy.fail = None  # up: used at once, and it never was "back"
    async with radios.connect(B) as link:
        assert await link.read("x") == b"esphome:p"
    assert caplog.records == []
