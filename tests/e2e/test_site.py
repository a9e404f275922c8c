"""Three `battery-hawk run` gateways on one mosquitto, each over its own fake BlueZ that
hears the same three devices with other RSSI: every device is read by exactly one
gateway (the one that hears it best); the owner is killed and another takes over with
no reading lost and Home Assistant's documents kept; a gateway cut off from the broker
comes back without two gateways reading one device."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

from battery_hawk.models import BatteryState, Reading
from tests.fakebluez.controller import FakeBlueZ
from tests.support.brokers import Mosquitto, Subscriber
from tests.support.site import Gateway, readings_by_device, retained_docs, streams

LEASE = 3.0
BM6 = "C8:47:80:00:13:06"
BM2 = "C8:47:80:00:13:02"
VICTRON = "C8:47:80:00:13:0E"
VICTRON_KEY = bytes.fromhex("0df4d0395b7d1a876c0c33ecb9e70dcd")
IDS = {BM6: "c84780001306", BM2: "c84780001302", VICTRON: "c8478000130e"}
DEVICES: list[dict[str, object]] = [
    {"address": BM6, "type": "bm6", "name": "Car", "poll_interval": 1},
    {"address": BM2, "type": "bm2", "name": "Van", "poll_interval": 1},
    {"address": VICTRON, "type": "victron", "name": "House", "poll_interval": 1,
     "key": VICTRON_KEY.hex()},
]
# what each gateway's radio hears of each device (dBm): g1 is best for the BM6, g2 for
# the BM2, g3 for the Victron; each gap is at least handover_db (10 dB)
RSSI = {
    "g1": {BM6: -50, BM2: -72, VICTRON: -85},
    "g2": {BM6: -64, BM2: -50, VICTRON: -75},
    "g3": {BM6: -80, BM2: -62, VICTRON: -52},
}
BEST = {IDS[BM6]: "g1", IDS[BM2]: "g2", IDS[VICTRON]: "g3"}


def devices_for(name: str) -> object:
    rssi = RSSI[name]

    def add(fake: FakeBlueZ) -> None:
        fake.add_bm6(BM6, Reading(voltage=12.64, soc=81, temperature=20.0,
                                  state=BatteryState.NORMAL), rssi=rssi[BM6])
        fake.add_bm2(BM2, [12.71, 12.69, 12.70], rssi=rssi[BM2])
        fake.add_victron(VICTRON, VICTRON_KEY, Reading(voltage=13.1, current=-4.2, soc=77.0),
                         rssi=rssi[VICTRON])
    return add


def claimed(messages: list[tuple[str, bytes]], gateway: str) -> set[str]:
    """The devices ``gateway`` claimed in these messages (its claims on the lease topics)."""
    return {topic.rsplit("/", 1)[-1] for topic, payload in messages
            if "/site/lease/" in topic and json.loads(payload) == {
                **json.loads(payload), "gateway": gateway, "action": "claim"}}


def readers(sub: Subscriber, start: int) -> dict[str, set[str]]:
    """Which gateways published readings of each device since message ``start``."""
    return {did: {g for g, _ in found} for did, found in readings_by_device(sub, start).items()}


async def steady_window(sub: Subscriber, per_device: int = 4) -> dict[str, set[str]]:
    """Readers of each device over a window in which each got ``per_device`` readings."""
    start = len(sub.messages)
    await sub.wait_for(lambda _: len(readings_by_device(sub, start)) == 3 and all(
        len(r) >= per_device for r in readings_by_device(sub, start).values()), timeout=60)
    return readers(sub, start)


def assert_no_holes(sub: Subscriber) -> None:
    """Each gateway's seq of each device runs without a gap (seq is per gateway)."""
    for did, found in readings_by_device(sub).items():
        for gateway, seqs in streams(found).items():
            assert sorted(set(seqs)) == list(range(min(seqs), max(seqs) + 1)), (did, gateway)


