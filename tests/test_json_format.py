"""`to_json`: exact JSON text for the values a check streams, the same text json.dumps would write."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trueup.report.format import to_json

plain = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(alphabet="abcxyz_", max_size=6), inner),
    max_leaves=12,
)


@given(plain)
def test_plain_data_is_written_as_json_dumps_writes_it(value) -> None:
    assert to_json(value) == json.dumps(value, ensure_ascii=False)


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_decimals_are_exact_numbers(value: Decimal) -> None:
    text = to_json(value)
    assert Decimal(text) == value
    assert "E" not in text.upper() and not text.endswith(".")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("-37"), "-37"),
        (Decimal("12.50"), "12.5"),
        (Decimal("-0.00"), "0"),
        (Decimal("-0"), "0"),
        (Decimal("1E+2"), "100"),
        (Decimal("0.0001000"), "0.0001"),
        (Decimal("NaN"), '"NaN"'),
        (uuid.UUID(int=255), '"00000000-0000-0000-0000-0000000000ff"'),
        (datetime(2024, 1, 2, 3, 4, 5), '"2024-01-02T03:04:05"'),
        (date(2024, 1, 2), '"2024-01-02"'),
        ({"key": [7, "é"], "ké": True}, '{"key": [7, "é"], "k\\u00e9": true}'),
        ((1, None), "[1, null]"),
    ],
)
def test_examples(value, text: str) -> None:
    assert to_json(value) == text
