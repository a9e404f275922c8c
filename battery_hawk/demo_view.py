"""The demo's live view: a table redrawn in the terminal's alternate screen.

It fits the terminal (80x24 at least): columns of lower priority are dropped and the
device name shortened until a row fits, and the header lines (broker, `mosquitto_sub`
hint) always stay on screen. Leaving restores the screen as it was, so nothing is left
in the scrollback. Without a terminal it prints the table every 5 s instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from battery_hawk.models import DeviceReading

if TYPE_CHECKING:
    from battery_hawk.app import App
    from battery_hawk.coordinator import DeviceCoordinator

__all__ = ["LiveView", "render"]

ENTER_ALT_SCREEN = "\x1b[?1049h\x1b[?25l"  # alternate screen, cursor hidden
LEAVE_ALT_SCREEN = "\x1b[?25h\x1b[?1049l"
EVENT_LINES = 4


def _num(value: float | None, unit: str, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}{unit}"


def _main_figure(last: DeviceReading | None) -> str:
    """The AMPS/SUN column: solar power (W) for a charger, else current (A), else nothing."""
    if last is None:
        return ""
    r = last.reading
    if r.solar_power is not None:
        return f"{r.solar_power:.0f}W sun"
    if r.current is not None:
        return f"{r.current:+.1f}A"
    return ""


@dataclass(frozen=True, slots=True)
class _Column:
    title: str
    width: int
    priority: int  # the lowest is dropped first when the row does not fit
    cell: Callable[[DeviceCoordinator, float], str]
    right: bool = False


def _age(c: DeviceCoordinator, now: float) -> str:
    seen = c.status.last_seen
    return "" if seen is None else f"{now - seen:.0f}s"


def _reading(c: DeviceCoordinator) -> DeviceReading | None:
    return c.status.last_reading


COLUMNS: Sequence[_Column] = (
    _Column("DEVICE", 20, 100, lambda c, _: c.info.name),
    _Column("MODEL", 10, 30, lambda c, _: c.info.model),
    _Column("VOLT", 6, 90, lambda c, _: _num(r.reading.voltage if (r := _reading(c)) else None,
                                             "V", 2), right=True),
    _Column("SOC", 4, 80, lambda c, _: _num(r.reading.soc if (r := _reading(c)) else None,
                                            "%", 0), right=True),
    _Column("AMPS/SUN", 9, 85, lambda c, _: _main_figure(_reading(c)), right=True),
    _Column("TEMP", 5, 20, lambda c, _: _num(r.reading.temperature if (r := _reading(c))
                                             else None, "C", 0), right=True),
    _Column("STATE", 11, 40, lambda c, _: str(r.reading.state or "") if (r := _reading(c))
            else ""),
    _Column("SEQ", 5, 10, lambda c, _: str(r.seq) if (r := _reading(c)) else "", right=True),
    _Column("AGE", 4, 50, _age, right=True),
    _Column("AVAIL", 7, 70, lambda c, _: {True: "online", False: "OFFLINE",
                                          None: "waiting"}[c.status.online]),
)
MIN_NAME = 10
COMFORTABLE_NAME = 18  # the name is shortened to this before minor columns are dropped
KEEP_PRIORITY = 60  # columns below this go before the name is shortened further


def _fit(width: int) -> list[_Column]:
    """The columns that fit in ``width`` (one space between), the name shortened first."""
    columns = list(COLUMNS)

    def total(cols: list[_Column]) -> int:
        return sum(c.width for c in cols) + len(cols) - 1

    def shrink_name(floor: int) -> bool:
        name = columns[0]
        cut = min(name.width - floor, total(columns) - width)
        if cut <= 0:
            return False
        columns[0] = _Column(name.title, name.width - cut, name.priority, name.cell)
        return True

    while total(columns) > width:
        minor = [c for c in columns[1:] if c.priority < KEEP_PRIORITY]
        if shrink_name(COMFORTABLE_NAME):
            continue
        if minor:
            columns.remove(min(minor, key=lambda c: c.priority))
        elif not shrink_name(MIN_NAME):
            if len(columns) == 1:
                break
            columns.remove(min(columns[1:], key=lambda c: c.priority))
    return columns


def _cell(text: str, column: _Column) -> str:
    if len(text) > column.width:
        text = text[: column.width - 1] + "~"
    return text.rjust(column.width) if column.right else text.ljust(column.width)


def _clip(line: str, width: int) -> str:
    return line if len(line) <= width else line[: width - 1] + "~"


def render(app: App, broker_up: bool, now: float, width: int = 79, height: int = 23,
           header: Sequence[str] = (), events: Sequence[str] = ()) -> list[str]:
    """The view as lines, none longer than ``width``, at most ``height`` of them."""
    lines = [_clip(line, width) for line in header]
    if app.mqtt is not None:
        s = app.mqtt.stats
        lines.append(_clip(
            f"MQTT {s.connection_state.value} | broker {'up' if broker_up else 'DOWN'} | "
            f"queue {s.queue_size} | sent {s.messages_published} | "
            f"reconnections {s.total_reconnections} | dropped {s.messages_dropped}", width))
    columns = _fit(width)
    lines.append(" ".join(_cell(c.title, c) for c in columns).rstrip())
    coordinators = list(app.coordinators.values())
    room = max(1, height - len(lines) - 1 - EVENT_LINES)
    shown = coordinators if len(coordinators) <= room else coordinators[: room - 1]
    for coordinator in shown:
        lines.append(" ".join(_cell(c.cell(coordinator, now), c) for c in columns).rstrip())
    if len(shown) < len(coordinators):
        online = sum(1 for c in coordinators if c.status.online)
        lines.append(f"... and {len(coordinators) - len(shown)} more "
                     f"({online} of {len(coordinators)} online)")
    lines.append("Recent events:" if events else "Recent events: (none yet)")
    for event in list(events)[-max(0, height - len(lines)):]:
        lines.append(_clip("  " + event, width))
    return lines[:height]


class _RecentLog(logging.Handler):
    """Keeps the last few log lines for the view (they would scroll it away)."""

    def __init__(self, size: int = EVENT_LINES - 1) -> None:
        super().__init__(logging.INFO)
        self.lines: deque[str] = deque(maxlen=size)
        self.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


class LiveView:
    """The view's screen: ``with view:`` enters the alternate screen and routes log lines
    into the view (from before the daemon starts until after it stopped); ``run`` redraws.
    """

    def __init__(self, out: TextIO, header: Sequence[str]) -> None:
        self.out = out
        self.header = header
        self.tty = out.isatty()
        self._recent = _RecentLog()
        self._saved: list[logging.Handler] = []

    def __enter__(self) -> LiveView:
        if self.tty:
            root = logging.getLogger()
            self._saved = root.handlers[:]
            root.handlers[:] = [self._recent]
            logging.captureWarnings(True)  # a warning printed raw would scribble on the view
            self.out.write(ENTER_ALT_SCREEN)
            self.out.flush()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.tty:
            self.out.write(LEAVE_ALT_SCREEN)
            self.out.flush()
            logging.getLogger().handlers[:] = self._saved
            logging.captureWarnings(False)

    def _size(self) -> os.terminal_size:
        """The terminal's own size (a stale $COLUMNS / $LINES must not widen the view)."""
        try:
            return os.get_terminal_size(self.out.fileno())
        except (OSError, ValueError):
            return shutil.get_terminal_size()

    async def run(self, app: App, broker_up: Callable[[], bool]) -> None:
        """Redraw every second on a terminal; print the table every 5 s otherwise."""
        while True:
            if self.tty:
                size = self._size()
                lines = render(app, broker_up(), time.monotonic(), size.columns - 1,
                               size.lines - 1, self.header, self._recent.lines)
                self.out.write("\x1b[H" + "".join(line + "\x1b[K\n" for line in lines)
                               + "\x1b[J")
            else:
                lines = render(app, broker_up(), time.monotonic(), 200, 1000)
                self.out.write("\n".join(lines[:-1]) + "\n\n")
            self.out.flush()
            await asyncio.sleep(1.0 if self.tty else 5.0)
