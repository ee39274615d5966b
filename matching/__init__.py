"""Normalising identifiers, keyed hashing, the DuckDB store, linking and exposure."""

from __future__ import annotations

from matching.keyed_hash import Pepper, hash_keys, keyed_hash
from matching.store import Store, StoreError

__all__ = ["Pepper", "Store", "StoreError", "hash_keys", "keyed_hash"]
