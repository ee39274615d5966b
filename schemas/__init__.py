"""The contracts every stage speaks: vocabularies and value models."""

from __future__ import annotations

from schemas.models import BreachFacts, NoticeContext, RunSummary, SourceSummary
from schemas.vocab import Category, CustomerStatus, KeyKind, Risk

__all__ = [
    "BreachFacts",
    "Category",
    "CustomerStatus",
    "KeyKind",
    "NoticeContext",
    "Risk",
    "RunSummary",
    "SourceSummary",
]
