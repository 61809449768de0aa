"""`trueup.toml` -> validated, frozen models, with errors that name the place.

A config is a `[database]` table and one or more `[[rules]]`; each rule names
the *recorded* figure (a table, its key columns, its quantity column) and the
*expected* sources whose signed sums should equal it:

    [[rules]]
    name = "batches"
    [rules.recorded]
    table = "warehouse_inventory"
    key = ["product_id"]
    quantity = "packs"
    [[rules.expected]]
    table = "batches"
    key = ["product_id"]
    quantity = "quantity_remaining"

Two kinds of text live in a config and are treated differently:

* identifiers (`table`, `key`, `quantity`, `unit_value`, `group`, `time`,
  `sequence`, the keys of `insert_defaults`) are names, not SQL: any characters,
  parts split at dots (`inventory.stock` is schema `inventory`, table `stock`;
  a part holding a dot is double-quoted, `"my.schema".stock`). They are checked
  here, written back in one canonical spelling, and quoted by `trueup.db` when
  SQL is built, so they can never inject SQL;
* SQL fragments (`from`, `where`, `[[checks]].sql`, the guard lookups of
  `[rules.expected.guard]`) are the user's own SQL,
  passed to the database as written.

`load_config()` raises `ConfigError` with one line such as
`trueup.toml: rule 'batches': expected[0].key: ...`.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    model_validator,
)

from trueup.errors import ConfigError
from trueup.fromclause import mentions_row, same_table, tables
from trueup.names import join_name, split_name
from trueup.paths import DEFAULT_CONFIG

DATABASE_URL_ENV = "TRUEUP_DATABASE_URL"
LEDGER_URL_ENV = "TRUEUP_LEDGER_URL"

_PLAIN_NAME = r"[A-Za-z_][A-Za-z0-9_$]*"
_PLAIN_IDENTIFIER = re.compile(rf"{_PLAIN_NAME}(\.{_PLAIN_NAME})?")
_RULE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_CURRENCY = re.compile(r"[^\s\d.,+-]{1,5}")
_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def is_identifier(value: str) -> bool:
    """A plain identifier (letters, digits, `_`, `$`, one optional `qualifier.`): written in a config unquoted."""
    return _PLAIN_IDENTIFIER.fullmatch(value) is not None


def _name(most: int, what: str) -> Any:
    """A validator for a name of at most `most` dot-separated parts, returning its canonical spelling."""

    def check(value: str) -> str:
        parts = split_name(value)
        if len(parts) > most:
            raise ValueError(
                f"{value!r} has {len(parts)} dot-separated parts, but {what}; write a part that holds a dot "
                'in double quotes ("my.schema".stock), and put expressions in a `from` subquery'
            )
        return join_name(parts)

    return AfterValidator(check)


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as error:
        raise ValueError(f"{value!r} is not a regular expression: {error}") from None
    return value


def _rule_name(value: str) -> str:
    if not _RULE_NAME.fullmatch(value):
        raise ValueError(f"{value!r} must use only letters, digits, '_', '.' and '-'")
    return value


def _currency(value: str) -> str:
    if not _CURRENCY.fullmatch(value):
        raise ValueError(f"{value!r} is not a currency: give a code such as 'EUR' or a sign such as '€'")
    return value


TableName = Annotated[str, _name(2, "a table is `table` or `schema.table`")]
Identifier = Annotated[str, _name(3, "a column is `column`, `table.column` or `schema.table.column`")]
Scalar = str | int | float | bool | None


_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


_LONGEST = timedelta(days=100 * 365)  # a longer --since or --every is a typo (and would overflow a date)


def parse_duration(text: str) -> timedelta:
    """`90s`, `5m`, `2h`, `7d` (or plain seconds)."""
    match = _DURATION.fullmatch(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration such as 30s, 5m, 2h or 7d")
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds > _LONGEST.total_seconds():
        raise ValueError(f"{text!r} is longer than {_LONGEST.days // 365} years")
    return timedelta(seconds=seconds)


def _duration(text: str) -> str:
    parse_duration(text)
    return text


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Recorded(_Model):
    """The cached figure that may have drifted."""

    table: TableName
    key: list[Identifier] = Field(min_length=1)
    quantity: Identifier
    unit_value: Identifier | None = None
    group: Identifier | None = None
    where: str | None = None
    time: Identifier | None = None  # when the row last changed: lets sync rounds notice edits to the figure
    insert_missing: StrictBool = False
    insert_defaults: dict[Annotated[str, _name(1, "a column of the recorded table is one name")], Scalar] = Field(
        default_factory=dict
    )


class Lookup(_Model):
    """`[rules.expected.guard.<table>]`: how a guard trigger on `<table>`, a table of a `from` source,
    finds the rule's keys a changed row touches: `SELECT <key> FROM <from> WHERE <where>`, SQL that
    names the changed row `row` (`row.request_id`) and is run for its old and its new image."""

    key: list[str] = Field(min_length=1)
    from_: str | None = Field(default=None, alias="from")
    where: str | None = None

    @model_validator(mode="after")
    def _reads_the_row(self) -> Lookup:
        if not any(mentions_row(text) for text in (*self.key, self.where or "")):
            raise ValueError("the lookup never reads the changed row: name its columns as `row.<column>`")
        return self


class Source(_Model):
    """One set of records adding to (sign 1) or taking from (sign -1) the expected figure."""

    table: TableName | None = None
    from_: str | None = Field(default=None, alias="from")
    key: list[Identifier] = Field(min_length=1)
    quantity: Identifier | Decimal
    sign: Literal[1, -1] = 1
    where: str | None = None
    time: Identifier | None = None  # when a record was made or last changed (future-dated records, sync)
    sequence: Identifier | None = None  # an ever-increasing id, for sync when there is no time column
    guard: dict[TableName, Lookup] = Field(default_factory=dict)  # a `from` source: per table, its key lookup

    @model_validator(mode="after")
    def _one_origin(self) -> Source:
        if (self.table is None) == (self.from_ is None):
            raise ValueError("give exactly one of `table` or `from`")
        return self

    @model_validator(mode="after")
    def _guards_tables_of_from(self) -> Source:
        if not self.guard:
            return self
        if self.from_ is None:
            raise ValueError("`guard` lookups are for a `from` source; a `table` source's key is its own columns")
        try:
            joined = [table for table, _ in tables(self.from_)]
        except ValueError as error:
            raise ValueError(f"`guard` needs the tables of `from`, but `from` {error}") from None
        for table in self.guard:
            if not any(same_table(table, t) for t in joined):
                raise ValueError(f"`guard` names {table!r}, which is not a table of `from` ({', '.join(joined)})")
        return self


class SyncLimits(_Model):
    """`[sync]`, or a rule's `[rules.sync]`: how much a round that repairs on its own (`watch --apply`,
    `sync --apply`, a hook) may write. A round over the limit writes nothing and says so; unset fields
    fall back to `[sync]`, then to 1,000 rows and 5 % of the rule's items, whichever is smaller."""

    max_changes: int | None = Field(default=None, ge=0)
    max_percent: Decimal | None = Field(default=None, ge=0, le=100)


