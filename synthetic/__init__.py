"""Synthetic operators and leaks with known truth, for the demo, the tests and the bench."""

from __future__ import annotations

from synthetic.leak import COLUMN_CATEGORIES, LEAK_COLUMNS, Leak, make_leak
from synthetic.operator import CUSTOMER_COLUMNS, OVERSEAS_CALLING_CODES, make_customers
from synthetic.shapes import ENCODINGS, write_delimited, write_json_array, write_jsonl

__all__ = [
    "COLUMN_CATEGORIES",
    "CUSTOMER_COLUMNS",
    "ENCODINGS",
    "LEAK_COLUMNS",
    "OVERSEAS_CALLING_CODES",
    "Leak",
    "make_customers",
    "make_leak",
    "write_delimited",
    "write_json_array",
    "write_jsonl",
]
