"""Filling gaps from the monitors' own memory: the ``history`` command and the gap filler."""

from __future__ import annotations

__all__: list[str] = []
