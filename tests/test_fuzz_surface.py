"""Fuzzing the whole input surface: configs, CLI arguments, CSV bytes, ledger API calls.

Whatever comes in, a command ends with exit 0, 1 or 2 and never a traceback; the ledger API returns or
raises a `LedgerError`. Each property runs a few dozen examples (a few seconds), so CI stays fast.
"""

from __future__ import annotations

import contextlib
import string
from datetime import UTC, date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.databases import make_database
from tests.test_check_cli import shop
from trueup.cli import app
from trueup.config import load_config
from trueup.errors import ConfigError
from trueup.ledger import Ledger, LedgerError

runner = CliRunner()
FAST = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))


def ends_cleanly(args: list[str]) -> int:
    result = runner.invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, repr(result.exception))
    assert result.exit_code in (0, 1, 2), (args, result.exit_code, result.output)
    assert "Traceback" not in result.output, (args, result.output)
    return result.exit_code


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory):
    """A SQLite shop (the batches shape) and its config, shared by the examples of a property."""
    tmp_path = tmp_path_factory.mktemp("fuzz")
    database, drop = make_database("sqlite", tmp_path)
    config = shop(database, tmp_path)
    yield tmp_path, config, database
    drop()


# -- configs -----------------------------------------------------------------------------------

IDENTS = st.sampled_from(["packs", "product_code", "warehouse_inventory", "batches", "nope", "a.b", "x;y", "", "1x"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    IDENTS,
)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(IDENTS, inner, max_size=3), max_leaves=8
)
FIELDS = [
    "table",
    "from",
    "key",
    "quantity",
    "sign",
    "where",
    "time",
    "insert_missing",
    "insert_defaults",
    "unit_value",
]


def toml_value(value) -> str:
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(str(value), repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f'"{k}" = {toml_value(v)}' for k, v in value.items()) + "}"


@st.composite
def shaped_configs(draw) -> str:
    """Configs shaped like real ones (a rule, recorded, sources), with random names and values."""
    lines = [f"[database]\nproduction_pattern = {toml_value(draw(st.sampled_from(['prod', '([', '(?<!x)live', ''])))}"]
    for _ in range(draw(st.integers(0, 2))):
        lines.append(f"[[rules]]\nname = {toml_value(draw(st.one_of(IDENTS, st.text(max_size=5))))}")
        lines.append("[rules.recorded]")
        for field in draw(st.lists(st.sampled_from(FIELDS), max_size=6, unique=True)):
            lines.append(f'"{field}" = {toml_value(draw(VALUES))}')
        for _ in range(draw(st.integers(0, 2))):
            lines.append("[[rules.expected]]")
            for field in draw(st.lists(st.sampled_from(FIELDS), max_size=6, unique=True)):
                lines.append(f'"{field}" = {toml_value(draw(VALUES))}')
    if draw(st.booleans()):
        lines.append(f"[[checks]]\nname = {toml_value(draw(IDENTS))}\nsql = {toml_value(draw(st.text(max_size=20)))}")
    return "\n".join(lines) + "\n"


@FAST
@given(text=st.one_of(st.text(max_size=200), shaped_configs()))
def test_any_config_text_loads_or_is_a_config_error(tmp_path_factory, text: str) -> None:
    path = tmp_path_factory.mktemp("config") / "trueup.toml"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path)
    except ConfigError as error:
        assert str(error).startswith(str(path)) and "\n" not in str(error)


@FAST
@given(text=shaped_configs(), command=st.sampled_from(["check", "plan", "runs"]))
def test_any_config_runs_or_exits_2(workspace, text: str, command: str) -> None:
    tmp_path, _, database = workspace
    path = tmp_path / "fuzzed.toml"
    path.write_text(
        f'{text}\n[ledger]\nurl = "{database.url}"\n'.replace(
            "[database]\n", f'[database]\nurl = "{database.url}"\n', 1
        )
    )
    ends_cleanly([command, "-c", str(path)])


# -- arguments ---------------------------------------------------------------------------------

ODD = st.sampled_from(
    ["", "0", "-1", "1e999999", "NaN", "99999999d", "x;drop", "batches", "A-1", "1,2,3", "'", '"', "%", "\x00", "é"]
)
ARGUMENT = st.one_of(ODD, st.text(string.printable, max_size=8), st.integers(-(10**20), 10**20).map(str))
COMMANDS = {
    "check": ["--rule", "--limit", "--format", "--key"],
    "plan": ["--rule", "--key", "--where", "--limit", "--format"],
    "apply": ["--rule", "--key", "--where", "--limit", "--lock-timeout", "--plan"],
    "undo": ["--lock-timeout", "--format"],
    "runs": ["--limit", "--format"],
    "history": ["--rule", "--key", "--since", "--limit"],
    "sync": ["--rule", "--key", "--wait", "--max-changes", "--max-abs-delta"],
    "backup": ["--table", "--rule"],
    "ledger balance": ["--at", "--lot", "--format"],
    "ledger receive": ["--unit-cost", "--lot", "--key", "--at"],
    "ledger issue": ["--reason", "--key", "--at", "--lots"],
}
POSITIONALS = {"undo": 1, "ledger balance": 1, "ledger receive": 3, "ledger issue": 3}


