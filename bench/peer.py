"""The naive peer: pandas reads both files, then phonenumbers, schwifty and hmac row by row."""

from __future__ import annotations

import hashlib
import hmac
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import phonenumbers
from schwifty import IBAN
from schwifty.exceptions import SchwiftyException

from synthetic import COLUMN_CATEGORIES

__all__ = ["PeerResult", "run_peer"]

_LEAK_KEYS = {"email": "email", "telephone": "phone", "iban": "iban"}
_CUSTOMER_KEYS = {"email": "email", "phone": "phone", "iban": "iban"}


@dataclass(frozen=True)
class PeerResult:
    """Seconds for the customer side and for the leak side (file to exposures) on ``rows``."""

    rows: int
    customers_s: float
    leak_s: float
    exposed: int


def _email(value: str) -> str | None:
    text = value.strip().lower()
    return text if text.count("@") == 1 else None


def _phone(value: str) -> str | None:
    try:
        number = phonenumbers.parse(value, "FR")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _iban(value: str) -> str | None:
    try:
        return IBAN(value, validate_bban=True).compact
    except (SchwiftyException, ValueError):
        return None


_NORMALISE = {"email": _email, "phone": _phone, "iban": _iban}


def _keys(frame: pd.DataFrame, columns: dict[str, str], secret: bytes) -> pd.DataFrame:
    """(position, kind, key) for every valid identifier, one row at a time."""
    positions: list[int] = []
    kinds: list[str] = []
    keys: list[bytes] = []
    for column, kind in columns.items():
        normalise = _NORMALISE[kind]
        for position, value in enumerate(frame[column]):
            if not value or not value.strip():
                continue
            canonical = normalise(value)
            if canonical is None:
                continue
            message = f"{kind}:{canonical}".encode()
            positions.append(position)
            kinds.append(kind)
            keys.append(hmac.new(secret, message, hashlib.sha256).digest()[:16])
    return pd.DataFrame({"position": positions, "kind": kinds, "key": keys})


def run_peer(customers: Path, leak: Path, secret: bytes, *, nrows: int | None) -> PeerResult:
    """Time both sides; ``nrows`` reads only the first rows of each file (a sample)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # schwifty warns on national checksums it cannot verify
        started = time.perf_counter()
        base = pd.read_csv(customers, dtype=str, keep_default_na=False, nrows=nrows)
        customer_keys = _keys(base, _CUSTOMER_KEYS, secret)
        customer_keys["customer_id"] = base["customer_id"].to_numpy()[customer_keys["position"]]
        customer_keys = customer_keys.drop(columns="position")
        customers_done = time.perf_counter()

        rows = pd.read_csv(
            leak, sep=";", encoding="cp1252", dtype=str, keep_default_na=False, nrows=nrows
        )
        mask = pd.Series(0, index=rows.index, dtype="int64")
        for bit, column in enumerate(COLUMN_CATEGORIES):
            mask |= (rows[column].str.strip() != "").astype("int64") * (1 << bit)
        leak_keys = _keys(rows, _LEAK_KEYS, secret)
        leak_keys["categories"] = mask.to_numpy()[leak_keys["position"]]
        matched = leak_keys.merge(customer_keys, on=["kind", "key"])
        exposures = matched.groupby("customer_id").agg(
            matched_on=("kind", lambda k: ";".join(sorted(set(k)))),
            categories=("categories", lambda c: int(np.bitwise_or.reduce(c.to_numpy()))),
        )
        done = time.perf_counter()
    return PeerResult(
        rows=len(rows),
        customers_s=customers_done - started,
        leak_s=done - customers_done,
        exposed=len(exposures),
    )
