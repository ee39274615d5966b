"""The wider vectorised stages (overseas phones, ES/IT/BE national checks) equal the references."""

from __future__ import annotations

import random

import numpy as np
import polars as pl

from matching.ibans import _vectorised_national, normalise_iban, normalise_ibans
from matching.phones import normalise_phone, normalise_phones
from synthetic.operator import draw_ibans

_FORMS = ("0{}", "+33{}", "0033{}", "33{}", "{}", "+33 (0){}", "+262{}", "+590 {}", "+594{}")
_MORE_FORMS = ("+596{}", "+508{}")


def test_nine_digit_numbers_of_every_prefix_equal_the_reference() -> None:
    rng = random.Random(11)
    values = [
        rng.choice(_FORMS + _MORE_FORMS).format(f"{prefix}{rng.randrange(10**6):06d}")
        for prefix in range(100, 1000)
        for _ in range(4)
    ]
    got = normalise_phones(pl.Series(values)).rows()
    assert got == [normalise_phone(v) for v in values]


def test_bare_national_strings_of_every_length_equal_the_reference() -> None:
    rng = random.Random(12)
    values = [
        "0" + "".join(rng.choice("0123456789") for _ in range(length))
        for length in range(1, 19)
        for _ in range(40)
    ]
    values += [
        "+" + rng.choice(["262", "590", "594", "596", "508"]) + str(rng.randrange(10**9))
        for _ in range(300)
    ]
    got = normalise_phones(pl.Series(values)).rows()
    assert got == [normalise_phone(v) for v in values]


def _fix_mod97(iban: str) -> str:
    """The same BBAN with correct IBAN check digits: only the national check can fail."""
    digits = "".join(str(int(c, 36)) for c in iban[4:] + iban[:2] + "00")
    return f"{iban[:2]}{98 - int(digits) % 97:02d}{iban[4:]}"


def test_spanish_italian_belgian_national_checks_equal_schwifty() -> None:
    assert _vectorised_national() == {"ES", "IT", "BE"}
    rng = random.Random(13)
    good = [
        iban
        for iban in draw_ibans(np.random.default_rng(14), 6000).to_list()
        if iban[:2] in {"ES", "IT", "BE"}
    ]
    values = list(good)
    for iban in good:
        at = rng.randrange(4, len(iban))
        values.append(_fix_mod97(iban[:at] + rng.choice("0123456789AZ") + iban[at + 1 :]))
    got = normalise_ibans(pl.Series(values)).rows()
    expected = [normalise_iban(v) for v in values]
    assert got == expected
    reasons = {reason for _, reason in expected}
    assert "IBAN national check digits fail" in reasons
    assert None in reasons
