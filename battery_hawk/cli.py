"""The ``battery-hawk`` command: run, demo, scan, read, history, check-config, dlq.

Exit codes: 0 ok, 1 runtime failure, 2 bad usage or bad configuration, 141 the reader
of stdout went away (``| head``): what a shell reports for a program SIGPIPE ended.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import select
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import yaml

from battery_hawk import __version__
from battery_hawk.ble_cli import adapter_name, mac_address
from battery_hawk.config import PASSWORD_ENV, Config, check_storage, load_config
from battery_hawk.errors import BatteryHawkError, ConfigError
from battery_hawk.logs import setup_logging

__all__ = ["main"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
EXIT_PIPE = 141  # 128 + SIGPIPE, as for `yes | head -1`
DEFAULT_CONFIG = "/etc/battery-hawk/battery-hawk.yaml"

_log = logging.getLogger("battery_hawk")


def _logging_options(*, with_config: bool) -> argparse.ArgumentParser:
    """--log-level and --log-format; their default is the config's where there is one."""
    default = "logging.level in the config, else INFO" if with_config else "INFO"
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("--log-level", default=None, metavar="LEVEL", type=str.upper,
                         choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
                         help=f"DEBUG, INFO, WARNING or ERROR (default: {default})")
    fmt_default = "logging.format in the config, else text" if with_config else "text"
    options.add_argument("--log-format", choices=("text", "json"), default=None,
                         help=f"text for a terminal, json for log collectors "
                         f"(default: {fmt_default})")
    return options


def _adapter_option(parser: argparse.ArgumentParser, *, every: bool = False) -> None:
    if every:
        parser.add_argument("--adapter", type=adapter_name, default=None,
                            help="Bluetooth adapter, hci0 or its MAC address (default: every "
                            "adapter BlueZ has)")
        return
    parser.add_argument("--adapter", type=adapter_name, default="hci0",
                        help="Bluetooth adapter, hci0 or its MAC address (default: hci0)")


