"""One entry point to normalise identifiers of any key kind, and the shared fallback fill."""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from schemas.vocab import KeyKind

__all__ = ["ReferenceFn", "fill_from_reference", "normalise"]

ReferenceFn = Callable[[str], tuple[str | None, str | None]]
"""A per-value reference normaliser: text -> (canonical or None, reason or None)."""


def fill_from_reference(frame: pl.DataFrame, reference: ReferenceFn) -> pl.DataFrame:
    """Decide the rows the fast path left pending with the reference, once per distinct value.

    `frame` has the columns "value", "canonical", "reason" (pl.String) and "pending" (pl.Boolean);
    the result has "canonical" and "reason" only, same length and order.
    """
    canonical = frame.get_column("canonical").cast(pl.String)
    reason = frame.get_column("reason").cast(pl.String)
    rows = frame.get_column("pending").fill_null(value=False).arg_true()
    if rows.len():
        texts: list[str] = frame.get_column("value").gather(rows).to_list()
        cache: dict[str, tuple[str | None, str | None]] = {}
        for text in texts:
            if text not in cache:
                cache[text] = reference(text)
        results = [cache[text] for text in texts]
        canonical = canonical.scatter(rows, pl.Series([r[0] for r in results], dtype=pl.String))
        reason = reason.scatter(rows, pl.Series([r[1] for r in results], dtype=pl.String))
    return pl.DataFrame({"canonical": canonical, "reason": reason})


def normalise(kind: KeyKind, values: pl.Series, default_region: str = "FR") -> pl.DataFrame:
    """Normalise `values` as identifiers of `kind`: columns "canonical" and "reason".

    `default_region` only matters for phones.
    """
    # Imported here because the kind modules import fill_from_reference from this module.
    from matching.emails import normalise_emails
    from matching.ibans import normalise_ibans
    from matching.phones import normalise_phones

    values = values.cast(pl.String)
    present = values.is_not_null()
    # Leaked columns are often mostly empty, and every normaliser maps null to (null, null):
    # only the present values are normalised, then put back in place.
    dense = present.all()
    subset = values if dense else values.filter(present)
    match kind:
        case KeyKind.PHONE:
            result = normalise_phones(subset, default_region)
        case KeyKind.IBAN:
            result = normalise_ibans(subset)
        case KeyKind.EMAIL:
            result = normalise_emails(subset)
    if dense:
        return result
    rows = present.arg_true()
    # scatter writes in place: one fresh all-null column each
    return pl.DataFrame(
        {
            name: pl.repeat(None, values.len(), dtype=pl.String, eager=True).scatter(
                rows, result.get_column(name)
            )
            for name in ("canonical", "reason")
        }
    )