class Rule(_Model):
    name: Annotated[str, AfterValidator(_rule_name)]
    recorded: Recorded
    expected: list[Source] = Field(min_length=1)
    sync: SyncLimits = SyncLimits()
    # Differences at or below this are not drift (figures kept in floating point or rounded units).
    tolerance: Decimal = Field(default=Decimal(0), ge=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _keys_line_up(self) -> Rule:
        width = len(self.recorded.key)
        keys = [
            (f"expected[{index}]{field}", key)
            for index, source in enumerate(self.expected)
            for field, key in [(".key", source.key), *((f".guard.{t}.key", g.key) for t, g in source.guard.items())]
        ]
        for field, key in keys:
            if len(key) != width:
                raise ValueError(
                    f"{field} lists {len(key)} expression(s) but "
                    f"recorded.key has {width}; list one per recorded key column, in the same order"
                )
        return self


class Check(_Model):
    """A query returning the rows that break an invariant: no rows means it holds."""

    name: str = Field(min_length=1)
    severity: Literal["error", "warning", "info"] = "error"
    sql: str = Field(min_length=1)


class Database(_Model):
    url: str | None = None
    # A regular expression matched against the URL's host and database name: a match
    # makes `apply` and `undo` ask for confirmation (or --yes) before writing.
    production_pattern: Annotated[str, AfterValidator(_regex)] = r"(?<![a-z])(prod|production|live)(?![a-z])"


class LedgerSettings(_Model):
    """`[ledger]`: where `trueup ledger` keeps its books, when not in the [database] itself."""

    url: str | None = None


class ReportSettings(_Model):
    """`[report]`: how reports show money (JSON always keeps exact, unrounded figures)."""

    currency: Annotated[str, AfterValidator(_currency)] | None = None
    money_decimals: int = Field(default=2, ge=0, le=6)


class ServeSettings(_Model):
    """`[serve]`: the HTTP service's defaults (`trueup serve` options override them)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8337, ge=1, le=65535)
    # A duration such as "5m": scheduled watch rounds inside the service, locked as `trueup watch` is.
    watch: Annotated[str, AfterValidator(_duration)] | None = None
    watch_apply: bool = False  # scheduled rounds repair what they find
    cors_origins: list[str] = Field(default_factory=list)  # CORS stays off unless origins are listed
    max_body_kb: int = Field(default=1024, ge=1)  # JSON bodies
    max_upload_mb: int = Field(default=100, ge=1)  # multipart uploads (cost exports)
    backup_dir: Path | None = None  # file backups before apply; none unless set (row pre-images are always kept)


class Config(_Model):
    database: Database = Database()
    ledger: LedgerSettings = LedgerSettings()
    report: ReportSettings = ReportSettings()
    sync: SyncLimits = SyncLimits()
    serve: ServeSettings = ServeSettings()
    rules: list[Rule] = Field(default_factory=list)
    checks: list[Check] = Field(default_factory=list)
    path: Path | None = Field(default=None, exclude=True)
    sha256: str | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        for kind, names in (("rule", [r.name for r in self.rules]), ("check", [c.name for c in self.checks])):
            seen: set[str] = set()
            for name in names:
                if name in seen:
                    raise ValueError(f"two {kind}s are named {name!r}; names must be unique")
                seen.add(name)
        return self

    def rule(self, name: str) -> Rule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        known = ", ".join(r.name for r in self.rules) or "none"
        raise ConfigError(f"{self._label()}: no rule named {name!r} (rules: {known})")

    def select_rules(self, names: list[str] | None) -> list[Rule]:
        """The named rules in the order given, or every rule when `names` is empty."""
        return [self.rule(n) for n in names] if names else list(self.rules)

    def database_url(self, override: str | None = None) -> str:
        """The URL to connect to: `override`, then $TRUEUP_DATABASE_URL, then [database].url."""
        url = override or os.environ.get(DATABASE_URL_ENV) or self.database.url
        if not url:
            raise ConfigError(f"{self._label()}: no database: set [database].url, ${DATABASE_URL_ENV} or --database")
        return expand_env(url, self._label())

    def ledger_url(self, override: str | None = None) -> str:
        """The ledger's URL: `override`, then $TRUEUP_LEDGER_URL, then [ledger].url, then the database's URL."""
        url = override or os.environ.get(LEDGER_URL_ENV) or self.ledger.url
        if url:
            return expand_env(url, self._label())
        if not (os.environ.get(DATABASE_URL_ENV) or self.database.url):
            raise ConfigError(
                f"{self._label()}: no ledger database: pass --database, set ${LEDGER_URL_ENV}, "
                "or set [ledger].url (or [database].url) in the config"
            )
        return self.database_url()

    def _label(self) -> str:
        return str(self.path) if self.path else "config"


def expand_env(text: str, where: str = "config") -> str:
    """Replace each `${VAR}` with the environment's value; an unset variable is an error."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(f"{where}: [database].url uses ${{{name}}} but it is not set")
        return os.environ[name]

    return _ENV_VAR.sub(value, text)


def load_config(path: str | Path | None = None) -> Config:
    """Read and validate a config file (default `./trueup.toml`)."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        hint = " (run `trueup init` to write a starter config)" if path == DEFAULT_CONFIG else ""
        raise ConfigError(f"{path}: config file not found{hint}") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config: {error.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: arrays or tables nested too deeply") from None
    return parse_config(data, label=str(path), sha256=hashlib.sha256(raw).hexdigest(), path=path)


def parse_config(
    data: dict[str, Any], *, label: str = "config", sha256: str | None = None, path: Path | None = None
) -> Config:
    """Validate already-parsed TOML data (a dict), naming `label` in errors."""
    try:
        config = Config.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_describe(error, data, label)) from None
    return config.model_copy(update={"path": path, "sha256": sha256})


def _describe(error: ValidationError, data: dict[str, Any], label: str) -> str:
    """One line naming the file, the rule (by name) and the field of the first problem."""
    problems = error.errors(include_url=False)
    # A misspelt field also makes the real one "missing"; the spelling is the news.
    problems.sort(key=lambda p: p["type"] != "extra_forbidden")
    first = problems[0]
    place = _place(first["loc"], data)
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown field (check its spelling)"
    elif first["type"] == "missing":
        message = "required field is missing"
    more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
    return f"{label}: {place}{message}{more}"


def _place(loc: tuple[Any, ...], data: dict[str, Any]) -> str:
    parts = [p for p in loc if not (isinstance(p, str) and "[" in p)]  # drop union-branch labels
    if len(parts) >= 2 and parts[0] in ("rules", "checks") and isinstance(parts[1], int):
        section, index = parts[0], parts[1]
        entries = data.get(section) or []
        name = entries[index].get("name") if index < len(entries) and isinstance(entries[index], dict) else None
        head = f"{section[:-1]} {name!r}" if name else f"{section}[{index}]"
        rest = _dotted(parts[2:])
        return f"{head}: {rest}: " if rest else f"{head}: "
    rest = _dotted(parts)
    return f"{rest}: " if rest else ""


def _dotted(parts: list[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
