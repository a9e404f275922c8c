"""Dead letters for people: ``battery-hawk dlq list|replay|purge`` and the HTTP routes.

A dead letter is a message the daemon gave up on (it failed ``mqtt.message_retry_limit``
sends, e.g. because the broker drops the connection whenever it arrives). It is kept in
the spool file's ``dead_letters`` table with the reason and time. The command works on
that file directly, also while the daemon runs (SQLite in WAL mode allows it); a replayed
letter goes back to the outgoing messages, and a running daemon picks it up within a few
seconds (a stopped one at its next start).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from battery_hawk.config import Config
from battery_hawk.mqtt.spool import SPOOL_FILE, DeadLetter, SpoolFile

if TYPE_CHECKING:
    from battery_hawk.http import HttpServer
    from battery_hawk.http.routes import Request, Response
    from battery_hawk.mqtt import MQTTInterface

__all__ = ["letter_doc", "register_routes", "run_dlq"]

_PREVIEW = 200  # characters of payload shown by list


def letter_doc(letter: DeadLetter) -> dict[str, object]:
    """A dead letter as JSON-ready data (payload as text when it is UTF-8, else hex)."""
    try:
        payload: str = letter.payload.decode("utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError:
        payload, encoding = letter.payload.hex(), "hex"
    return {
        "id": letter.id,
        "topic": letter.topic,
        "payload": payload,
        "payload_encoding": encoding,
        "size": len(letter.payload),
        "qos": letter.qos,
        "retain": letter.retain,
        "reason": letter.reason,
        "failures": letter.failures,
        "published_at": _iso(letter.enqueued_at),
        "dead_at": _iso(letter.dead_at),
    }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


# ---- the command ------------------------------------------------------------------------

def run_dlq(config: Config, action: str, ids: Sequence[int] | None = None, *,
            as_json: bool = False, out: TextIO | None = None,
            err: TextIO | None = None) -> int:
    """``battery-hawk dlq ACTION``: list, replay or purge; returns the exit code.

    0, or 1 when an id asked for names no dead letter (said on ``err``; the ids that do
    exist are still acted on, as ``rm`` removes the files that exist).
    ``out`` and ``err`` default to sys.stdout and sys.stderr as they are at the call.
    Raises SpoolError (exit 1 in the CLI) when the spool file cannot be used.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    wanted = sorted(set(ids)) if ids else None
    path = Path(config.storage.path) / SPOOL_FILE
    if not path.exists():
        if action == "list" and as_json:
            out.write("[]\n")
        else:
            out.write(f"no spool at {path}: no dead letters\n")
        return _missing(wanted or [], err)
    spool = SpoolFile(path, check=False)
    try:
        held = spool.dead_letters()
        missing = [] if wanted is None else sorted(
            set(wanted) - {letter.id for letter in held})
        if action == "list":
            letters = held if wanted is None else [x for x in held if x.id in wanted]
            _print_letters(letters, as_json, out)
        elif action == "replay":
            count = spool.replay_dead_letters(wanted)
            out.write(f"{count} dead letter(s) queued for delivery again\n")
        elif action == "purge":
            count = spool.purge_dead_letters(wanted)
            out.write(f"{count} dead letter(s) deleted\n")
        else:
            raise ValueError(f"unknown dlq action {action!r}")
    finally:
        spool.close()
    return _missing(missing, err)


def _missing(ids: Sequence[int], err: TextIO) -> int:
    """Say which ids name no dead letter; the exit code (1 if any, else 0)."""
    if not ids:
        return 0
    err.write(f"battery-hawk dlq: no dead letter with id {', '.join(map(str, ids))} "
              "(`battery-hawk dlq list` shows the ids there are)\n")
    return 1


def _print_letters(letters: list[DeadLetter], as_json: bool, out: TextIO) -> None:
    if as_json:
        json.dump([letter_doc(letter) for letter in letters], out, ensure_ascii=False)
        out.write("\n")
        return
    if not letters:
        out.write("no dead letters\n")
        return
    out.write(f"{'id':>6}  {'dead at':24}  {'reason':11}  {'tries':>5}  {'bytes':>7}  topic\n")
    for letter in letters:
        doc = letter_doc(letter)
        out.write(f"{letter.id:>6}  {doc['dead_at']!s:24}  {letter.reason:11}  "
                  f"{letter.failures:>5}  {len(letter.payload):>7}  {letter.topic}\n")
        preview = str(doc["payload"])
        if len(preview) > _PREVIEW:
            preview = preview[:_PREVIEW] + "..."
        out.write(f"{'':8}{preview}\n")


# ---- the HTTP routes ------------------------------------------------------------------

def register_routes(server: HttpServer, mqtt: MQTTInterface | None) -> None:
    """``GET /api/dead-letters`` and (admin) ``POST /api/dead-letters/replay``.

    The replay body may be empty (every letter) or JSON ``{"ids": [1, 2]}``; ids that
    name no dead letter answer 404 ``{"replayed": n, "missing": [ids], "error": ...}``.
    """
    from battery_hawk.http.routes import json_response

    async def list_letters(_request: Request) -> Response:
        letters = await mqtt.dead_letters() if mqtt is not None else []
        spool = mqtt is not None and mqtt.stats.spool_enabled
        return json_response({"spool": spool, "count": len(letters),
                              "dead_letters": [letter_doc(x) for x in letters]})

    async def replay(request: Request) -> Response:
        ids: list[int] | None = None
        if request.body.strip():
            try:
                doc = json.loads(request.body)
                raw = doc.get("ids") if isinstance(doc, dict) else None
                if raw is not None:
                    if not isinstance(raw, list) or not all(
                            isinstance(i, int) and not isinstance(i, bool) for i in raw):
                        raise ValueError("ids must be a list of integers")
                    ids = list(raw)
            except ValueError as exc:
                return json_response({"error": f"bad body: {exc}"}, HTTPStatus.BAD_REQUEST)
        missing: list[int] = []
        if ids is not None:
            held = {x.id for x in await mqtt.dead_letters()} if mqtt is not None else set()
            missing = sorted(set(ids) - held)
        count = await mqtt.replay_dead_letters(ids) if mqtt is not None else 0
        if missing:  # as the command's exit 1: the letters that exist are still replayed
            return json_response({"replayed": count, "missing": missing,
                                  "error": "no dead letter with these ids"},
                                 HTTPStatus.NOT_FOUND)
        return json_response({"replayed": count})

    server.add_route("GET", "/api/dead-letters", list_letters)
    server.add_route("POST", "/api/dead-letters/replay", replay, admin=True)