def _parser() -> argparse.ArgumentParser:
    common = _logging_options(with_config=False)
    configured = _logging_options(with_config=True)
    with_config = argparse.ArgumentParser(add_help=False)
    with_config.add_argument("-c", "--config", default=DEFAULT_CONFIG, metavar="FILE",
                             help=f"YAML configuration (default: {DEFAULT_CONFIG})")

    parser = argparse.ArgumentParser(
        prog="battery-hawk",
        description="Read BLE battery monitors (BM2, BM6, BM7, Victron, Battery Service) "
        "and publish every reading to MQTT, Home-Assistant style.",
        epilog="New here? Try 'battery-hawk demo': no broker, adapter or config needed. "
        "'battery-hawk COMMAND --help' describes each command.",
    )
    parser.add_argument("--version", action="version", version=f"battery-hawk {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run", parents=[configured, with_config], help="run the daemon (what systemd starts)",
        description="Run the daemon with the given configuration until SIGTERM or Ctrl-C; "
        "SIGHUP re-reads the device list. Exits 2 on a bad configuration.")
    run.set_defaults(usage_error=run.error)

    demo = sub.add_parser(
        "demo", parents=[common], help="zero-setup demo: embedded broker and simulated devices",
        description="Start an embedded MQTT broker, simulated devices of every supported "
        "family and the whole daemon pipeline, and show the readings live. Ctrl-C ends it.",
    )
    demo.set_defaults(usage_error=demo.error)
    demo.add_argument("--duration", type=_positive, default=None, metavar="S",
                      help="stop after S seconds (default: run until Ctrl-C)")
    demo.add_argument("--devices", type=_count, default=None, metavar="N",
                      help="number of simulated devices (default: one of each family)")
    demo.add_argument("--port", type=_port, default=1883, metavar="P",
                      help="broker port; a free one is picked if P is taken (default: 1883)")
    demo.add_argument("--interval", type=_interval, default=None, metavar="S",
                      help="seconds between readings of each device (default: 2)")
    demo.add_argument("--fault", choices=("broker",), default=None,
                      help="'broker': stop and restart the embedded broker every 20 s "
                      "(default: no faults)")
    demo.add_argument("--no-live", action="store_true",
                      help="no live view; log lines only, for scripts (default: live view "
                      "on a terminal)")
    demo.add_argument("--storage", default=None, metavar="DIR",
                      help="where seq counters and undelivered messages are kept (default: "
                      "a temporary folder, deleted at the end)")
    demo.add_argument("--broker", default=None, metavar="HOST[:PORT]",
                      help="use this broker (e.g. Home Assistant's) instead of the embedded "
                      "one: HOST[:PORT], [IPV6-ADDRESS][:PORT] or mqtt://HOST[:PORT]; the "
                      "entities appear in Home Assistant and are removed when the demo ends "
                      "(default: the embedded broker; PORT default 1883)")
    demo.add_argument("--username", default=None,
                      help="user name for --broker (default: none)")
    demo.add_argument("--password", default=None,
                      help="password for --broker (default: $BATTERY_HAWK_MQTT_PASSWORD, "
                      "else none)")
    demo.add_argument("--listen", action="store_true",
                      help="let other hosts reach the embedded broker (all interfaces; "
                      "default: localhost only)")

    scan = sub.add_parser(
        "scan", parents=[common], help="list nearby devices and the family each is recognised as",
        description="Listen for BLE advertisements and list every device heard, with the "
        "family battery-hawk recognises it as and why. Stop the daemon first "
        "(sudo systemctl stop battery-hawk): it holds the adapter.")
    scan.set_defaults(usage_error=scan.error)
    scan.add_argument("--timeout", type=_positive, default=10.0, metavar="S",
                      help="seconds to listen (default: 10)")
    _adapter_option(scan, every=True)
    scan.add_argument("--esphome", type=_proxy, default=None, metavar="HOST[:PORT]",
                      help="listen through this ESPHome Bluetooth proxy instead of the adapters "
                      "(port default: 6053)")
    scan.add_argument("--esphome-key", default=None, metavar="BASE64",
                      help="the proxy's `api: encryption: key:` (default: "
                      "$BATTERY_HAWK_ESPHOME_KEY, else none)")
    scan.add_argument("--esphome-password", default=None, metavar="TEXT",
                      help="the proxy's legacy `api: password:` (default: "
                      "$BATTERY_HAWK_ESPHOME_PASSWORD, else none)")

    read = sub.add_parser(
        "read", parents=[common], help="one reading from one device, as JSON",
        description="Connect to one device (or wait for its advertisement), print one "
        "reading as JSON and exit. No broker or config needed. Stop the daemon first.")
    read.set_defaults(usage_error=read.error)
    read.add_argument("address", type=mac_address,
                      help="the device's MAC address, e.g. AA:BB:CC:DD:EE:01")
    read.add_argument("--type", required=True, dest="type_", metavar="T",
                      help="device type (required): bm2, bm6, bm7, victron or bas")
    read.add_argument("--key", default=None, metavar="HEX",
                      help="the device's key, 32 hex digits; required for victron (default: "
                      "the family's built-in key)")
    read.add_argument("--timeout", type=_positive, default=30.0, metavar="S",
                      help="seconds allowed for the whole read (default: 30)")
    _adapter_option(read)

    history = sub.add_parser(
        "history", parents=[common], help="a BM2/BM6/BM7's stored readings, as CSV or JSON lines",
        description="Download the readings a BM2, BM6 or BM7 keeps (one every 2 minutes, "
        "about a day) and print them oldest first. No broker needed.")
    history.set_defaults(usage_error=history.error)
    history.add_argument("address", type=mac_address,
                         help="the device's MAC address, e.g. AA:BB:CC:DD:EE:01")
    history.add_argument("--type", required=True, dest="type_", metavar="T",
                         help="bm2, bm6 or bm7 (or an alias such as bm200, bm300) (required)")
    history.add_argument("--since", type=_span, default=None, metavar="SPAN",
                         help="only the last SPAN, e.g. 90m, 6h, 1d (default: all)")
    history.add_argument("--format", choices=("csv", "jsonl"), default="csv", dest="format_",
                         help="csv or jsonl, one JSON object a line (default: csv)")
    history.add_argument("--key", default=None, metavar="HEX",
                         help="AES key override, 32 hex digits (default: the family's key)")
    history.add_argument("--timeout", type=_positive, default=30.0, metavar="S",
                         help="seconds allowed for the download (default: 30)")
    _adapter_option(history)

    check = sub.add_parser(
        "check-config", parents=[configured, with_config],
        help="validate the configuration and print it, secrets masked",
        description="Validate the configuration (every fault at once, exit 2), check that "
        "storage.path is writable, and print the effective configuration with secrets "
        "masked and each device's id.")
    check.set_defaults(usage_error=check.error)

    dlq = sub.add_parser(
        "dlq", parents=[configured, with_config], help="list, replay or purge dead letters",
        description="Messages the daemon gave up on, kept in the spool under storage.path. "
        "Works while the daemon runs; a replayed message is delivered within seconds.")
    dlq.set_defaults(usage_error=dlq.error)
    dlq.add_argument("action", choices=("list", "replay", "purge"),
                     help="list: show them (id, time, reason, topic); replay: send them to "
                          "the broker again; purge: delete them")
    dlq.add_argument("--id", dest="ids", type=int, action="append", metavar="N",
                     help="only this dead letter (repeatable; default: all)")
    dlq.add_argument("--json", action="store_true",
                     help="list as JSON (default: a table)")
    return parser


