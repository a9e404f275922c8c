"""YAML into typed dataclasses: types, ranges, choices and unknown keys checked per key.

The machinery behind battery_hawk.config: every fault becomes a ConfigError naming the key
path, and the loader goes on so that one run reports them all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping
from typing import Any

import yaml

from battery_hawk.errors import ConfigError
from battery_hawk.hosts import host_problem

__all__ = ["Invalid", "Loader", "UniqueKeyLoader", "yaml_hint"]

_MAC = re.compile(r"^[0-9A-F]{2}([:-])[0-9A-F]{2}(\1[0-9A-F]{2}){4}$")


def mac_address(text: str) -> str | None:
    """``text`` as a MAC address in the form BlueZ uses (AA:BB:CC:DD:EE:FF), or None.

    Colons or dashes (as Windows and some phone apps show it), either case.
    """
    upper = text.strip().upper()
    return upper.replace("-", ":") if _MAC.match(upper) else None
_ID = re.compile(r"^[A-Za-z0-9_-]+$")


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping.

    YAML says keys are unique; PyYAML keeps the last silently, so a second ``mqtt:`` or
    ``type:`` would quietly override the first. Keys brought in by a merge (``<<: *x``)
    may still be overridden, as YAML intends.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: construct_mapping reports it
                continue
            seen[key] = key_node.start_mark.line
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} is given twice in one mapping (first at line "
                    f"{first + 1}); keep one", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


class Invalid(Exception):
    """A value failed; its ConfigError is already in the loader's problems."""


