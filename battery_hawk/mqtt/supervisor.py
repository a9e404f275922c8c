"""Named, owned background tasks and the logged connection state of the interface."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable
from typing import Any

from .settings import ConnectionState

__all__ = ["Supervisor", "raise_if_cancelled", "stop_tasks"]

_LOG = logging.getLogger("battery_hawk.mqtt")
_TASK_PREFIX = "battery-hawk-mqtt-"
# stop_tasks cancels again after every round this long: a task whose cancellation was
# swallowed (see raise_if_cancelled) still ends, at the latest at its next await.
_STOP_ROUND = 1.0


class Supervisor:
    """Owns the interface's tasks and its ConnectionState (each change logged once)."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._state = ConnectionState.DISCONNECTED
        self._consecutive_failures = 0
        self._last_attempt: float | None = None
        self._last_error: str | None = None

    def _spawn(
        self, coro: Coroutine[Any, Any, None], name: str, *, owned: bool = True
    ) -> asyncio.Task[None]:
        """Start a named task. ``owned`` ones are stopped by _stop_tasks; the others
        belong to the task that spawned them, which cancels and awaits them."""
        task = asyncio.get_running_loop().create_task(coro, name=_TASK_PREFIX + name)
        task.add_done_callback(_report_crash)
        if owned:
            self._tasks[name] = task
        return task

    @property
    def alive(self) -> bool:
        """True while every background task of the interface is running (for watchdogs)."""
        return bool(self._tasks) and all(not task.done() for task in self._tasks.values())

    async def _stop_tasks(self, *names: str) -> None:
        """Cancel the named owned tasks and wait until they have ended."""
        await stop_tasks(self._tasks.pop(name) for name in names if name in self._tasks)

    def _set_state(self, state: ConnectionState, reason: str | None = None) -> None:
        if state is self._state:
            return
        previous, self._state = self._state, state
        host = getattr(self, "broker", None)
        where = f"{host.host}:{host.port}" if host is not None else "broker"
        if state is ConnectionState.CONNECTED:
            _LOG.info("MQTT connected to %s (was %s%s)", where, previous.value,
                      f", {reason}" if reason else "")
        elif state is ConnectionState.RECONNECTING:
            _LOG.warning("MQTT connection to %s lost (%s); reconnecting", where, reason)
        elif state is ConnectionState.FAILED:
            every = getattr(getattr(self, "config", None), "max_retry_delay", None)
            _LOG.error("MQTT connection to %s FAILED after %d attempts (%s); "
                       "still retrying every %s", where, self._consecutive_failures, reason,
                       "few minutes" if every is None else f"{every:g} s")
        else:
            _LOG.info("MQTT %s: %s", where, state.value)


async def stop_tasks(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until every one has ended.

    Waits in rounds and cancels what is still running after each: one cancel() can
    be lost (on Python 3.11 asyncio.wait_for swallows one that arrives together with
    the result it waits for), and waiting for such a task without a bound is what
    hung shutdown.
    """
    pending = set(tasks)
    rounds = 0
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=_STOP_ROUND)
        rounds += 1
        if pending:
            names = ", ".join(sorted(task.get_name() for task in pending))
            if rounds == 5:
                _LOG.warning("%s still running %.0f s after cancel", names,
                             rounds * _STOP_ROUND)
            else:
                _LOG.debug("%s still running after cancel; cancelling again", names)


def raise_if_cancelled() -> None:
    """Raise CancelledError if the current task was cancelled but carries on anyway.

    Call after an await whose callee may have swallowed the cancellation (asyncio's
    wait_for on 3.11 does, when the awaited result arrives in the same loop
    iteration). ``cancelling()`` still counts the request, so it can be honoured here.
    Not for ``finally`` blocks or other clean-up that runs while a cancel is handled.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _report_crash(task: asyncio.Task[None]) -> None:
    """Log a task that died of a bug (this also marks its exception as retrieved)."""
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        _LOG.error("task %s crashed", task.get_name(), exc_info=exc)
