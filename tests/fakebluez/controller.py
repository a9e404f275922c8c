"""Start, drive and stop a fake BlueZ: a private system bus plus our dbusmock template.

The fake is two child processes: a `dbus-daemon` configured as a system bus on a unix
socket in a temporary directory, and `/usr/bin/python3 -m dbusmock` serving org.bluez
from bluez_template.py on it. Point DBUS_SYSTEM_BUS_ADDRESS at `bus_address` and the
real bleak BlueZ backend talks to it.

The controller's methods are synchronous (they run on a private event loop in a
thread), so both sync code and async tests can call them; each call is bounded.

End-to-end use (the daemon as a subprocess):

    with FakeBlueZ() as fake:                      # or the fake_bluez fixture
        fake.add_bm6("AA:BB:CC:DD:EE:01", Reading(voltage=12.84, soc=87, ...))
        fake.add_victron("AA:BB:CC:DD:EE:04", key, Reading(...))
        daemon = subprocess.Popen(["battery-hawk", "run", "-c", cfg], env=fake.env())
        ...
        fake.set_leagend_reading("AA:BB:CC:DD:EE:01", Reading(...))  # next poll sees it
        fake.drop_link_on_next_write("AA:BB:CC:DD:EE:01")           # a read fails once
        fake.fail_next_connect("AA:BB:CC:DD:EE:01", "org.bluez.Error.InProgress", count=3)

The adapter is hci0 (address 00:1A:7D:DA:71:01) unless start() is told otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.auth import AuthExternal

if TYPE_CHECKING:
    from battery_hawk.models import Reading

__all__ = [
    "CONTROL_IFACE",
    "SYSTEM_PYTHON",
    "FakeBlueZ",
    "FakeBlueZError",
    "uuid16",
]

T = TypeVar("T")

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "bluez_template.py"
SYSTEM_PYTHON = "/usr/bin/python3"
CONTROL_IFACE = "com.batteryhawk.FakeBlueZ"
STARTUP_TIMEOUT = 15.0
CALL_TIMEOUT = 10.0

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
  </policy>
</busconfig>
"""


class FakeBlueZError(RuntimeError):
    """The fake BlueZ could not start, or a control call failed."""


def uuid16(short: int) -> str:
    """A 16-bit SIG UUID in the Bluetooth base UUID."""
    return f"0000{short:04x}-0000-1000-8000-00805f9b34fb"


