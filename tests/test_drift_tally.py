"""The tally's arithmetic in constant memory: buckets, groups up to their bound, and what happens past it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from trueup.reconcile.drift import MAX_GROUPS, ComparisonRow, Tally, delta_bucket


def row(key: int, recorded: int, expected: int, *, group: object = None, unit_value: str | None = None):
    value = None if unit_value is None else Decimal(unit_value)
    return ComparisonRow((key,), Decimal(recorded), 1, 0, value, group, Decimal(expected), 1, 0, 0)


@pytest.mark.parametrize(
    ("delta", "bucket"),
    [
        ("7", "+1..+9"),
        ("-7", "-9..-1"),
        ("42", "+10..+99"),
        ("-850", "-999..-100"),
        ("0.5", "+<1"),
        ("-0.25", "-<1"),
        ("1", "+1..+9"),
        ("10.0", "+10..+99"),
        ("-99.99", "-99..-10"),
    ],
)
def test_delta_bucket(delta: str, bucket: str) -> None:
    assert delta_bucket(Decimal(delta)) == bucket


def test_group_breakdown_totals() -> None:
    tally = Tally("r", ("id",), recorded_items=4, insert_missing=False)
    tally.add(row(1, 10, 4, group="north", unit_value="0.5"))  # -6, value -3
    tally.add(row(2, 10, 12, group="south", unit_value="2"))  # +2, value +4
    tally.add(row(3, 10, 9, group="north", unit_value="0.5"))  # -1, value -0.5
    tally.add(row(4, 10, 10, group="south"))  # no drift
    result = tally.result()
    assert [(g.group, g.drifted, g.abs_drift, g.value_impact) for g in result.groups] == [
        ("north", 2, 7, Decimal("-3.5")),
        ("south", 1, 2, Decimal("4")),
    ]
    assert (result.drifted, result.abs_drift, result.value_impact, result.abs_value_impact) == (3, 9, 0.5, 7.5)
    assert dict(result.distribution) == {"-9..-1": 2, "+1..+9": 1}
    assert not result.findings


def test_group_breakdown_keeps_exactly_max_groups() -> None:
    tally = Tally("r", ("id",), recorded_items=MAX_GROUPS, insert_missing=False, keep=0)
    for key in range(MAX_GROUPS):
        tally.add(row(key, 5, 3, group=key))
    result = tally.result()
    assert len(result.groups) == MAX_GROUPS
    assert not result.findings


def test_group_breakdown_past_the_bound_is_left_out_and_said_so() -> None:
    """Memory must not grow with the items: past MAX_GROUPS groups the breakdown stops, totals stay exact."""
    tally = Tally("r", ("id",), recorded_items=MAX_GROUPS + 5, insert_missing=False, keep=0)
    for key in range(MAX_GROUPS + 5):
        tally.add(row(key, 5, 3, group=key))
    assert tally.groups == {}
    result = tally.result()
    assert result.groups == ()
    assert (result.drifted, result.abs_drift) == (MAX_GROUPS + 5, 2 * (MAX_GROUPS + 5))
    (finding,) = result.findings
    assert (finding.kind, finding.severity, finding.count, finding.sample) == (
        "groups_omitted",
        "info",
        MAX_GROUPS,
        (),
    )
    assert finding.message.startswith(f"{MAX_GROUPS} or more groups drifted")
