"""Closed vocabularies: key kinds, data categories, risk levels, customer status."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "CATEGORY_BITS",
    "Category",
    "CustomerStatus",
    "KeyKind",
    "Risk",
    "categories_from_mask",
    "mask_from_categories",
]


class KeyKind(StrEnum):
    """Identifiers we match on; each is stored only as a keyed hash."""

    EMAIL = "email"
    IBAN = "iban"
    PHONE = "phone"


class Category(StrEnum):
    """Field-level data categories a leaked row can carry (design.md §2)."""

    NAME = "name"
    EMAIL = "email"
    PHONE = "phone"
    POSTAL_ADDRESS = "postal_address"
    BIRTH_DATE = "birth_date"
    BIRTH_PLACE = "birth_place"
    IBAN = "iban"
    BIC = "bic"
    CUSTOMER_NUMBER = "customer_number"
    CONTRACT = "contract"
    PASSWORD = "password"  # noqa: S105 - a category name, not a secret
    ID_DOCUMENT = "id_document"
    IP_ADDRESS = "ip_address"
    OTHER = "other"


class Risk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class CustomerStatus(StrEnum):
    ACTIVE = "active"
    FORMER = "former"


# Each category is one bit of a leaked row's category mask; the order is part of the store's
# format (append only, never reorder).
CATEGORY_BITS: dict[Category, int] = {c: 1 << i for i, c in enumerate(Category)}


def mask_from_categories(categories: set[Category] | frozenset[Category]) -> int:
    mask = 0
    for c in categories:
        mask |= CATEGORY_BITS[c]
    return mask


def categories_from_mask(mask: int) -> list[Category]:
    """The categories set in ``mask``, sorted by name (the export order)."""
    return sorted((c for c, bit in CATEGORY_BITS.items() if mask & bit), key=str)