@st.composite
def argument_sets(draw) -> list[str]:
    command = draw(st.sampled_from(sorted(COMMANDS)))
    args = command.split() + [draw(ARGUMENT) for _ in range(POSITIONALS.get(command, 0))]
    for option in draw(st.lists(st.sampled_from(COMMANDS[command]), max_size=4)):
        args += [option, draw(ARGUMENT)]
    return args


@FAST
@given(args=argument_sets())
def test_any_arguments_exit_0_1_or_2(workspace, args: list[str]) -> None:
    tmp_path, config, _ = workspace
    extra = ["--yes", "--backup-dir", str(tmp_path / "backups")] if args[0] == "apply" else []
    extra += ["--backup-dir", str(tmp_path / "backups")] if args[0] == "backup" else []
    ends_cleanly([*args, "-c", str(config), *extra])


# -- CSV exports -------------------------------------------------------------------------------

CELLS = st.one_of(
    st.sampled_from(
        ["", "A", "=1+1", "-4", "+A", "@x", "0000-01-01", "2026-02-30", "13/13/2026", "1e999", "1,5", "€3"]
    ),
    st.text(max_size=6),
    st.integers(-(10**25), 10**25).map(str),
    st.dates().map(date.isoformat),
)
HEADERS = st.lists(
    st.sampled_from(["sale_id", "sku", "SKU", "date", "Qty", "quantity", "x", ""]), min_size=1, max_size=6
)


@st.composite
def csv_bytes(draw) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=300))
    headers = draw(HEADERS)
    rows = draw(st.lists(st.lists(CELLS, min_size=len(headers), max_size=len(headers) + 1), max_size=6))
    separator = draw(st.sampled_from([",", ";", "\t"]))
    text = "\n".join(separator.join(row) for row in [headers, *rows])
    return text.encode(draw(st.sampled_from(["utf-8", "latin-1", "utf-16"])), errors="replace")


@FAST
@given(sales=csv_bytes(), lots=csv_bytes(), suffix=st.sampled_from([".csv", ".xlsx", ".parquet", ".txt"]))
def test_any_csv_bytes_exit_0_1_or_2(tmp_path_factory, sales: bytes, lots: bytes, suffix: str) -> None:
    folder = tmp_path_factory.mktemp("cost")
    (folder / f"sales{suffix}").write_bytes(sales)
    (folder / "lots.csv").write_bytes(lots)
    ends_cleanly(
        [
            "cost",
            "--sales",
            str(folder / f"sales{suffix}"),
            "--lots",
            str(folder / "lots.csv"),
            "-o",
            str(folder / "out"),
        ]
    )


# -- the ledger API ----------------------------------------------------------------------------

AMOUNTS = st.one_of(
    st.integers(-5, 10**13),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.floats(allow_nan=True),
    st.sampled_from(["1", "0.5", "1e999999", "-0", " 2 ", "abc", "", "1.0000001"]),
    st.none(),
    st.booleans(),
)
NAMES = st.one_of(st.sampled_from(["widget", "shop", "back", "L1", "supplier", ""]), st.text(max_size=3), st.integers())
MOMENTS = st.one_of(
    st.none(),
    st.datetimes(timezones=st.just(UTC)),
    st.datetimes(),
    st.sampled_from(["yesterday", "2020", 0]),
    st.dates(),
)


@st.composite
def ledger_calls(draw):
    kind = draw(
        st.sampled_from(["receive", "issue", "transfer", "adjust", "reserve", "balance", "available", "revert"])
    )
    if kind == "receive":
        return kind, (draw(NAMES), draw(NAMES), draw(AMOUNTS)), {"unit_cost": draw(AMOUNTS), "at": draw(MOMENTS)}
    if kind == "issue":
        return kind, (draw(NAMES), draw(NAMES), draw(AMOUNTS)), {"at": draw(MOMENTS)}
    if kind == "transfer":
        return kind, (draw(NAMES), draw(NAMES), draw(NAMES), draw(AMOUNTS)), {"at": draw(MOMENTS)}
    if kind == "adjust":
        return kind, (draw(NAMES), draw(NAMES), draw(AMOUNTS)), {"at": draw(MOMENTS)}
    if kind == "reserve":
        return kind, (draw(NAMES), draw(NAMES), draw(AMOUNTS)), {"hold_for": draw(NAMES), "expires_at": draw(MOMENTS)}
    if kind == "balance":
        return kind, (draw(NAMES),), {"as_of": draw(MOMENTS)}
    if kind == "available":
        return kind, (draw(NAMES), draw(NAMES)), {"at": draw(MOMENTS)}
    return kind, (draw(st.one_of(st.integers(-3, 5), NAMES)),), {}


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def books(request, tmp_path_factory):
    database, drop = make_database(request.param, tmp_path_factory.mktemp("ledger"))
    with Ledger(database.url) as ledger:
        ledger.receive("widget", "shop", 10, unit_cost="2.5", lot="L1")
        yield ledger
    drop()


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(calls=st.lists(ledger_calls(), min_size=1, max_size=4))
def test_any_ledger_call_returns_or_raises_a_ledger_error(books: Ledger, calls) -> None:
    for kind, args, kwargs in calls:
        with contextlib.suppress(LedgerError):
            getattr(books, kind)(*args, **kwargs)
    assert books.verify().ok
