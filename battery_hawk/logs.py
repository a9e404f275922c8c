"""Logging set-up: readable text for a terminal, one JSON object a line for log collectors.

Context fields (``device_id``, ``address``, ``gateway_id``, ``adapter``) are set per task
with ``bind`` / ``log_context`` (a ContextVar, so a task and the tasks it starts share
them, and concurrent device loops do not mix them up); JSON lines carry them as keys.

Under journald (``JOURNAL_STREAM`` names our stderr) every line starts with its syslog
priority, ``<4>`` for a warning and so on (sd-daemon(3)), so ``journalctl -p warning``
filters by level; journald strips the prefix and keeps its own timestamp, so the text
format then leaves the time out.

Secrets handed to ``setup_logging`` (MQTT password, device keys, admin token) are replaced
by ``***`` in every line, whatever logged them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import IO

__all__ = ["CONTEXT_FIELDS", "bind", "current_context", "log_context", "setup_logging",
           "under_journald"]

CONTEXT_FIELDS = ("device_id", "address", "gateway_id", "adapter")

_EMPTY: Mapping[str, str] = MappingProxyType({})
_CONTEXT: ContextVar[Mapping[str, str]] = ContextVar("battery_hawk_log_context", default=_EMPTY)

# logging level -> syslog priority (sd-daemon(3) SD_ERR ... SD_DEBUG)
_PRIORITY = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
             (logging.INFO, 6))


def _merged(fields: Mapping[str, str | None]) -> Mapping[str, str]:
    current = dict(_CONTEXT.get())
    for key, value in fields.items():
        if key not in CONTEXT_FIELDS:
            raise ValueError(f"unknown log context field {key!r}")
        if value is None:
            current.pop(key, None)
        else:
            current[key] = str(value)
    return MappingProxyType(current)


def bind(**fields: str | None) -> None:
    """Set context fields for the rest of the current task (and tasks it starts later)."""
    _CONTEXT.set(_merged(fields))


@contextlib.contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Set context fields for the ``with`` block only."""
    token = _CONTEXT.set(_merged(fields))
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def current_context() -> Mapping[str, str]:
    return _CONTEXT.get()


def under_journald(stream: IO[str] | None = None,
                   environ: Mapping[str, str] | None = None) -> bool:
    """True when ``stream`` (stderr) is the journal stream systemd gave us."""
    env = os.environ if environ is None else environ
    expected = env.get("JOURNAL_STREAM")
    if not expected:
        return False
    try:
        fd = (stream or sys.stderr).fileno()
        info = os.fstat(fd)
    except (OSError, ValueError, AttributeError):
        return False
    return expected == f"{info.st_dev}:{info.st_ino}"


def _priority(levelno: int) -> int:
    for level, priority in _PRIORITY:
        if levelno >= level:
            return priority
    return 7


class _Formatter(logging.Formatter):
    """Text or JSON, with context fields, secrets masked and optional syslog prefixes."""

    def __init__(self, *, json_lines: bool, journal: bool, secrets: Iterable[str]) -> None:
        text = "%(levelname)-7s %(name)s: %(message)s"
        super().__init__(text if journal else f"%(asctime)s {text}")
        self._json = json_lines
        self._journal = journal
        # longest first, so a secret that contains another is masked whole
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        context = _CONTEXT.get()
        if self._json:
            entry: dict[str, object] = {
                "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                    timespec="milliseconds"),
                "level": record.levelname,
                "logger": record.name,
                "message": record.getMessage(),
                **context,
            }
            if record.exc_info:
                entry["exception"] = self.formatException(record.exc_info)
            line = json.dumps(entry, ensure_ascii=False)
        else:
            line = super().format(record)
        for secret in self._secrets:
            line = line.replace(secret, "***")
        if self._journal:
            prefix = f"<{_priority(record.levelno)}>"
            line = "\n".join(prefix + part for part in line.split("\n"))
        return line


def setup_logging(level: str = "INFO", fmt: str = "text", *, secrets: Iterable[str] = (),
                  stream: IO[str] | None = None) -> None:
    """Configure the root logger once, on stderr (or ``stream``)."""
    out = stream or sys.stderr
    handler = logging.StreamHandler(out)
    handler.setFormatter(_Formatter(json_lines=fmt == "json", journal=under_journald(out),
                                    secrets=secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