def without_via_device(docs: dict[str, dict[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for topic, doc in docs.items():
        device = dict(doc.get("device", {}))  # type: ignore[call-overload]
        device.pop("via_device", None)
        out[topic] = {**doc, "device": device}
    return out


async def test_three_gateways_share_devices_fail_over_and_heal(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    sub = Subscriber(mosquitto.port, "battery_hawk/#")
    await sub.start()
    gateways = {name: Gateway(name, tmp_path, mosquitto.port) for name in RSSI}
    try:
        await asyncio.gather(*(g.start(DEVICES, LEASE, devices_for(n))  # type: ignore[arg-type]
                               for n, g in gateways.items()))

        # 1. once settled, each device is read by exactly the gateway that hears it best
        await sub.wait_for(lambda _: all(
            any(g == BEST[did] for g, _ in r) for did, r in readings_by_device(sub).items())
            and len(readings_by_device(sub)) == 3, timeout=60)
        connects = {n: g.fake.device_state(BM6)["connects"] for n, g in gateways.items()}
        assert await steady_window(sub) == {did: {gw} for did, gw in BEST.items()}
        connects_after = {n: g.fake.device_state(BM6)["connects"] for n, g in gateways.items()}
        assert {n for n in gateways if connects_after[n] > connects[n]} == {"g1"}
        ha_before = await retained_docs(mosquitto.port, "homeassistant/#")
        bm6_docs = {t: d for t, d in ha_before.items() if IDS[BM6] in t}
        assert bm6_docs
        assert all(d["device"]["via_device"] == "battery_hawk_gateway_g1"  # type: ignore[index]
                   for d in bm6_docs.values())

        # 2. the BM6's owner dies without a word: g2 (next best) takes over
        gateways["g1"].kill()
        mark = len(sub.messages)
        await sub.wait_for(lambda _: "g2" in readers(sub, mark).get(IDS[BM6], set()),
                           timeout=8 * LEASE)
        assert await steady_window(sub) == {IDS[BM6]: {"g2"}, IDS[BM2]: {"g2"},
                                            IDS[VICTRON]: {"g3"}}
        assert_no_holes(sub)
        ha_after = await retained_docs(mosquitto.port, "homeassistant/#")
        assert set(ha_before) <= set(ha_after)  # nothing deleted
        assert without_via_device({t: ha_after[t] for t in ha_before}) == \
            without_via_device(ha_before)
        assert all(ha_after[t]["device"]["via_device"]  # type: ignore[index]
                   == "battery_hawk_gateway_g2" for t in bm6_docs)

        # 3. g2 is cut off from the broker: g3 takes its devices; g2 comes back and the
        # site settles with one reader per device
        g2 = gateways["g2"]
        g2.gate.freeze()
        g2.gate.shut()
        mark = len(sub.messages)
        await sub.wait_for(lambda _: all(
            "g3" in readers(sub, mark).get(did, set()) for did in IDS.values()),
            timeout=8 * LEASE)
        g2.gate.open()
        await sub.wait_for(lambda m: ("battery_hawk/gateway/g2/status", b"online")
                           in m[mark:], timeout=30)
        # g2 hears the BM6 and the BM2 better than g3: once it has settled it gets them
        # back; the Victron stays with g3, and no device has two readers
        after = {IDS[BM6]: {"g2"}, IDS[BM2]: {"g2"}, IDS[VICTRON]: {"g3"}}
        await sub.wait_for(lambda m: claimed(m[mark:], "g2") >= {IDS[BM6], IDS[BM2]},
                           timeout=10 * LEASE)
        # a reading the old owner sent before it heard the claim may still fall in the
        # first window; within a few windows the site must have one reader per device
        windows = []
        for _ in range(4):
            windows.append(await steady_window(sub, per_device=6))
            if windows[-1] == after:
                break
        assert windows[-1] == after, windows
        assert_no_holes(sub)
    finally:
        for gateway in gateways.values():
            with contextlib.suppress(Exception):
                await gateway.stop()
        await sub.stop()
        for name, gateway in gateways.items():
            if any("Traceback" in line for line in gateway.log):
                print(f"--- {name} ---", *gateway.log[-60:], sep="\n")
