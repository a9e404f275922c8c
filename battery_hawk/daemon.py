"""The daemon process around the App: SIGTERM/SIGINT stop it, SIGHUP reloads its devices."""

from __future__ import annotations

import asyncio
import logging
import signal

from battery_hawk.app import App
from battery_hawk.config import Config, load_config
from battery_hawk.errors import BatteryHawkError, ConfigError

__all__ = ["run_daemon"]

_log = logging.getLogger(__name__)


async def run_daemon(config: Config, config_path: str | None = None) -> int:
    """Run until SIGTERM/SIGINT; SIGHUP reloads the device list from config_path."""
    loop = asyncio.get_running_loop()
    app = App(config)
    reload_requested = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, app.request_stop)
    loop.add_signal_handler(signal.SIGINT, app.request_stop)
    if config_path is not None:
        loop.add_signal_handler(signal.SIGHUP, reload_requested.set)
    try:
        await app.start()
    except BatteryHawkError:
        await app.stop()
        raise
    try:
        while not app.stopping:
            waiter = asyncio.create_task(reload_requested.wait(), name="battery-hawk:sighup")
            stopper = asyncio.create_task(app.wait_stopped(), name="battery-hawk:sigterm")
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            stopper.cancel()
            if reload_requested.is_set() and config_path is not None:
                reload_requested.clear()
                await _reload(app, config_path)
    finally:
        await app.stop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    return 0


async def _reload(app: App, path: str) -> None:
    try:
        config = load_config(path)
    except ConfigError as exc:
        _log.error("SIGHUP: keeping the running configuration: %s", exc)
        return
    try:
        await app.reload(config)
    except Exception:
        _log.exception("SIGHUP: applying the new device list failed")

