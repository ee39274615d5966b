"""schwifty's German check methods as the tables of the native check (matching/_german.h).

A method is native only when every function its schwifty class resolves to (validate,
compute, get_digits, compute_summand… along the MRO) is one that _german.h reproduces; its
numbers (weights, positions, modulus, minuend) are read from the class. Every other method
stays with schwifty: its bank codes are marked ``SCHWIFTY`` and the caller runs schwifty's
algorithm on their values. tests/matching/test_german_checks.py compares the native check with
schwifty's ``validate`` for every bank code of the registry.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from schwifty.checksum import Algorithm, germany
from schwifty.domain import Component

from matching.native import scan_module

__all__ = [
    "BBAN_LENGTH",
    "SCHWIFTY",
    "UNCHECKED",
    "GermanTables",
    "build_tables",
    "native_check",
]

BBAN_LENGTH = 18
UNCHECKED = 254
"""A bank code whose method schwifty has no algorithm for: accepted unchecked."""
SCHWIFTY = 255
"""A bank code whose method the native check does not reproduce: schwifty decides."""

_WEIGHTS = 10
_VARIANTS = 4
_WEIGHTED_BYTES = 14 + _WEIGHTS
_MAX_METHODS = 250
_NO_MINUEND = 255
_ACCOUNT_LENGTH = 10

# _german.h's codes, by the schwifty function each one reproduces.
_W = germany.WeightedModulus
_SUMMANDS: dict[Callable[..., Any], int] = {
    _W.compute_summand: 0,
    germany.Algorithm00.compute_summand: 1,
    germany.Algorithm17.compute_summand: 1,
    germany.Algorithm63.compute_summand: 1,
    germany.Algorithm22.compute_summand: 2,
    germany.Algorithm24.compute_summand: 3,
}
_SUMS: dict[Callable[..., Any], int] = {
    _W.compute_weighted_sum: 0,
    germany.Algorithm17.compute_weighted_sum: 1,
}
_REMAINDERS: dict[Callable[..., Any], int] = {
    _W.compute_remainder: 0,
    germany.Algorithm21.compute_remainder: 1,
}
_RECONCILES: dict[Callable[..., Any], int] = {
    _W.reconcile: 0,
    germany.Algorithm02.reconcile: 1,
    germany.Algorithm11.reconcile: 2,
}
_DIGITS: dict[Callable[..., Any], int] = {
    _W.get_digits: 0,
    germany.Algorithm24.get_digits: 1,
    germany.Algorithm61.get_digits: 2,
    germany.Algorithm76.get_digits: 3,
}
_POSITIONS: dict[Callable[..., Any], int] = {
    _W.get_positions: 0,
    germany.Algorithm88.get_positions: 1,
}
_ADJUSTS: dict[Callable[..., Any], int] = {_W.adjust_input: 0, germany.Algorithm26.adjust_input: 1}

# Rules (validate functions); those that call super().validate need WeightedModulus's there.
_RULE_WEIGHTED, _RULE_08, _RULE_09, _RULE_16, _RULE_25 = 0, 1, 2, 3, 4
_RULE_63, _RULE_76, _RULE_95, _RULE_99, _RULE_ANY, _RULE_C1 = 5, 6, 7, 8, 9, 10
_OWN_RULES: dict[Callable[..., Any], tuple[int, type[Algorithm]]] = {
    germany.Algorithm16.validate: (_RULE_16, germany.Algorithm16),
    germany.Algorithm25.validate: (_RULE_25, germany.Algorithm25),
    germany.Algorithm63.validate: (_RULE_63, germany.Algorithm63),
    germany.Algorithm76.validate: (_RULE_76, germany.Algorithm76),
    germany.Algorithm95.validate: (_RULE_95, germany.Algorithm95),
    germany.Algorithm99.validate: (_RULE_99, germany.Algorithm99),
}


class _NotNative(Exception):
    """The class resolves to something _german.h does not reproduce."""


def _code(table: Mapping[Callable[..., Any], int], function: Callable[..., Any]) -> int:
    code = table.get(function)
    if code is None:
        raise _NotNative
    return code


def _next_after(cls: type, owner: type, name: str) -> object:
    """What ``super().<name>`` inside ``owner`` resolves to for an instance of ``cls``."""
    mro = cls.__mro__
    for base in mro[mro.index(owner) + 1 :]:
        if name in vars(base):
            return vars(base)[name]
    return None


def _int_in(value: object, low: int = 0, high: int = 255) -> int:
    if type(value) is not int or not low <= value <= high:
        raise _NotNative
    return value


def _weighted(cls: type[Any], *, compute: Callable[..., Any] = _W.compute) -> bytes:
    """One WeightedModulus subclass as _german.h's de_weighted (DE_WEIGHTED_BYTES)."""
    if not issubclass(cls, _W) or cls.compute is not compute:
        raise _NotNative
    positions = cls.positions
    weights = list(cls.weights)
    minuend = cls.minuend
    start = _int_in(positions.start, 1, _ACCOUNT_LENGTH + 1)
    # schwifty asserts 0 <= start - 1 <= end <= 10; check digit 0 would read index -1
    end = _int_in(positions.end, start - 1, _ACCOUNT_LENGTH)
    check = _int_in(positions.check_digit, 1, _ACCOUNT_LENGTH)
    if not 1 <= len(weights) <= _WEIGHTS or type(cls.reverse) is not bool:
        raise _NotNative
    head = [
        _int_in(cls.modulus, 1),
        _NO_MINUEND if minuend is None else _int_in(minuend, 0, _NO_MINUEND - 1),
        start,
        end,
        check,
        int(cls.reverse),
        _code(_SUMMANDS, cls.compute_summand),
        _code(_SUMS, cls.compute_weighted_sum),
        _code(_REMAINDERS, cls.compute_remainder),
        _code(_RECONCILES, cls.reconcile),
        _code(_DIGITS, cls.get_digits),
        _code(_POSITIONS, cls.get_positions),
        _code(_ADJUSTS, cls.adjust_input),
        len(weights),
    ]
    return bytes(head + [_int_in(w) for w in weights] + [0] * (_WEIGHTS - len(weights)))


