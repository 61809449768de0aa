"""The tables of a `from` clause, as a guard reads them, and the changed-row placeholder of its lookups."""

from __future__ import annotations

import pytest

from trueup.fromclause import image, mentions_row, same_table, tables


@pytest.mark.parametrize(
    ("clause", "found"),
    [
        (
            "inventory_transferrequestlineitem li JOIN inventory_transferrequest r ON r.id = li.request_id",
            [("inventory_transferrequestlineitem", "li"), ("inventory_transferrequest", "r")],
        ),
        (
            "a LEFT OUTER JOIN \"my.s\".b AS bb ON (bb.x = a.x AND a.s = 'JOIN q, r') INNER JOIN c USING (id)",
            [("a", "a"), ('"my.s".b', "bb"), ("c", "c")],
        ),
        ("((a JOIN b ON a.x = b.x) join `C` c2 on c2.y = b.y)", [("a", "a"), ("b", "b"), ("C", "c2")]),
        ("shop.items", [("shop.items", "items")]),
    ],
)
def test_the_tables_of_a_join_chain_and_their_aliases(clause: str, found: list[tuple[str, str]]) -> None:
    assert tables(clause) == found


@pytest.mark.parametrize(
    ("clause", "why"),
    [
        ("a, b", "joins with a comma; write it as `a JOIN b ON ...`"),
        ("a JOIN (SELECT * FROM b) x ON x.id = a.id", "holds a subquery, whose tables a trigger could miss"),
        ("generate_series(1, 9) g", "calls a table function 'generate_series', whose rows no trigger sees"),
        ("a JOIN LATERAL unnest(a.ids) u ON true", "joins LATERAL, whose tables a trigger could miss"),
    ],
)
def test_what_cannot_be_read_for_sure_is_refused_with_the_reason(clause: str, why: str) -> None:
    with pytest.raises(ValueError) as refused:
        tables(clause)
    assert str(refused.value) == why


def test_the_changed_row_is_written_as_the_trigger_image_outside_literals() -> None:
    text = "SELECT r.storefront_id, row.product_id FROM r WHERE r.id = ROW.request_id AND x = 'row.y' AND arrow.z"
    assert image(text, "OLD") == (
        "SELECT r.storefront_id, OLD.product_id FROM r WHERE r.id = OLD.request_id AND x = 'row.y' AND arrow.z"
    )
    assert (mentions_row("li.request_id = 'row.id'"), mentions_row("Row.id")) == (False, True)


def test_table_spellings_compare_without_case_or_quotes() -> None:
    assert same_table('"Shop".Items', "shop.items") and not same_table("shop.items", "items")
