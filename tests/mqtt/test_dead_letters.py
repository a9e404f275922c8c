"""Dead letters: kept in the spool with reason and time; listed, replayed and purged by
``battery-hawk dlq`` (on the file, while the interface runs) and over HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from battery_hawk.cli import main
from battery_hawk.config import Config, StorageConfig
from battery_hawk.deadletters import register_routes, run_dlq
from battery_hawk.http import HttpServer, Metrics
from battery_hawk.mqtt import MQTTInterface, ReconnectionConfig
from battery_hawk.mqtt.queue import QueuedMessage
from battery_hawk.mqtt.spool import SPOOL_FILE, Spool, SpoolFile
from tests.http.conftest import FakeProvider
from tests.support.brokers import Mosquitto, Subscriber, free_port, wait_until

from .conftest import settings_for

CONFIG = ReconnectionConfig(max_retries=0, initial_retry_delay=0.05, max_retry_delay=0.1,
                            connection_timeout=2, operation_timeout=2, message_retry_limit=1)
POISON = b"x" * 5000  # over the first broker's max_packet_size: every send kills the link


def dlq(storage: Path, *args: str) -> str:
    out = io.StringIO()
    config = dataclasses.replace(Config(), storage=StorageConfig(path=str(storage)))
    action, *rest = args
    ids = [int(i) for i in rest] or None
    assert run_dlq(config, action, ids, as_json=action == "list", out=out) == 0
    return out.getvalue()


def http(method: str, url: str, body: bytes | None = None) -> tuple[int, object]:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None


async def test_a_poison_message_becomes_a_dead_letter_and_replays_once_the_broker_takes_it(
    tmp_path: Path,
) -> None:
    strict = Mosquitto(extra_config="max_packet_size 1000")
    strict.start()
    port = strict.port
    try:
        iface = MQTTInterface(settings_for(port), CONFIG, spool=Spool(tmp_path, 1 << 20))
        async with iface:
            await iface.publish("bh/dl/big", POISON)
            await iface.publish("bh/dl/after", "after")
            assert await iface.flush(15)
            stats = iface.stats
            assert (stats.dead_letters, stats.dead_letters_held) == (1, 1)
            # the command reads the file while the interface runs
            listed = json.loads(await asyncio.to_thread(dlq, tmp_path, "list"))
            assert [(d["topic"], d["reason"], d["size"], d["failures"]) for d in listed] == [
                ("bh/dl/big", "retry_limit", 5000, 2)]
            assert listed[0]["dead_at"].endswith("Z")

            strict.kill()  # a broker that takes big packets, on the same port
            lenient = Mosquitto(port=port)
            await lenient.start_async()
            try:
                async with Subscriber(port, "bh/dl/#") as sub:
                    said = await asyncio.to_thread(dlq, tmp_path, "replay")
                    assert said.startswith("1 dead letter(s) queued")
                    await sub.wait_for(lambda m: ("bh/dl/big", POISON) in m, timeout=15)
                await wait_until(lambda: iface.stats.dead_letters_held == 0, timeout=10)
                assert json.loads(await asyncio.to_thread(dlq, tmp_path, "list")) == []
            finally:
                lenient.close()
    finally:
        strict.close()


async def test_dead_letters_over_http_list_replay_and_metrics(tmp_path: Path) -> None:
    with Mosquitto(extra_config="max_packet_size 1000") as broker:
        iface = MQTTInterface(settings_for(broker.port), CONFIG, spool=Spool(tmp_path, 1 << 20))
        metrics = Metrics()
        metrics.bind_mqtt(lambda: iface.stats.as_dict())
        server = HttpServer("127.0.0.1", 0, metrics, FakeProvider(), admin_token="s3cret")
        register_routes(server, iface)
        async with iface, server:
            for i in range(2):
                await iface.publish(f"bh/dl/big{i}", POISON)
            assert await iface.flush(15)
            base = f"http://127.0.0.1:{server.port}"
            status, doc = await asyncio.to_thread(http, "GET", base + "/api/dead-letters")
            assert status == 200 and isinstance(doc, dict)
            assert doc["count"] == 2 and doc["spool"] is True
            first = doc["dead_letters"][0]
            assert (first["topic"], first["reason"]) == ("bh/dl/big0", "retry_limit")
            _, text = await asyncio.to_thread(_text, base + "/metrics")
            assert "battery_hawk_mqtt_dead_letters_total 2.0" in text
            assert "battery_hawk_mqtt_dead_letters_held 2.0" in text
            # loopback is admin: replay only the first (it fails again: still poison)
            status, doc = await asyncio.to_thread(
                http, "POST", base + "/api/dead-letters/replay",
                json.dumps({"ids": [first["id"]]}).encode())
            assert (status, doc) == (200, {"replayed": 1})
            status, _ = await asyncio.to_thread(
                http, "POST", base + "/api/dead-letters/replay", b"{\"ids\": \"all\"}")
            assert status == 400
            await wait_until(lambda: iface.stats.dead_letters == 3, timeout=15)


def _text(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as reply:
        return reply.status, reply.read().decode()


def test_dlq_command_without_a_spool_says_so(tmp_path: Path, capsys: object) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"storage:\n  path: {tmp_path / 'state'}\n"
                      "devices:\n  - {address: 'C8:47:80:00:00:06', type: bm6}\n")
    assert main(["dlq", "-c", str(config), "list"]) == 0
    assert main(["dlq", "-c", str(config), "purge"]) == 0


def _spool_with_letters(storage: Path, count: int) -> list[int]:
    """A spool file under ``storage`` holding ``count`` dead letters; their ids."""
    spool = SpoolFile(storage / SPOOL_FILE)
    try:
        spool.bury([(QueuedMessage(f"bh/dl/{i}", b"x", 1, False, i, 0.0), "retry_limit", None)
                    for i in range(count)])
        return [letter.id for letter in spool.dead_letters()]
    finally:
        spool.close()


@pytest.mark.parametrize("action", ["replay", "purge", "list"])
def test_dlq_names_the_ids_that_are_no_dead_letter_and_exits_1(
    action: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"storage:\n  path: {tmp_path}\n"
                      "devices:\n  - {address: 'C8:47:80:00:00:06', type: bm6}\n")
    (held,) = _spool_with_letters(tmp_path, 1)
    absent = held + 4
    assert main(["dlq", "-c", str(config), action, "--id", str(absent)]) == 1
    out, err = capsys.readouterr()
    assert f"no dead letter with id {absent}" in err and "dlq list" in err
    # the id that exists is still acted on; the one that does not is named again
    assert main(["dlq", "-c", str(config), action, "--id", str(held),
                 "--id", str(absent)]) == 1
    out, err = capsys.readouterr()
    assert f"no dead letter with id {absent} (" in err  # only the absent one is named
    assert {"replay": "1 dead letter(s) queued", "purge": "1 dead letter(s) deleted",
            "list": "bh/dl/0"}[action] in out
    if action != "list":
        assert main(["dlq", "-c", str(config), "list"]) == 0
        assert "no dead letters" in capsys.readouterr().out


def test_dlq_without_a_spool_names_the_ids_asked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"storage:\n  path: {tmp_path / 'state'}\n"
                      "devices:\n  - {address: 'C8:47:80:00:00:06', type: bm6}\n")
    assert main(["dlq", "-c", str(config), "replay", "--id", "5"]) == 1
    assert "no dead letter with id 5" in capsys.readouterr().err


async def test_http_replay_of_ids_that_are_no_dead_letter_answers_404(tmp_path: Path) -> None:
    held = _spool_with_letters(tmp_path, 1)[0]
    iface = MQTTInterface(settings_for(free_port()), CONFIG,  # no broker: held, not sent
                          spool=Spool(tmp_path, 1 << 20))
    server = HttpServer("127.0.0.1", 0, Metrics(), FakeProvider(), admin_token="s3cret")
    register_routes(server, iface)
    async with iface, server:
        base = f"http://127.0.0.1:{server.port}/api/dead-letters/replay"
        status, doc = await asyncio.to_thread(
            http_doc, "POST", base, json.dumps({"ids": [held, held + 7]}).encode())
    assert status == 404 and isinstance(doc, dict)
    assert (doc["replayed"], doc["missing"]) == (1, [held + 7])


def http_doc(method: str, url: str, body: bytes) -> tuple[int, object]:
    """Like http(), with the body of an error answer too."""
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