def _check_demo_arguments(args: argparse.Namespace) -> None:
    """Options of `demo` that do not go together: a usage error (exit 2)."""
    if getattr(args, "command", None) != "demo":
        return
    if args.broker is None:
        for given, option in ((args.username, "--username"), (args.password, "--password")):
            if given is not None:
                args.usage_error(f"{option} goes with --broker HOST")
        return
    from battery_hawk.demo_broker import split_broker

    try:
        split_broker(args.broker)
    except ValueError as exc:
        args.usage_error(f"--broker: {exc}")
    if args.fault is not None:
        args.usage_error("--fault broker stops the embedded broker; it cannot stop yours")
    if args.listen:
        args.usage_error("--listen is for the embedded broker; yours listens where it does")


def _check_device_arguments(args: argparse.Namespace) -> None:
    """--type and --key of read / history: a bad or missing one is a usage error (exit 2)."""
    if getattr(args, "type_", None) is None:
        return
    from battery_hawk.protocols import (
        DRIVERS,
        VICTRON_KEY_HELP,
        parse_key,
        unknown_type_message,
    )

    type_name = args.type_.strip().lower()
    if type_name not in DRIVERS:
        args.usage_error(f"--type: {unknown_type_message(args.type_)}")
    if args.command == "history":  # the family first: a Victron's key is moot, no history
        from battery_hawk.history.command import history_driver

        try:
            history_driver(type_name)
        except ConfigError as exc:
            args.usage_error(str(exc))
    help_text = f"; {VICTRON_KEY_HELP}" if DRIVERS[type_name].requires_key else ""
    key = None
    if args.key is not None:
        try:
            key = parse_key(args.key)
        except ValueError as exc:
            args.usage_error(f"--key: {exc}{help_text}")
    try:
        DRIVERS[type_name](key)
    except ValueError as exc:
        args.usage_error(f"--key: {exc} (give it as --key HEX){help_text}")


def _number(text: str, kind: type[float] | type[int], lo: float, hi: float) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not lo <= value <= hi:
        raise argparse.ArgumentTypeError(f"{text} is outside {lo:g}..{hi:g}")
    return value


def _positive(text: str) -> float:
    return _number(text, float, 0.001, 1e9)


def _interval(text: str) -> float:
    return _number(text, float, 0.1, 86400)


def _count(text: str) -> int:
    return int(_number(text, int, 1, 10000))


def _port(text: str) -> int:
    return int(_number(text, int, 1, 65535))


