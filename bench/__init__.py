"""``python -m bench``: leakwatch against a naive peer and the bare limit, on synthetic data."""

from __future__ import annotations

__all__ = ["RESULT_KEYS", "BenchResult", "main"]

from bench.cli import RESULT_KEYS, BenchResult, main
