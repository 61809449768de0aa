"""trueup guard on a `from` source: the storefront shape (line items joined to their request).

The rule's key is (storefront, product): the storefront comes from the request,
the product from the line item, so neither table's rows hold the whole key.
The example config (`trueup.examples.storefront`) says how each maps a changed
row to keys, in `[rules.expected.guard.<table>]`. Each test starts from the
shape of `tests/shapes.py` repaired, so every figure is true:

    (1, 10) = 10   line items 1 and 2 (5 + 5) of request 1, FULFILLED, storefront 1
    (1, 11) = 3    line item 3 of request 1
    (2, 10) = 2    line item 5 of request 3, FULFILLED, storefront 2
    (2, 11) = 0    line item 6 belongs to request 4, CANCELLED
                   request 2 (storefront 1) is PENDING: its line item 4 (product 10, 100) counts nothing
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import psycopg
import pytest

from tests.databases import Database
from tests.shapes import load_storefront
from tests.test_guard import catalog, cli, queued
from tests.test_guard_enforce import connect, run
from trueup.config import parse_config
from trueup.errors import ConfigError
from trueup.examples import storefront
from trueup.guard.ddl import triggers

LINE_ITEMS = "inventory_transferrequestlineitem"


def true_storefront(db: Database, tmp_path: Path, config: str = storefront.CONFIG) -> Path:
    load_storefront(db)
    path = tmp_path / "trueup.toml"
    path.write_text(f'[database]\nurl = "{db.url}"\n' + config)
    code, out = cli(path, "apply", "--yes", "--no-backup")
    assert code == 0, out
    return path


def stock(db: Database) -> dict[tuple[int, int], int]:
    rows = db.rows("SELECT storefront_id, product_id, quantity FROM inventory_storefrontinventory")
    return {(s, p): q for s, p, q in rows}


def test_capture_queues_the_keys_of_both_tables_and_the_round_finds_exactly_the_drift(
    db: Database, tmp_path: Path
) -> None:
    path = true_storefront(db, tmp_path)
    assert stock(db) == {(1, 10): 10, (1, 11): 3, (2, 10): 2, (2, 11): 0}
    code, out = cli(path, "guard", "install", "--rule", "storefront", "--mode", "capture", "--yes")
    assert code == 0, out
    assert cli(path, "watch", "--once")[0] == 0  # the first round is full, and finds nothing

    db.execute("UPDATE inventory_product SET name = 'Cable' WHERE id = 10")  # a table the rule does not read
    assert queued(db) == []
    db.execute(f"UPDATE {LINE_ITEMS} SET request_id = 3 WHERE id = 2")  # moved: storefront 1 -> 2, product 10
    assert queued(db) == [[1, 10], [2, 10]]
    db.execute("UPDATE inventory_transferrequest SET status = 'FULFILLED' WHERE id = 4")  # a status flip
    db.execute("UPDATE inventory_transferrequest SET storefront_id = 3 WHERE id = 2")  # PENDING, moved 1 -> 3
    db.execute(f"DELETE FROM {LINE_ITEMS} WHERE id = 3")  # storefront 1, product 11
    db.execute(f"INSERT INTO {LINE_ITEMS} VALUES (7, 3, 11, 4)")  # storefront 2, product 11
    assert sorted({tuple(k) for k in queued(db)}) == [(1, 10), (1, 11), (2, 10), (2, 11), (3, 10)]

    code, out = cli(path, "watch", "--once", "--format", "json")
    round_ = json.loads(out)
    assert code == 1, out
    # (3, 10) was queued but is in neither the recorded table nor any counted record: 4 keys to check
    assert (round_["kind"], round_["checked"], round_["drifted"]) == ("incremental", 4, 4)
    found = {tuple(d["key"]): (d["recorded"], d["expected"]) for d in round_["drift"]}
    # (1, 10): 5 left of request 1; (2, 10): 2 + the moved 5; (2, 11): request 4's 7 + the new 4;
    # (1, 11): its only line item deleted
    assert found == {(1, 10): (10, 5), (2, 10): (2, 7), (2, 11): (0, 11), (1, 11): (3, 0)}


def test_a_lookup_ending_in_a_comment_still_queues_both_images(db: Database, tmp_path: Path) -> None:
    """The lookup's SQL is the user's: a trailing `-- comment` must not swallow the rest of a trigger body."""
    commented = storefront.CONFIG.replace(
        'where = "r.id = row.request_id"', 'where = "r.id = row.request_id -- the line item\'s request"'
    ).replace('from = "inventory_transferrequest r"', 'from = "inventory_transferrequest r -- its request"')
    assert commented.count("-- ") >= 2
    path = true_storefront(db, tmp_path, commented)
    code, out = cli(path, "guard", "install", "--rule", "storefront", "--mode", "capture", "--yes")
    assert code == 0, out
    db.execute(f"UPDATE {LINE_ITEMS} SET request_id = 3 WHERE id = 2")  # moved: storefront 1 -> 2, product 10
    assert queued(db) == [[1, 10], [2, 10]]


def test_install_then_remove_leaves_the_catalog_as_it_was(db: Database, tmp_path: Path) -> None:
    path = true_storefront(db, tmp_path)
    before = catalog(db)
    code, out = cli(path, "guard", "install", "--rule", "storefront", "--yes")
    assert code == 0, out
    assert len(catalog(db)) > len(before)
    code, out = cli(path, "guard", "status")
    assert out.startswith(f"storefront: capture on inventory_storefrontinventory, {LINE_ITEMS}, "), out
    assert "inventory_transferrequest;" in out and "rule changed since: no" in out, out
    assert cli(path, "guard", "install", "--rule", "storefront", "--yes")[1].strip().endswith("nothing to do")
    assert cli(path, "guard", "remove", "--rule", "storefront", "--yes")[0] == 0
    assert catalog(db) == before


def test_a_table_whose_rows_cannot_be_mapped_is_refused_in_one_line(db: Database, tmp_path: Path) -> None:
    unmapped = storefront.CONFIG.replace("[rules.expected.guard.inventory_transferrequest]", "[unused]")
    unmapped = unmapped.replace('key = ["row.storefront_id", "li.product_id"]\n', "", 1)
    unmapped = unmapped.replace('from = "inventory_transferrequestlineitem li"\n', "", 1)
    unmapped = unmapped.replace('where = "li.request_id = row.id"\n', "", 1).replace("[unused]\n", "")
    path = true_storefront(db, tmp_path, unmapped)
    before = catalog(db)
    code, out = cli(path, "guard", "install", "--rule", "storefront", "--yes")
    assert code == 2
    assert out.endswith(
        "rule 'storefront': expected[0]: guard capture cannot map a changed row of 'inventory_transferrequest' "
        "to the key r.storefront_id, li.product_id: not every key expression is a column of 'r'; "
        "say how in [rules.expected.guard.inventory_transferrequest] (key, from, where, naming the row `row`)\n"
    ), out
    assert catalog(db) == before


def test_a_lookup_the_database_rejects_is_refused_before_any_trigger_exists(db: Database, tmp_path: Path) -> None:
    """A lookup is checked at plan time; were it not, its trigger would fail the application's writes."""
    typo = storefront.CONFIG.replace('where = "r.id = row.request_id"', 'where = "r.id = row.request"')
    path = true_storefront(db, tmp_path, typo)
    before = catalog(db)
    code, out = cli(path, "guard", "install", "--rule", "storefront", "--yes")
    assert code == 2
    place = f"rule 'storefront': expected[0].guard.{LINE_ITEMS}: the database rejected the lookup: "
    assert place in out and "request" in out.split(place)[1], out
    assert catalog(db) == before


