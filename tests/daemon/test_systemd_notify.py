"""sd_notify datagrams arrive at a NOTIFY_SOCKET of the test's own."""

from __future__ import annotations

import socket
from pathlib import Path

from battery_hawk.systemd import Notifier


def test_ready_watchdog_stopping_reach_the_notify_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        server.settimeout(5)
        notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000000"})
        assert notifier.watchdog_interval == 20.0
        notifier.ready()
        notifier.watchdog()
        notifier.stopping()
        got = [server.recv(1024).decode() for _ in range(3)]
    assert got[0].startswith("READY=1") and got[1] == "WATCHDOG=1" and got[2] == "STOPPING=1"


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and notifier.watchdog_interval is None
    notifier.ready()  # must not raise