def _validated(cls: type[Any]) -> bytes:
    """A variant called as ``cls().validate``: WeightedModulus's validate."""
    if cls.validate is not _W.validate:
        raise _NotNative
    return _weighted(cls)


def _method(cls: type[Any]) -> bytes:
    """One schwifty class as _german.h's de_method (DE_METHOD_BYTES); _NotNative otherwise."""
    if list(cls.accepts) != [Component.ACCOUNT_CODE]:
        raise _NotNative  # the native check reads the account code only
    validate = cls.validate
    threshold = 0
    variants: list[bytes]
    if validate is _W.validate:
        rule, variants = _RULE_WEIGHTED, [_weighted(cls)]
    elif validate is germany.Algorithm08.validate:
        rule, threshold = _RULE_08, _int_in(cls.min_account_code, 0, 2**32 - 1)
        if _next_after(cls, germany.Algorithm08, "validate") is not _W.validate:
            raise _NotNative
        variants = [_weighted(cls, compute=germany.Algorithm08.compute)]
    elif validate is germany.Algorithm09.validate:
        rule, variants = _RULE_09, []
    elif validate in _OWN_RULES:
        rule, owner = _OWN_RULES[validate]
        if rule != _RULE_16 and _next_after(cls, owner, "validate") is not _W.validate:
            raise _NotNative
        variants = [_weighted(cls)]
    elif validate is germany.Algorithm91.validate:
        rule = _RULE_ANY
        variants = [_validated(v) for v in (cls.Variant1, cls.Variant2, cls.Variant3, cls.Variant4)]
    elif validate is germany.FallbackVariants.validate:
        rule = _RULE_ANY
        variants = [_validated(v) for v in cls.variants]
    elif validate is germany.AlgorithmC1.validate:
        if cls.get_variant is not germany.AlgorithmC1.get_variant:
            raise _NotNative
        rule = _RULE_C1
        variants = [_validated(cls.Variant2), _validated(germany.Algorithm17)]
    else:
        raise _NotNative
    if len(variants) > _VARIANTS:
        raise _NotNative
    blank = bytes(_WEIGHTED_BYTES)
    return struct.pack("=BBxxI", rule, len(variants), threshold) + b"".join(
        variants + [blank] * (_VARIANTS - len(variants))
    )


@dataclass(frozen=True)
class GermanTables:
    """What the native check reads, and which schwifty methods it decides."""

    methods: bytes
    codes: bytes
    """Bank codes as native uint32, increasing."""
    method_of: bytes
    """Per code: an index into ``methods``, UNCHECKED or SCHWIFTY."""
    fallback: int
    """The entry for a bank code not in the registry."""
    native: frozenset[str]
    """schwifty's method names the native check decides."""

    def args(self) -> tuple[bytes, bytes, bytes, int]:
        return self.methods, self.codes, self.method_of, self.fallback


def build_tables(
    by_code: Mapping[str, Algorithm | None], fallback: Algorithm | None
) -> GermanTables:
    """Tables for schwifty's algorithm per 8-digit bank code (None: no algorithm, unchecked)
    and for a code not in the registry. Every algorithm is called on the account code alone."""
    methods: list[bytes] = []
    index: dict[type, int] = {}
    native: set[str] = set()

    def entry(algorithm: Algorithm | None) -> int:
        if algorithm is None:
            return UNCHECKED
        cls = type(algorithm)
        if cls not in index:
            try:
                if len(methods) == _MAX_METHODS:
                    raise _NotNative
                methods.append(_method(cls))
            except _NotNative:
                index[cls] = SCHWIFTY
            else:
                index[cls] = len(methods) - 1
                native.add(cls.name)
        return index[cls]

    codes = sorted(code for code in by_code if len(code) == 8 and code.isascii() and code.isdigit())
    method_of = bytes(entry(by_code[code]) for code in codes)
    return GermanTables(
        methods=b"".join(methods),
        codes=array("I", [int(code) for code in codes]).tobytes(),
        method_of=method_of,
        fallback=entry(fallback),
        native=frozenset(native),
    )


def native_check(tables: GermanTables, bbans: bytes) -> bytes | None:
    """Per 18-byte BBAN in ``bbans``: 1 passes, 0 fails, 2 schwifty decides; None when the C
    extension is not built."""
    scan = scan_module()
    if scan is None:
        return None
    result: bytes = scan.german_check(*tables.args(), bbans)
    return result