# (what the transaction does, its statements, the key it breaks, recorded and expected at its commit)
BUGGY = [
    (
        "a rolled-back transfer still bumped the figure",
        ["UPDATE inventory_storefrontinventory SET quantity = quantity + 50 WHERE storefront_id = 1 "
         "AND product_id = 10"],
        [1, 10], 60, 10,
    ),
    (
        "a request fulfilled without stocking the storefront",
        ["UPDATE inventory_transferrequest SET status = 'FULFILLED' WHERE id = 2"],
        [1, 10], 10, 110,
    ),
    (
        "a line item moved to another storefront's request, the stock left behind",
        [f"UPDATE {LINE_ITEMS} SET request_id = 3 WHERE id = 2"],
        [1, 10], 10, 5,
    ),
]  # fmt: skip
CORRECT = [
    [
        f"UPDATE {LINE_ITEMS} SET request_id = 3 WHERE id = 2",
        "UPDATE inventory_storefrontinventory SET quantity = quantity - 5 WHERE storefront_id = 1 AND product_id = 10",
        "UPDATE inventory_storefrontinventory SET quantity = quantity + 5 WHERE storefront_id = 2 AND product_id = 10",
    ],
    [
        "UPDATE inventory_transferrequest SET status = 'FULFILLED' WHERE id = 4",
        "UPDATE inventory_storefrontinventory SET quantity = 7 WHERE storefront_id = 2 AND product_id = 11",
    ],
]


def test_enforce_fails_each_buggy_transaction_and_commits_the_correct_ones(pg: Database, tmp_path: Path) -> None:
    path = true_storefront(pg, tmp_path)
    code, out = cli(path, "guard", "install", "--rule", "storefront", "--mode", "enforce", "--yes")
    assert (code, out.strip()) == (0, "rule storefront: guard enforce installed: 10 trigger(s) as run 2"), out
    with connect(pg) as connection:
        for name, statements, key, recorded, expected in BUGGY:
            before = (stock(pg), pg.rows(f"SELECT * FROM {LINE_ITEMS} ORDER BY id"))
            with pytest.raises(psycopg.Error) as failed:
                run(connection, statements)
            assert failed.value.sqlstate == "TU001", name
            first = str(failed.value).splitlines()[0]
            assert first == f"trueup guard: rule storefront, key {key}: recorded {recorded}, expected {expected}", name
            assert (stock(pg), pg.rows(f"SELECT * FROM {LINE_ITEMS} ORDER BY id")) == before, name
        for statements in CORRECT:
            run(connection, statements)
    assert stock(pg) == {(1, 10): 5, (1, 11): 3, (2, 10): 7, (2, 11): 7}
    code, out = cli(path, "check", "--format", "json")
    assert json.loads(out)["rules"][0]["drifted"] == 0, out  # (the custom check of intake fails from the start)


