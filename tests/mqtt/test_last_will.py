"""The Last Will: a gateway process that dies without a word is reported offline."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from tests.support.brokers import Mosquitto, Subscriber

ROOT = Path(__file__).resolve().parents[2]

GATEWAY = """
import asyncio, sys
from battery_hawk.mqtt import BrokerSettings, MQTTInterface, ReconnectionConfig

async def main() -> None:
    settings = BrokerSettings("127.0.0.1", int(sys.argv[1]), client_id="lwt-gateway",
                              keepalive=1)
    iface = MQTTInterface(settings, ReconnectionConfig(initial_retry_delay=0.05),
                          status_topic="bh/gateway/lwt/status")
    async with iface:
        if not await iface.wait_connected(10):
            sys.exit("no connection")
        print("connected", flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_last_will_offline_is_delivered_when_the_gateway_process_is_killed(
    mosquitto: Mosquitto,
) -> None:
    async with Subscriber(mosquitto.port, "bh/gateway/lwt/status") as sub:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", GATEWAY, str(mosquitto.port),
            cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            async with asyncio.timeout(20):
                line = await proc.stdout.readline()
            assert line.strip() == b"connected"
            await sub.wait_for(lambda msgs: msgs[-1:] == [("bh/gateway/lwt/status", b"online")])
            proc.send_signal(signal.SIGKILL)
            async with asyncio.timeout(10):
                await proc.wait()
            await sub.wait_for(lambda msgs: msgs[-1:] == [("bh/gateway/lwt/status", b"offline")],
                               timeout=10)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert sub.payloads == [b"online", b"offline"]
