"""Redaction hides identifier-shaped text; errors say where and why."""

from __future__ import annotations

import pytest

from core.errors import InputError
from core.redact import mask_iban, mask_phone, redact


@pytest.mark.parametrize(
    "text",
    [
        "call 06 12 34 56 78 now",
        "+33 (0)6 12 34 56 78",
        "iban FR76 3000 6000 0112 3456 7890 189 leaked",
        "mail Alice.Martin@example.fr please",
    ],
)
def test_redact_removes_identifiers(text: str) -> None:
    out = redact(text)
    for fragment in ("12 34 56 78", "3000 6000", "Alice.Martin", "0112"):
        assert fragment not in out


def test_masks_keep_only_what_a_customer_recognises() -> None:
    assert mask_iban("fr76 3000 6000 0112 3456 7890 189") == "FR•• •••• 0189"
    assert mask_phone("+33612345678") == "•• •• •• •• 78"


def test_input_error_names_file_row_column_and_reason() -> None:
    error = InputError("invalid phone number", file="leak.csv", row=17, column="tel")
    assert str(error) == "leak.csv: row 17: column 'tel': invalid phone number"
    assert (error.file, error.row, error.column) == ("leak.csv", 17, "tel")


def test_input_error_redacts_a_column_name_that_is_really_data() -> None:
    error = InputError("expected 3 fields, found 4", file="leak.csv", row=2, column="0612345678")
    assert "0612345678" not in str(error)
    assert "leak.csv: row 2" in str(error)