class Loader:
    """Builds a dataclass from YAML data, checking types, ranges and unknown keys.

    Every fault is recorded in ``problems`` and the loader goes on with the next key, so
    one run reports them all; ``build`` raises Invalid if anything failed.
    """

    def __init__(self, file: str | None, problems: list[ConfigError]) -> None:
        self.file = file
        self.problems = problems
        self.kept: dict[str, list[int]] = {}  # list path -> the indices of items built

    def fail(self, path: str, message: str) -> typing.NoReturn:
        self.problems.append(ConfigError(message, file=self.file, key=path or None))
        raise Invalid

    def build(self, cls: type[Any], data: object, path: str) -> Any:
        if not isinstance(data, dict):
            self.fail(path, f"expected a mapping, got {_kind(data)}")
        hints = typing.get_type_hints(cls)
        known = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for raw_key, raw_value in data.items():
            key = str(raw_key)
            here = f"{path}.{key}" if path else key
            spec = known.get(key)
            try:
                if spec is None:
                    self.fail(here, f"unknown key (known: {', '.join(known)})")
                before = len(self.problems)
                try:
                    values[key] = self.value(hints[key], raw_value, here, spec.metadata)
                except Invalid:
                    if len(self.problems) == before + 1:
                        self.problems[-1] = self._with_key_help(cls, data, key,
                                                                self.problems[-1])
                    raise
            except Invalid:
                pass  # recorded; the field keeps its default so later checks still run
        complete = True
        for name, spec in known.items():
            no_default = (spec.default is dataclasses.MISSING
                          and spec.default_factory is dataclasses.MISSING)
            if name not in values and no_default:
                complete = False
                if name not in data:
                    with contextlib.suppress(Invalid):
                        self.fail(f"{path}.{name}" if path else name, "missing required key")
        if not complete:
            raise Invalid
        return cls(**values)

    def _with_key_help(
        self, cls: type[Any], data: Mapping[Any, Any], key: str, exc: ConfigError
    ) -> ConfigError:
        """A hook: the error for ``key`` of ``cls``, with any help a subclass can add."""
        return exc

    def value(self, hint: Any, raw: object, path: str, meta: Mapping[str, Any]) -> Any:
        optional = False
        origin = typing.get_origin(hint)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            optional = len(args) < len(typing.get_args(hint))
            hint = args[0]
            origin = typing.get_origin(hint)
        if raw is None:
            if optional:
                return None
            self.fail(path, "must not be null")
        if dataclasses.is_dataclass(hint):
            return self.build(typing.cast(type[Any], hint), raw, path)
        if origin is tuple:
            if not isinstance(raw, list):
                self.fail(path, f"expected a list, got {_kind(raw)}")
            item = typing.get_args(hint)[0]
            items, kept = [], []
            for i, v in enumerate(raw):  # every item is checked, not only up to a bad one
                with contextlib.suppress(Invalid):  # an item that cannot be built is left out
                    items.append(self.value(item, v, f"{path}[{i}]", {}))
                    kept.append(i)
            self.kept[path] = kept
            return tuple(items)
        return self.scalar(hint, raw, path, meta)

    def scalar(self, hint: Any, raw: object, path: str, meta: Mapping[str, Any]) -> Any:
        leaf = path.rsplit(".", 1)[-1]
        if hint is bool:
            if not isinstance(raw, bool):
                self.fail(path, f"expected true or false, got {_kind(raw)}")
            return raw
        if hint is bytes:  # device keys: hex strings
            from battery_hawk.protocols import parse_key

            try:
                return parse_key(str(raw))
            except ValueError as exc:
                self.fail(path, str(exc))
        if hint in (int, float):
            if isinstance(raw, str):
                self.fail(
                    path,
                    f"expected a number, got the string {raw!r}; write the number alone, "
                    "without quotes or a unit, with a point for decimals (60, 11.8)",
                )
            if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                self.fail(path, f"expected a number, got {_kind(raw)}")
            if hint is int and not float(raw).is_integer():
                self.fail(path, f"expected a whole number, got {raw}")
            number = hint(raw)
            if not math.isfinite(number):
                self.fail(path, f"expected a finite number, got {raw}")
            self.check_range(number, path, meta)
            if "one_of" in meta and number not in meta["one_of"]:
                self.fail(path, f"must be one of {', '.join(map(str, meta['one_of']))}, "
                          f"got {raw}")
            return number
        if not isinstance(raw, (str, int, float)) or isinstance(raw, bool):
            self.fail(path, f"expected a string, got {_kind(raw)}")
        text = str(raw)
        if "choices" in meta:
            normalised = text.upper() if leaf == "level" else text.lower()
            if normalised not in meta["choices"]:
                self.fail(path, f"{text!r} is not one of {', '.join(meta['choices'])}")
            return normalised
        if leaf == "address" and isinstance(raw, int):
            # YAML 1.1 reads an unquoted 12:34:56:78:90:12 as a base-60 number
            self.fail(path, "YAML read this unquoted MAC address as a number: quote it, "
                      'e.g. address: "12:34:56:78:9A:BC"')
        if leaf == "address":
            mac = mac_address(text)
            if mac is None:
                self.fail(path, f"{raw!r} is not a MAC address like AA:BB:CC:DD:EE:FF")
            text = mac
        elif leaf in ("id", "gateway_id") and not _ID.match(text):
            what = "is empty" if not text else "may hold only letters, digits, '-' and '_'"
            example = ("garage-pi (left out, it is the host name)" if leaf == "gateway_id"
                       else "van")
            self.fail(path, f"{text!r} {what}; e.g. {example}")
        elif leaf in ("topic_prefix", "discovery_prefix") and (
            not text or any(c in text for c in "+#") or text.startswith("/")
            or text.endswith("/")
        ):
            default = "battery_hawk" if leaf == "topic_prefix" else "homeassistant"
            self.fail(path, f"{text!r} is not a valid MQTT topic prefix: it must not be empty, "
                      f"hold + or #, or start or end with '/'; e.g. {default}")
        elif leaf in ("broker", "listen", "host") and (
            problem := host_problem(text, path.rpartition(".")[0] + ".port")
        ):
            self.fail(path, problem)
        elif leaf == "type":
            text = text.lower()
        return self.check_text(leaf, text, path)

    def check_text(self, leaf: str, text: str, path: str) -> str:
        """A hook: check (or normalise) a string value by its key; ``fail`` to refuse it."""
        return text

    def check_range(self, number: float, path: str, meta: Mapping[str, Any]) -> None:
        lo, hi = meta.get("lo"), meta.get("hi")
        if lo is not None:
            if meta.get("above") and number <= lo:
                self.fail(path, f"must be greater than {lo}, got {number}")
            if number < lo:
                self.fail(path, f"must be at least {lo}, got {number}")
        if hi is not None and number > hi:
            self.fail(path, f"must be at most {hi}, got {number}")


def yaml_hint(problem: str) -> str:
    """How to fix the YAML mistakes people make most, from PyYAML's problem text."""
    if "'\\t'" in problem:
        return "; YAML indents with spaces only: replace the tab with spaces"
    if "mapping values are not allowed" in problem:
        return (
            "; check this line's indentation against the line above (keys of one "
            "mapping start in the same column), and quote a value that holds ': '"
        )
    return ""


def _kind(value: object) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
