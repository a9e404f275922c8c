"""Two sites, each a gateway on its own mosquitto, bridged to a central mosquitto with the
bridge configuration docs/mqtt.md shows: every reading of both sites arrives centrally,
also those made while the bridges were cut off."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from battery_hawk.models import Reading
from tests.fakebluez.controller import FakeBlueZ
from tests.support.brokers import Mosquitto, Subscriber, TcpGate
from tests.support.site import Gateway, readings_by_device, streams

SITES = {"site-a": "C8:47:80:00:A0:06", "site-b": "C8:47:80:00:B0:06"}


def bridge_config(name: str, central_port: int) -> str:
    """The site broker's side of the bridge, as in docs/mqtt.md (no TLS on loopback)."""
    return "\n".join([
        "connection central",
        f"address 127.0.0.1:{central_port}",
        f"remote_clientid {name}",
        "cleansession false",
        "bridge_protocol_version mqttv311",
        "keepalive_interval 5",
        "restart_timeout 1",
        "topic battery_hawk/device/# out 1",
        "topic battery_hawk/gateway/# out 1",
        "topic homeassistant/# out 1",
    ])


def bm6(address: str) -> object:
    def add(fake: FakeBlueZ) -> None:
        fake.add_bm6(address, Reading(voltage=12.6, soc=80, temperature=20.0))
    return add


def seqs(sub: Subscriber) -> dict[str, list[int]]:
    return {did: s for did, found in readings_by_device(sub).items()
            for s in streams(found).values()}


async def test_readings_of_two_sites_arrive_centrally_over_a_bridge_outage(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    central = mosquitto
    gates = {name: TcpGate(central.port) for name in SITES}
    brokers: dict[str, Mosquitto] = {}
    gateways: dict[str, Gateway] = {}
    central_sub = Subscriber(central.port, "battery_hawk/device/+/readings")
    local_subs: dict[str, Subscriber] = {}
    await central_sub.start()
    try:
        for name, address in SITES.items():
            await gates[name].start()
            brokers[name] = Mosquitto(extra_config=bridge_config(name, gates[name].port))
            await brokers[name].start_async()
            local_subs[name] = Subscriber(brokers[name].port, "battery_hawk/device/+/readings")
            await local_subs[name].start()
            gateways[name] = Gateway(name, tmp_path, brokers[name].port)
            await gateways[name].start(
                [{"address": address, "type": "bm6", "poll_interval": 1}], None,
                bm6(address))  # type: ignore[arg-type]
        await central_sub.wait_for(lambda _: len(seqs(central_sub)) == 2, timeout=60)

        # the bridges lose the central broker (a half-open link first, then refused)
        for gate in gates.values():
            gate.freeze()
            gate.shut()
        mark = {name: len(sub.messages) for name, sub in local_subs.items()}
        await asyncio.gather(*(sub.wait_for(  # ten readings a site made during the outage
            lambda m, name=name: len(m) >= mark[name] + 10, timeout=60)
            for name, sub in local_subs.items()))
        local = {did: max(s) for sub in local_subs.values() for did, s in seqs(sub).items()}
        held_back = {did: max(s) for did, s in seqs(central_sub).items()}
        assert all(held_back[did] < top for did, top in local.items())  # a real outage
        for gate in gates.values():
            gate.open()

        # every reading each site's broker saw, up to now, arrives centrally
        await central_sub.wait_for(lambda _: all(
            max(seqs(central_sub).get(did, [0])) >= top for did, top in local.items()),
            timeout=60)
        for did, found in seqs(central_sub).items():
            assert set(range(1, max(found) + 1)) <= set(found), f"{did} lost readings"
        assert len(seqs(central_sub)) == 2
    finally:
        for gateway in gateways.values():
            with contextlib.suppress(Exception):
                await gateway.stop()
        for sub in (central_sub, *local_subs.values()):
            await sub.stop()
        for broker in brokers.values():
            broker.close()
        for gate in gates.values():
            await gate.stop()
