"""Faults and hostile input, measured: crash points, one writer, hostile corpus, sweeps, reversal."""

from __future__ import annotations

__all__: list[str] = []