def _require(program: str) -> str:
    path = shutil.which(program) if not os.path.isabs(program) else program
    if not path or not os.access(path, os.X_OK):
        raise FakeBlueZError(
            f"{program} is missing: install the Debian packages dbus and python3-dbusmock"
        )
    return path


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the test process dies, so no fake outlives it."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class FakeBlueZ:
    """One private system bus with a fake org.bluez on it; see the module docstring."""

    def __init__(self, workdir: str | os.PathLike[str] | None = None) -> None:
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="fakebluez-"))
        self.socket = self.workdir / "system_bus_socket"
        self.bus_address = f"unix:path={self.socket}"
        self.mock_log = self.workdir / "dbusmock.log"
        self._daemon: subprocess.Popen[bytes] | None = None
        self._mock: subprocess.Popen[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._bus: MessageBus | None = None
        self.adapters: list[str] = []
        self._keys: dict[str, bytes] = {}
        self._echo: dict[str, bool] = {}

    # --- life cycle ------------------------------------------------------------------

    def start(self, adapter: str = "hci0", adapter_address: str = "00:1A:7D:DA:71:01") -> None:
        """Start the bus and the mock, then add one adapter. Stops everything on failure."""
        try:
            self._start_daemon()
            self._start_loop()
            self._run(self._connect_bus())
            self._start_mock()
            self.add_adapter(adapter, adapter_address)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop whatever was started, in reverse order; safe to call twice."""
        if self._loop is not None and self._bus is not None:
            with contextlib.suppress(Exception):
                self._run(self._close_bus(), timeout=5)
        if self._loop is not None:
            loop, self._loop = self._loop, None
            loop.call_soon_threadsafe(loop.stop)
            if self._thread is not None:
                self._thread.join(timeout=5)
                self._thread = None
            if not loop.is_running():
                loop.close()
        for attr in ("_mock", "_daemon"):
            proc: subprocess.Popen[bytes] | None = getattr(self, attr)
            setattr(self, attr, None)
            if proc is None:
                continue
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> FakeBlueZ:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """An environment for a subprocess (e.g. `battery-hawk run`) that uses this bus."""
        env = dict(os.environ if base is None else base)
        env["DBUS_SYSTEM_BUS_ADDRESS"] = self.bus_address
        return env

    def _start_daemon(self) -> None:
        daemon = _require("dbus-daemon")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "system.conf"
        config.write_text(_BUS_CONFIG.format(socket=self.socket))
        self._daemon = subprocess.Popen(
            [daemon, f"--config-file={config}", "--nofork", "--nopidfile", "--print-address=1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )
        assert self._daemon.stdout is not None
        ready, _, _ = select.select([self._daemon.stdout], [], [], STARTUP_TIMEOUT)
        line = self._daemon.stdout.readline() if ready else b""
        if not line.strip():
            err = b""
            if self._daemon.poll() is not None and self._daemon.stderr is not None:
                err = self._daemon.stderr.read()
            raise FakeBlueZError(f"dbus-daemon did not start: {err.decode(errors='replace')}")
        self.bus_address = line.decode().strip()

    def _start_mock(self) -> None:
        python = _require(SYSTEM_PYTHON)
        self._mock = subprocess.Popen(
            [python, "-m", "dbusmock", "--system", "--template", str(TEMPLATE),
             "-l", str(self.mock_log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=self._mock_env(),
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._run(self._name_has_owner("org.bluez")):
            if self._mock.poll() is not None:
                err = self._mock.stderr.read() if self._mock.stderr else b""
                raise FakeBlueZError(
                    f"dbusmock under {python} exited (python3-dbusmock, python3-dbus and "
                    f"python3-gi are needed there): {err.decode(errors='replace')}"
                )
            if time.monotonic() > deadline:
                raise FakeBlueZError("dbusmock did not claim org.bluez in time")
            time.sleep(0.02)

    def _mock_env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
        }
        env["DBUS_SYSTEM_BUS_ADDRESS"] = self.bus_address
        return env

    def _start_loop(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fakebluez-control", daemon=True
        )
        self._thread.start()

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float = CALL_TIMEOUT) -> T:
        if self._loop is None:
            coro.close()
            raise FakeBlueZError("the fake BlueZ is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _connect_bus(self) -> None:
        bus = MessageBus(bus_address=self.bus_address, bus_type=BusType.SYSTEM,
                         auth=AuthExternal(uid=os.getuid()))
        await bus.connect()
        self._bus = bus

    async def _close_bus(self) -> None:
        bus, self._bus = self._bus, None
        if bus is not None:
            bus.disconnect()
            with contextlib.suppress(Exception):
                await bus.wait_for_disconnect()

    async def _name_has_owner(self, name: str) -> bool:
        assert self._bus is not None
        reply = await self._bus.call(
            Message(
                destination="org.freedesktop.DBus",
                path="/org/freedesktop/DBus",
                interface="org.freedesktop.DBus",
                member="NameHasOwner",
                signature="s",
                body=[name],
            )
        )
        return bool(reply.body[0])

    async def _call(self, member: str, signature: str = "", body: Sequence[Any] = ()) -> Any:
        assert self._bus is not None
        reply = await self._bus.call(
            Message(
                destination="org.bluez",
                path="/",
                interface=CONTROL_IFACE,
                member=member,
                signature=signature,
                body=list(body),
            )
        )
        assert reply is not None
        if reply.message_type == MessageType.ERROR:
            raise FakeBlueZError(f"{member}: {reply.error_name}: {reply.body}")
        return reply.body[0] if reply.body else None

    def call(self, member: str, signature: str = "", *body: Any) -> Any:
        """Call one method of the template's control interface."""
        return self._run(self._call(member, signature, body))

    # --- generic peripheral control ---------------------------------------------------

    def add_adapter(self, name: str = "hci0", address: str = "00:1A:7D:DA:71:01") -> str:
        path = str(self.call("AddAdapter", "ss", name, address))
        self.adapters.append(name)
        return path

    def add_device(
        self,
        address: str,
        name: str | None,
        *,
        rssi: int = -60,
        manufacturer_data: Mapping[int, bytes] | None = None,
        service_data: Mapping[str, bytes] | None = None,
        service_uuids: Iterable[str] = (),
        adapter: str = "hci0",
    ) -> str:
        """A peripheral that advertises while the adapter discovers."""
        return str(
            self.call(
                "AddDevice",
                "sssna{qay}a{say}as",
                adapter,
                address,
                name or "",
                rssi,
                dict(manufacturer_data or {}),
                dict(service_data or {}),
                list(service_uuids),
            )
        )

    def set_advertisement(
        self,
        address: str,
        *,
        rssi: int = -60,
        manufacturer_data: Mapping[int, bytes] | None = None,
        service_data: Mapping[str, bytes] | None = None,
    ) -> None:
        self.call(
            "SetAdvertisement", "sna{qay}a{say}", address, rssi,
            dict(manufacturer_data or {}), dict(service_data or {}),
        )

    def set_advertising(self, address: str, advertising: bool) -> None:
        self.call("SetAdvertising", "sb", address, advertising)

    def add_service(self, address: str, uuid: str) -> str:
        return str(self.call("AddService", "ss", address, uuid))

    def add_characteristic(
        self, service_path: str, uuid: str, flags: Sequence[str], value: bytes = b""
    ) -> str:
        return str(self.call("AddCharacteristic", "ssasay", service_path, uuid, list(flags),
                             value))

    def add_responder(
        self,
        address: str,
        write_uuid: str,
        notify_uuid: str,
        replies: Sequence[bytes],
        *,
        prefix: bytes = b"",
        key: bytes | None = None,
    ) -> None:
        """On a write whose plaintext (AES-decrypted with key) starts with prefix, notify."""
        self.call("AddResponder", "sssayayaay", address, write_uuid, notify_uuid,
                  key or b"", prefix, list(replies))

    def clear_responders(self, address: str) -> None:
        self.call("ClearResponders", "s", address)

    def set_stream(
        self, address: str, notify_uuid: str, frames: Sequence[bytes], interval: float = 0.05
    ) -> None:
        """While notifications are on, send frames round-robin every interval seconds."""
        self.call("SetStream", "ssaayu", address, notify_uuid, list(frames),
                  max(1, round(interval * 1000)))

    def notify(self, address: str, char_uuid: str, frame: bytes) -> bool:
        """Send one notification now; False if nobody is subscribed."""
        return bool(self.call("Notify", "ssay", address, char_uuid, frame))

    def set_char_value(self, address: str, char_uuid: str, value: bytes) -> None:
        self.call("SetCharValue", "ssay", address, char_uuid, value)

    def drop_link(self, address: str) -> None:
        """The peripheral drops the connection now (Connected becomes False)."""
        self.call("DropLink", "s", address)

    def drop_link_on_next_write(self, address: str) -> None:
        """The next write is accepted and then the link drops instead of a reply."""
        self.call("DropOnNextWrite", "s", address)

    def fail_next_connect(
        self, address: str, error_name: str = "org.bluez.Error.InProgress", *,
        count: int = 1, message: str = "Operation already in progress",
    ) -> None:
        """The next `count` Connect calls fail with this D-Bus error."""
        self.call("FailNextConnect", "sssu", address, error_name, message, count)

    def writes(self, address: str) -> list[bytes]:
        """Every value written to any characteristic of the device, raw, in order."""
        return [bytes(w) for w in self.call("GetWrites", "s", address)]

    def device_state(self, address: str) -> dict[str, Any]:
        """connected, connects (successful Connect calls), pending_failures, notifying."""
        state = self.call("GetDeviceState", "s", address)
        return {k: v.value for k, v in state.items()}

    def adapter_state(self, adapter: str = "hci0") -> dict[str, Any]:
        """discovering (bool) and discovery_starts (StartDiscovery calls so far)."""
        state = self.call("GetAdapterState", "s", adapter)
        return {k: v.value for k, v in state.items()}

    # --- device families (frames from battery_hawk.simulator.frames) -------------------

    def add_leagend_poll(
        self,
        address: str,
        reading: Reading,
        *,
        family: str = "bm6",
        name: str | None = None,
        key: bytes | None = None,
        echo: bool = False,
        rssi: int = -60,
    ) -> None:
        """A BM6 / BM7: decrypts the d1 55 07 request written to fff3, notifies on fff4."""
        from battery_hawk.simulator import frames

        key = key or (frames.BM7_KEY if family == "bm7" else frames.BM6_KEY)
        self._keys[address.upper()] = key
        self.add_device(address, name or family.upper(), rssi=rssi,
                        service_uuids=[uuid16(0xFFF0)])
        service = self.add_service(address, uuid16(0xFFF0))
        self.add_characteristic(service, uuid16(0xFFF3), ["write", "write-without-response"])
        self.add_characteristic(service, uuid16(0xFFF4), ["notify"])
        self._echo[address.upper()] = echo
        self.set_leagend_reading(address, reading)

    def add_bm6(self, address: str, reading: Reading, **kwargs: Any) -> None:
        self.add_leagend_poll(address, reading, family="bm6", **kwargs)

    def add_bm7(self, address: str, reading: Reading, **kwargs: Any) -> None:
        self.add_leagend_poll(address, reading, family="bm7", **kwargs)

    def set_leagend_reading(
        self, address: str, reading: Reading, *, echo: bool | None = None
    ) -> None:
        """What a BM6 / BM7 answers from now on (echo: send d1 55 07 ff first)."""
        from battery_hawk.simulator import frames

        address = address.upper()
        key = self._keys[address]
        if echo is not None:
            self._echo[address] = echo
        replies = [frames.bm6_echo(key)] if self._echo[address] else []
        replies.append(frames.bm6_reply(reading, key))
        self.clear_responders(address)
        self.add_responder(address, uuid16(0xFFF3), uuid16(0xFFF4), replies,
                           prefix=b"\xd1\x55\x07", key=key)
        self.add_responder(address, uuid16(0xFFF3), uuid16(0xFFF4),
                           [frames.bm6_firmware_reply(key)], prefix=b"\xd1\x55\x01", key=key)

    def add_bm2(
        self,
        address: str,
        voltages: Sequence[float],
        *,
        interval: float = 0.05,
        name: str = "BM2",
        key: bytes | None = None,
        rssi: int = -60,
    ) -> None:
        """A BM2: once notifications are on, streams 0xF5 frames of voltages round-robin."""
        from battery_hawk.simulator import frames

        key = key or frames.BM2_KEY
        self._keys[address.upper()] = key
        self.add_device(address, name, rssi=rssi, service_uuids=[uuid16(0xFFF0)])
        service = self.add_service(address, uuid16(0xFFF0))
        self.add_characteristic(service, uuid16(0xFFF3), ["write", "write-without-response"])
        self.add_characteristic(service, uuid16(0xFFF4), ["notify"])
        self.set_bm2_voltages(address, voltages, interval=interval)

    def set_bm2_voltages(
        self, address: str, voltages: Sequence[float], *, interval: float = 0.05
    ) -> None:
        from battery_hawk.simulator import frames

        key = self._keys[address.upper()]
        stream = [frames.bm2_voltage(v, key, counter=i) for i, v in enumerate(voltages)]
        self.set_stream(address, uuid16(0xFFF4), stream, interval)

    def add_victron(
        self,
        address: str,
        key: bytes,
        reading: Reading,
        *,
        name: str = "SmartShunt HQ2207",
        nonce: int = 1,
        solar: bool = False,
        rssi: int = -60,
    ) -> None:
        """A Victron advertising an instant-readout record (manufacturer 0x02E1)."""
        self.add_device(address, name, rssi=rssi,
                        manufacturer_data=self._victron_data(key, reading, nonce, solar))

    def set_victron_reading(
        self, address: str, key: bytes, reading: Reading, *, nonce: int = 2,
        solar: bool = False, rssi: int = -60,
    ) -> None:
        self.set_advertisement(address, rssi=rssi,
                               manufacturer_data=self._victron_data(key, reading, nonce, solar))

    @staticmethod
    def _victron_data(key: bytes, reading: Reading, nonce: int, solar: bool) -> dict[int, bytes]:
        from battery_hawk.simulator import frames

        encode = frames.victron_solar_charger if solar else frames.victron_battery_monitor
        return {0x02E1: encode(reading, key, nonce)}

    def add_battery_service(
        self, address: str, soc: float, *, name: str = "Generic Battery", rssi: int = -60
    ) -> None:
        """A device with the standard Battery Service (0x180F / Battery Level 0x2A19)."""
        from battery_hawk.simulator import frames

        self.add_device(address, name, rssi=rssi, service_uuids=[uuid16(0x180F)])
        service = self.add_service(address, uuid16(0x180F))
        self.add_characteristic(service, uuid16(0x2A19), ["read", "notify"],
                                frames.bas_level(soc))
