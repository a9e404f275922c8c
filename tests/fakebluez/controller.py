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

This module is the life cycle and the control connection (bus, mock, event loop, `call`);
FakeBlueZ gets its generic peripheral controls (add_device, add_responder, drop_link,
...) from peripherals.py and its device-family builders (add_bm6, add_bm2,
add_victron, ...) from families.py.
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
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.auth import AuthExternal

from tests.fakebluez.families import DeviceFamilies
from tests.fakebluez.peripherals import uuid16

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


class FakeBlueZ(DeviceFamilies):
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

    def stop_bluez(self) -> None:
        """bluetoothd goes away (as after `systemctl stop bluetooth`); the bus stays."""
        proc, self._mock = self._mock, None
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            if proc.stderr is not None:
                proc.stderr.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while self._run(self._name_has_owner("org.bluez")):
            if time.monotonic() > deadline:
                raise FakeBlueZError("org.bluez is still owned after the mock stopped")
            time.sleep(0.02)

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