def _span(text: str) -> timedelta:
    from battery_hawk.history.command import parse_since

    try:
        return parse_since(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(exc.reason) from None


def _proxy(text: str) -> tuple[str, int]:
    from battery_hawk.esphome.command import parse_proxy  # imports no aioesphomeapi

    return parse_proxy(text)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run a subcommand; returns the exit code.

    A reader of stdout that goes away early (``| head -1``) ends the command quietly
    with EXIT_PIPE, as SIGPIPE ends a C program; see "Note on SIGPIPE" in the Python
    documentation of the signal module.
    """
    try:
        code = _main(argv)
        sys.stdout.flush()  # a reader gone meanwhile shows here, not at interpreter exit
    except BrokenPipeError:
        if not _stdout_gone():
            raise  # a socket's, not ours to hide
        _silence_stdout()
        return EXIT_PIPE
    return code


def _stdout_gone() -> bool:
    """True when stdout is a pipe or socket whose reader has gone (poll reports an error)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return True  # no descriptor to ask (output captured in memory): trust the error
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def _silence_stdout() -> None:
    """Point stdout at /dev/null: what is still buffered must not fail again at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        pass  # no descriptor: nothing is flushed to one at exit either
    finally:
        os.close(devnull)


def _main(argv: Sequence[str] | None) -> int:
    try:
        args = _parser().parse_args(argv)
        _check_device_arguments(args)
        _check_demo_arguments(args)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 for --help
        return int(exc.code or 0)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        if exc.file is None and (exc.key or "").startswith("--"):
            return _usage_error(args, str(exc))  # a command-line option, no file involved
        print(f"battery-hawk: bad configuration: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    except BatteryHawkError as exc:
        print(f"battery-hawk: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def _usage_error(args: argparse.Namespace, message: str) -> int:
    """argparse's own usage error for the command (usage line, then the message); 2."""
    try:
        args.usage_error(message)
    except SystemExit as exc:
        return int(exc.code or EXIT_USAGE)
    return EXIT_USAGE


def _dispatch(args: argparse.Namespace) -> int:
    command: str = args.command
    if command == "dlq":
        from battery_hawk.deadletters import run_dlq

        return run_dlq(load_config(args.config), args.action, args.ids, as_json=args.json)
    if command in ("run", "check-config"):
        config = load_config(args.config)
        setup_logging(args.log_level or config.logging.level,
                      args.log_format or config.logging.format, secrets=config.secrets())
        check_storage(config, args.config)
        if command == "check-config":
            return _check_config(args.config, config)
        from battery_hawk.daemon import run_daemon

        code: int = asyncio.run(run_daemon(config, args.config))
        return code
    setup_logging(args.log_level or "INFO", args.log_format or "text")
    if command == "demo":
        from battery_hawk.demo import DemoOptions, run_demo

        return asyncio.run(run_demo(DemoOptions(
            duration=args.duration, devices=args.devices, port=args.port,
            interval=args.interval, fault=args.fault, live=not args.no_live,
            storage=args.storage, broker=args.broker, username=args.username,
            password=args.password or os.environ.get(PASSWORD_ENV) or None,
            listen=args.listen,
        )))
    if command == "scan" and args.esphome is not None:
        from battery_hawk.esphome.command import scan_proxy_main

        return asyncio.run(scan_proxy_main(args))
    if command == "scan":
        from battery_hawk.ble_cli import scan_main

        return asyncio.run(scan_main(args))
    if command == "history":
        return asyncio.run(_history(args))
    from battery_hawk.ble_cli import read_main

    return asyncio.run(read_main(args))


async def _history(args: argparse.Namespace) -> int:
    from battery_hawk.history.command import history_command

    await history_command(args.adapter, args.address, args.type_, key=_hex_key(args.key),
                          since=args.since, fmt=args.format_, out=sys.stdout,
                          timeout=args.timeout)
    return EXIT_OK


def _hex_key(text: str | None) -> bytes | None:
    try:
        return None if text is None else bytes.fromhex(text)
    except ValueError:
        raise ConfigError("expected a hex string", key="--key") from None


def _check_config(path: str, config: Config) -> int:
    print(f"# {path}: valid. Effective configuration, secrets masked:")
    print(yaml.safe_dump(_plain(config.masked()), sort_keys=False), end="")
    prefix = config.mqtt.topic_prefix
    print(f"# {len(config.devices)} device(s), gateway {config.gateway_id}; "
          "each device's id names its topics:")
    for device in config.devices:
        print(f"#   {device.display_name} ({device.address}, {device.type}): id "
              f"{device.device_id} -> {prefix}/device/{device.device_id}/state")
    return EXIT_OK


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return value
