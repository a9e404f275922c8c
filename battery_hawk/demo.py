"""``battery-hawk demo``: the whole pipeline against simulated devices and an MQTT broker.

Nothing is faked past the radio: simulated monitors emit the real encrypted frames of their
protocol, and the real drivers, coordinators, publisher and MQTTInterface carry them to a
real MQTT broker: the embedded one (amqtt, in a child process so it can be stopped and
started at will; the `demo` extra) or, with ``--broker``, one the user runs, e.g. Home
Assistant's, so the simulated devices appear in their own Home Assistant.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import signal
import socket
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

from battery_hawk.app import App
from battery_hawk.config import (
    AlertConfig,
    Config,
    DeviceConfig,
    HttpConfig,
    MqttConfig,
    StorageConfig,
)
from battery_hawk.demo_broker import clear_status, demo_gateway_id, host_port, split_broker
from battery_hawk.demo_view import LiveView
from battery_hawk.errors import BatteryHawkError
from battery_hawk.simulator.battery import BatteryModel, BatteryProfile
from battery_hawk.simulator.broker import (
    BrokerProcess,
    free_port,
    port_is_free,
    require_amqtt,
)
from battery_hawk.simulator.devices import FAMILIES, SimDevice, SimTransport, build_fleet

__all__ = [
    "DemoOptions",
    "demo_config",
    "demo_fleet",
    "intro",
    "run_demo",
]

_log = logging.getLogger(__name__)

FAULT_PERIOD = 20.0  # --fault broker: seconds up, then seconds down, repeated
GATEWAY_ID = "demo"  # with the embedded broker; on the user's, demo_gateway_id()
ALERT_HOLD = 5.0  # seconds a breach must last before the demo raises an alert

# The battery that runs flat: 5 Ah drained at 10 A loses about 3 % a minute, so from 28 %
# it crosses the 20 % low-SoC threshold after about 2.5 minutes, keeps discharging for 4
# minutes, then charges back past 22 % (threshold + band): one alert raised and cleared.
FLAT_PROFILE = BatteryProfile(capacity_ah=5.0, load_current=10.0, charge_current=10.0,
                              cycle_s=480.0)
FLAT_START_SOC = 28.0


@dataclass(frozen=True, slots=True)
class DemoOptions:
    duration: float | None = None
    devices: int | None = None
    port: int = 1883
    interval: float | None = None
    fault: str | None = None
    live: bool = True
    storage: str | None = None  # None: a temporary folder (no spool: it is deleted)
    http_port: int = 9105
    seed: int = 0
    broker: str | None = None  # a broker the user runs (split_broker's forms); None: embedded
    username: str | None = None
    password: str | None = None
    listen: bool = False  # the embedded broker on every interface, not only localhost


def demo_fleet(count: int | None, *, seed: int = 0, start: float = 0.0,
               bm2_interval: float = 1.0) -> list[SimDevice]:
    """The simulated devices: by default one of each family plus a SmartSolar; the first
    (a BM6) runs flat over a few minutes so a low-SoC alert is raised and then cleared."""
    if count is None:  # build_fleet's ninth device is its first SmartSolar
        fleet = build_fleet(9, seed=seed, start=start, bm2_interval=bm2_interval)
        fleet = [*fleet[: len(FAMILIES)], fleet[8]]
    else:
        fleet = build_fleet(count, seed=seed, start=start, bm2_interval=bm2_interval)
    for i, device in enumerate(fleet):
        device.name = f"{device.name} {i + 1}"
    first = fleet[0]
    if first.family == "bm6":
        first.name = "Camper 1 (flat)"
        first.battery = BatteryModel(FLAT_PROFILE, random.Random(seed), start=start,
                                     soc=FLAT_START_SOC, discharging_first=True)
    return fleet


def demo_config(transport: SimTransport, *, port: int, interval: float, storage: str,
                http_port: int, host: str = "127.0.0.1", username: str | None = None,
                password: str | None = None, gateway_id: str = GATEWAY_ID,
                spool: bool = True) -> Config:
    """A Config for the simulated fleet: quick reconnection so outages are short.

    ``spool`` False keeps undelivered messages in memory only (for a temporary
    ``storage`` that is deleted at the end: a spool there would keep nothing).
    """
    alerts = AlertConfig(hold=ALERT_HOLD)
    devices = tuple(
        DeviceConfig(address=dev.address, type=dev.family, name=dev.name,
                     poll_interval=interval, alerts=alerts,
                     key=dev.key if dev.family == "victron" else None)
        for dev in transport.devices.values()
    )
    mqtt = MqttConfig(broker=host, port=port, username=username, password=password,
                      initial_retry_delay=0.5, max_retry_delay=5.0, max_retries=0,
                      health_check_interval=10.0,
                      message_queue_size=max(1000, 200 * len(devices)), keepalive=15)
    return Config(gateway_id=gateway_id, mqtt=mqtt, devices=devices,
                  http=HttpConfig(enabled=True, listen="127.0.0.1", port=http_port),
                  storage=StorageConfig(path=storage, spool=spool))


async def run_demo(options: DemoOptions) -> int:
    """Run the demo until Ctrl-C or ``duration``; returns the exit code."""
    external = options.broker is not None
    bind: str | None = None  # None: the user's broker, none of ours
    if external:
        host, port = split_broker(options.broker or "")
    else:
        require_amqtt()
        host, port = "127.0.0.1", options.port
        bind = "0.0.0.0" if options.listen else "127.0.0.1"
        if not port_is_free(port, bind):
            port = free_port(bind)
            print(f"port {options.port} is taken (a broker already running?); using {port}",
                  flush=True)
    http_port = options.http_port if port_is_free(options.http_port) else 0
    interval = options.interval or 2.0
    loop = asyncio.get_running_loop()
    fleet = demo_fleet(options.devices, seed=options.seed, start=loop.time(),
                       bm2_interval=min(1.0, interval))
    # two adverts per reading interval: a passive device then always has an advert at hand
    # when its next reading is due (adverts paced exactly at the interval would miss some)
    transport = SimTransport(fleet, advert_interval=min(1.0, interval) / 2)
    started: list[App] = []
    stop_asked = False

    def ask_stop() -> None:  # Ctrl-C may come while the broker or the app still starts
        nonlocal stop_asked
        stop_asked = True
        for running in started:
            running.request_stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, ask_stop)
    try:
        app = await _run(options, transport, started, lambda: stop_asked,
                         host=host, port=port, bind=bind, http_port=http_port,
                         interval=interval,
                         gateway_id=demo_gateway_id() if external else GATEWAY_ID)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    stats = app.mqtt.stats if app.mqtt else None
    if stats is None:
        return 0
    left = ""
    if stats.queue_size and options.storage is None:
        left = ", lost with the demo's temporary storage (--storage DIR keeps them)"
    elif stats.queue_size:
        left = f", kept in the spool under {options.storage} for the next demo"
    print(f"demo ended: {stats.messages_published} messages published, "
          f"{stats.messages_dropped} dropped, {stats.queue_size} undelivered{left}", flush=True)
    if external and stats.total_connections == 0:
        print(f"battery-hawk demo: never reached your broker {host_port(host, port)}: is it "
              "running there, and are --username and --password right?", file=sys.stderr)
        return 1
    return 0


async def _run(options: DemoOptions,
               transport: SimTransport, started: list[App], stop_asked: Callable[[], bool],
               *, host: str, port: int, bind: str | None, http_port: int,
               interval: float, gateway_id: str) -> App:
    """Broker (unless ``bind`` is None: the user's broker), app, intro, then the demo
    until stopped; returns the stopped app.

    A stdout nobody reads any more (``| head -1``) stops the demo as Ctrl-C does, the
    user's broker cleaned up as always; then its BrokenPipeError is raised.
    """
    lost_stdout: BrokenPipeError | None = None
    with contextlib.ExitStack() as stack:
        storage = options.storage or stack.enter_context(
            tempfile.TemporaryDirectory(prefix="battery-hawk-demo-"))
        broker = None
        if bind is not None:
            broker = await _start_broker(port, bind, options.port,
                                         quiet=options.live and sys.stdout.isatty())
            port = broker.port

        def make_app(http_port: int) -> App:
            config = demo_config(transport, port=port, interval=interval, storage=storage,
                                 http_port=http_port, host=host, username=options.username,
                                 password=options.password, gateway_id=gateway_id,
                                 spool=options.storage is not None)
            return App(config, transport=transport, stats_interval=10.0)

        try:
            app = await _start_app(make_app, http_port)
        except BaseException:
            if broker is not None:
                await broker.stop()
            raise
        started.append(app)
        if stop_asked():
            app.request_stop()
        assert app.http is not None
        config = app.config  # the status page's port as bound (0 asks the system for one)
        config = dataclasses.replace(config, http=dataclasses.replace(
            config.http, port=app.http.port))
        header = intro(config, options)
        view = LiveView(sys.stdout, header)
        if not options.live or not view.tty:
            try:
                print("\n".join(header), flush=True)
            except BrokenPipeError as exc:
                lost_stdout = exc
                app.request_stop()
        if options.live:
            stack.enter_context(view)
        try:
            helpers = [asyncio.create_task(_stop_after(app, options.duration),
                                           name="battery-hawk:demo-timer")]
            if options.fault == "broker" and broker is not None:
                helpers.append(asyncio.create_task(_broker_faults(broker),
                                                   name="battery-hawk:demo-fault"))
            if options.live:
                helpers.append(asyncio.create_task(
                    view.run(app, lambda: broker is None or broker.running),
                    name="battery-hawk:demo-view"))
            await app.wait_stopped()
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            if broker is not None and not broker.running:
                with contextlib.suppress(RuntimeError):  # drain the last readings if we can
                    await broker.start()
            if bind is None:  # leave the user's broker and Home Assistant as they were
                await app.reload(dataclasses.replace(app.config, devices=()))
                await app.withdraw_gateway()
        finally:
            await app.stop()
            if broker is not None:
                await broker.stop()
        if bind is None:
            await clear_status(app)
    if lost_stdout is not None:
        raise lost_stdout
    return app


async def _start_broker(port: int, bind: str, asked: int, *,
                        quiet: bool = False) -> BrokerProcess:
    """The embedded broker on ``port``, or on a free port if another program takes
    ``port`` between our check and the broker's bind (say, another demo starting)."""
    for attempt in range(3):
        broker = BrokerProcess(port, bind, quiet=quiet)
        try:
            await broker.start()
        except RuntimeError:
            if attempt == 2 or port_is_free(port, bind):
                raise  # not a port taken meanwhile: say what failed
            port = free_port(bind)
            print(f"port {asked} is taken (a broker already running?); using {port}",
                  flush=True)
            continue
        return broker
    raise AssertionError("unreachable")


async def _start_app(make_app: Callable[[int], App], http_port: int) -> App:
    """Start the app with its status page on ``http_port``; if another program took that
    port since it was checked, on one the system picks (port 0 cannot be taken)."""
    app = make_app(http_port)
    try:
        await app.start()
    except BatteryHawkError:
        await app.stop()
        if http_port == 0 or port_is_free(http_port):
            raise  # not the port: say what failed
        app = make_app(0)
        try:
            await app.start()
        except BaseException:
            await app.stop()
            raise
    return app


def _reachable_as() -> str:
    """A name other hosts may reach this one by (for --listen)."""
    return socket.gethostname() or "this host"


def intro(config: Config, options: DemoOptions) -> list[str]:
    """What the demo is and how to watch it, one line each (each fits 80 columns)."""
    m = config.mqtt
    host = m.broker
    if options.broker is not None:
        where = f"your broker {host_port(host, m.port)}"
    elif options.listen:
        where = f"embedded broker on port {m.port}, all interfaces ({_reachable_as()})"
    else:
        where = f"embedded broker {host_port(host, m.port)}"
    auth = f" -u {m.username} -P ..." if m.username else ""
    lines = [
        f"battery-hawk demo: {len(config.devices)} simulated devices, {where}",
        f"  watch: mosquitto_sub -h {host} -p {m.port}{auth} -v -t '{m.topic_prefix}/#'",
        f"  HA discovery: -t '{m.discovery_prefix}/#'   "
        f"status page: http://127.0.0.1:{config.http.port}/",
    ]
    if options.fault == "broker" and options.broker is None:
        lines.append(f"  --fault broker: the broker stops for {FAULT_PERIOD:.0f} s every "
                     f"{FAULT_PERIOD:.0f} s; readings queue meanwhile")
    if options.broker is not None:
        lines.append("  the demo's entities are removed from Home Assistant when it ends")
    if options.duration is None:
        lines.append("  Ctrl-C ends the demo.")
    else:
        lines.append(f"  the demo ends after {options.duration:g} s; Ctrl-C ends it sooner.")
    return lines


async def _stop_after(app: App, duration: float | None) -> None:
    if duration is None:
        return
    await asyncio.sleep(duration)
    app.request_stop()


async def _broker_faults(broker: BrokerProcess) -> None:
    while True:
        await asyncio.sleep(FAULT_PERIOD)
        _log.warning("demo fault: stopping the broker for %.0f s", FAULT_PERIOD)
        await broker.stop()
        await asyncio.sleep(FAULT_PERIOD)
        try:
            await broker.start()
        except RuntimeError as exc:  # e.g. something else took the port meanwhile
            _log.error("demo fault: the broker did not come back (%s); trying again", exc)
            continue
        _log.warning("demo fault: broker back")