def test_alarm_commits_everything_and_records_exactly_the_buggy_keys(pg: Database, tmp_path: Path) -> None:
    path = true_storefront(pg, tmp_path)
    assert cli(path, "guard", "install", "--rule", "storefront", "--mode", "alarm", "--yes")[0] == 0
    with connect(pg, "till-3") as connection:
        run(connection, CORRECT[1])
        for _, statements, _, _, _ in BUGGY:
            run(connection, statements)
    code, out = cli(path, "guard", "violations", "--format", "json")
    assert code == 0, out
    found = [(v["key"], v["recorded"], v["expected"]) for v in json.loads(out)["violations"]]
    # newest first: the bumped figure (60 against 10); request 2's 100 fulfilled (60 against 10 + 100);
    # the moved line item breaks both of its keys: (1, 10) loses its 5, (2, 10) gains them
    assert found == [([2, 10], 2, 7), ([1, 10], 60, 105), ([1, 10], 60, 110), ([1, 10], 60, 10)]


CONFIG_ERRORS = [
    (
        ('[rules.expected.guard.inventory_transferrequest]\nkey = ["r.storefront_id", "li.product_id"]\n'
         'from = "inventory_transferrequestlineitem li"\n'),
        "rule 'storefront': expected[0].guard.inventory_transferrequest: "
        "the lookup never reads the changed row: name its columns as `row.<column>`",
    ),
    (
        '[rules.expected.guard.inventory_product]\nkey = ["row.id", "row.id"]\n',
        "rule 'storefront': expected[0]: `guard` names 'inventory_product', which is not a table of `from` "
        "(inventory_transferrequestlineitem, inventory_transferrequest)",
    ),
    (
        '[rules.expected.guard.inventory_transferrequest]\nkey = ["row.storefront_id"]\n',
        "rule 'storefront': expected[0].guard.inventory_transferrequest.key lists 1 expression(s) but "
        "recorded.key has 2; list one per recorded key column, in the same order",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("guard", "message"), CONFIG_ERRORS)
def test_a_bad_guard_lookup_is_refused_at_load_naming_the_rule_and_field(guard: str, message: str) -> None:
    head = storefront.CONFIG.split("# For `trueup guard`")[0]
    with pytest.raises(ConfigError) as failed:
        parse_config(_toml(head + guard))
    assert str(failed.value) == f"config: {message}"


def test_guard_lookups_belong_to_a_from_source() -> None:
    text = (
        '[[rules]]\nname = "r"\n[rules.recorded]\ntable = "t"\nkey = ["id"]\nquantity = "q"\n'
        '[[rules.expected]]\ntable = "s"\nkey = ["t_id"]\nquantity = "q"\n'
        '[rules.expected.guard.s]\nkey = ["row.t_id"]\n'
    )
    with pytest.raises(ConfigError) as failed:
        parse_config(_toml(text))
    assert str(failed.value) == (
        "config: rule 'r': expected[0]: `guard` lookups are for a `from` source; "
        "a `table` source's key is its own columns"
    )


def _toml(text: str) -> dict[str, object]:
    return tomllib.loads(text)


def test_a_lookup_is_run_for_each_row_image_in_the_trigger_body() -> None:
    """MySQL, compiled without a server: a line item's update queues its old and its new storefront."""
    rule = parse_config(_toml(storefront.CONFIG)).rules[0]
    [update] = [t for t in triggers(rule, "mysql", None) if (t.table, t.event) == (LINE_ITEMS, "update")]
    image = (
        "INSERT INTO trueup_dirty (rule, `key`, queued_at, queued_by) SELECT 'storefront', "
        "CAST(json_array((r.storefront_id\n), ({row}.product_id\n)) AS CHAR), UTC_TIMESTAMP(), 'guard:capture' "
        "FROM inventory_transferrequest r\n WHERE (r.id = {row}.request_id\n);"
    )
    assert update.create == (
        f"CREATE TRIGGER {update.name} AFTER UPDATE ON {LINE_ITEMS} FOR EACH ROW BEGIN "
        f"{image.format(row='OLD')} {image.format(row='NEW')} END",
    )


def test_a_from_whose_tables_cannot_be_read_is_refused_naming_the_field() -> None:
    text = storefront.CONFIG.split("# For `trueup guard`")[0].replace(
        'from = "inventory_transferrequestlineitem li JOIN inventory_transferrequest r ON r.id = li.request_id"',
        'from = "inventory_transferrequestlineitem li JOIN (SELECT * FROM inventory_transferrequest) r '
        'ON r.id = li.request_id"',
    )
    rule = parse_config(_toml(text)).rules[0]
    with pytest.raises(ConfigError) as refused:
        triggers(rule, "postgresql", "shop")
    assert str(refused.value) == (
        "config: rule 'storefront': expected[0].from: guard capture needs the tables of `from`, "
        "but it holds a subquery, whose tables a trigger could miss"
    )
