"""Whole-table backups with the database's own tools, each beside a manifest that can be verified.

| database   | tool                                      | restore                                    |
| ---------- | ----------------------------------------- | ------------------------------------------ |
| PostgreSQL | `pg_dump -Fc -t TABLE`, sharing a snapshot | `pg_restore --clean --single-transaction` |
|            | with the row counts in the manifest       |                                            |
| SQLite     | the online backup API (a copy of the file) | the tables copied back in one transaction  |
| MySQL      | `mysqldump --single-transaction`          | `mysql < FILE`                             |

The manifest (`FILE.manifest.json`) records the tables, their row counts, the
file's size and sha256. `verify_backup()` recomputes the hash and asks the
tool whether the file is readable and holds every table (for SQLite it also
recounts the rows). A missing tool is not an error: the backup is skipped
with a warning, since `apply` always keeps the pre-image of every row it
changes in `trueup_changes`, which is what `undo` uses.

Passwords reach the tools through their environment (PGPASSWORD, MYSQL_PWD),
never their command line.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sqlite3
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa
from pydantic import BaseModel, ValidationError
from sqlalchemy.engine import URL, Connection

from trueup.db import dialect_for, redact, table_ref
from trueup.errors import DatabaseError, UsageError
from trueup.names import split_name
from trueup.paths import DEFAULT_BACKUP_DIRECTORY
from trueup.reconcile import audit, images
from trueup.reconcile.audit import now
from trueup.reconcile.target import Target
from trueup.report.format import to_json

log = logging.getLogger(__name__)

MANIFEST_SUFFIX = ".manifest.json"


class TableCount(BaseModel):
    name: str
    rows: int


class Manifest(BaseModel):
    format: str = "trueup-backup/1"
    created_at: datetime
    database: str
    dialect: str
    tool: str
    file: str
    size: int
    sha256: str
    tables: list[TableCount]


class Backup(NamedTuple):
    path: Path | None  # None when no tool could make it
    manifest: Manifest | None
    warning: str | None = None

    @property
    def warnings(self) -> tuple[str, ...]:
        return (self.warning,) if self.warning else ()


class Verification(NamedTuple):
    path: Path
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def backup_tables(
    connection: Connection, url: URL, tables: list[str], directory: Path = DEFAULT_BACKUP_DIRECTORY
) -> Backup:
    """Back up `tables` into `directory`; returns a Backup with a warning instead if no tool exists."""
    backend = url.get_backend_name()
    tables = list(dict.fromkeys(tables))
    _check_tables(connection, tables)
    directory.mkdir(parents=True, exist_ok=True)
    database = Path(url.database or "memory").stem if backend == "sqlite" else (url.database or "db")
    if backend == "sqlite":
        path = _new_file(directory, database, ".sqlite")
        tool, counts = "sqlite3 backup API", _sqlite_backup(connection, path, tables)
    elif backend == "postgresql":
        path, tool = _new_file(directory, database, ".dump"), "pg_dump"
        if shutil.which(tool) is None:
            return Backup(None, None, _missing(tool, "postgresql-client"))
        counts = _pg_dump(connection, url, path, tables)
    elif backend in ("mysql", "mariadb"):
        tool = _first_on_path("mysqldump", "mariadb-dump")
        if tool is None:
            return Backup(None, None, _missing("mysqldump", "mariadb-client"))
        path = _new_file(directory, database, ".sql")
        counts = _mysqldump(connection, url, path, tables, tool)
    else:
        return Backup(None, None, f"no backup tool known for {backend}; only row pre-images were kept")
    manifest = Manifest(
        created_at=now(),
        database=redact(url),
        dialect=backend,
        tool=tool,
        file=path.name,
        size=path.stat().st_size,
        sha256=_sha256(path),
        tables=[TableCount(name=t, rows=n) for t, n in counts.items()],
    )
    manifest_path(path).write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return Backup(path, manifest)


def _new_file(directory: Path, database: str, suffix: str) -> Path:
    """`20261121T101500Z-shop.dump`, numbered if two backups land in the same second."""
    stem = f"{now():%Y%m%dT%H%M%SZ}-{database}"
    path, n = directory / f"{stem}{suffix}", 1
    while path.exists() or manifest_path(path).exists():
        n += 1
        path = directory / f"{stem}-{n}{suffix}"
    return path


def list_backups(directory: Path = DEFAULT_BACKUP_DIRECTORY) -> list[tuple[Path, Manifest]]:
    found = []
    for path in sorted(directory.glob(f"*{MANIFEST_SUFFIX}")):
        try:
            found.append((path, Manifest.model_validate_json(path.read_bytes())))
        except ValidationError:
            log.warning("%s is not a trueup backup manifest; skipped", path)
    return found


def verify_backup(path: Path) -> Verification:
    """Recompute the hash and ask the tool whether the backup holds every table it should."""
    file, manifest = _open(path)
    problems = []
    if not file.exists():
        return Verification(file, (f"{file} is missing",))
    if file.stat().st_size != manifest.size:
        problems.append(f"size is {file.stat().st_size} bytes, the manifest says {manifest.size}")
    if _sha256(file) != manifest.sha256:
        problems.append("sha256 differs from the manifest: the file was changed or truncated")
    if not problems:
        problems += _tool_problems(file, manifest)
    return Verification(file, tuple(problems))


class Restored(NamedTuple):
    run_id: int  # the restore's run in trueup_runs
    tables: tuple[str, ...]  # the tables replaced (restored, or dropped)
    manifest: Manifest | None  # what was restored (None: the run only dropped tables)
    before: Backup  # the tables as they were just before, backed up first (path None: none of them existed)


def restore_backup(
    connection: Connection,
    url: URL,
    path: Path | None,
    directory: Path = DEFAULT_BACKUP_DIRECTORY,
    *,
    triggered_by: str = "cli",
    undoes_run: int | None = None,
    drop: tuple[str, ...] = (),
) -> Restored:
    """Replace the backed-up tables with their contents in the backup, as a run that undo reverses.

    First the tables it replaces are backed up into `directory` (refused when no tool can), then the
    run is recorded and committed (status `restoring`, each table with its rows before and after and
    the pre-restore backup), then the tables are restored by the tool, each in one transaction, and
    the run is marked `restored` (or `failed`). `drop` names tables to drop instead (undo drops the
    tables a restore created). `trueup undo RUN` restores the pre-restore backup, as a run of its own.
    """
    file, manifest = _verified(path, url) if path is not None else (None, None)
    tables = [*(t.name for t in manifest.tables), *drop] if manifest else list(drop)
    _refuse_audit_tables(file, tables)
    audit.ensure_tables(connection)
    inspector = sa.inspect(connection)
    existing = [t for t in tables if inspector.has_table(t.rpartition(".")[2], schema=t.rpartition(".")[0] or None)]
    before = backup_tables(connection, url, existing, directory) if existing else Backup(None, None)
    if existing and before.path is None:
        raise UsageError(f"refusing to restore without a backup of the tables it replaces: {before.warning}")
    dialect = dialect_for(connection)
    with dialect.write_transaction(connection) as tx:
        run_id = _record_restore(tx, file, manifest, drop, before, directory, triggered_by, undoes_run)
    try:
        if file is not None and manifest is not None:
            _replace_tables(connection, url, file, manifest)
        _drop_tables(connection, drop)
    except BaseException:
        with dialect.write_transaction(connection) as tx:
            audit.finish_run(tx, run_id, status="failed")
        raise
    with dialect.write_transaction(connection) as tx:
        restored = sum(t.rows for t in manifest.tables) if manifest else 0
        audit.finish_run(tx, run_id, status="restored", inserted=restored)
    return Restored(run_id, tuple(tables), manifest, before)


def _refuse_audit_tables(file: Path | None, tables: list[str]) -> None:
    """Restoring trueup's own audit would erase the runs recorded since the backup, this restore's among them."""
    replaced = [table for table in tables if split_name(table)[-1] in audit.metadata.tables]
    if replaced:
        raise UsageError(
            f"{file}: refusing to restore trueup's audit table(s) {', '.join(replaced)}: "
            "the runs and changes recorded since the backup would be lost"
        )


def _record_restore(
    tx: Connection,
    file: Path | None,
    manifest: Manifest | None,
    drop: tuple[str, ...],
    before: Backup,
    directory: Path,
    triggered_by: str,
    undoes_run: int | None,
) -> int:
    """The run, and per table a change `restore`: its rows before and after (None: no such table)
    and the backup of what it replaces (and where backups go, for its undo's own)."""
    after: dict[str, int | None] = {t.name: t.rows for t in manifest.tables} if manifest else {}
    after |= dict.fromkeys(drop)
    kind = "undo" if undoes_run is not None else "restore"
    run_id = audit.start_run(tx, kind=kind, rule=", ".join(after), triggered_by=triggered_by, undoes_run=undoes_run)
    counts = {t.name: t.rows for t in before.manifest.tables} if before.manifest else {}
    where = {"backup": before.path, "restored": file, "directory": directory}
    image = to_json({name: str(path.resolve()) if path else None for name, path in where.items()})
    for table, rows in after.items():
        change = images.change_row(run_id, "restore", Target(table, (), ""), [], "restore")
        values = {"before_value": _count(counts.get(table)), "after_value": _count(rows), "row_image": image}
        tx.execute(sa.insert(audit.changes).values(change | values))
    audit.set_status(tx, run_id, status="restoring", deleted=sum(counts.values()))
    return run_id


def _count(rows: int | None) -> str | None:
    return None if rows is None else str(rows)


def _drop_tables(connection: Connection, tables: tuple[str, ...]) -> None:
    if tables:
        with dialect_for(connection).write_transaction(connection):
            for table in tables:
                schema, _, name = table.rpartition(".")
                sa.Table(name, sa.MetaData(), schema=schema or None).drop(connection, checkfirst=True)


def _verified(path: Path, url: URL) -> tuple[Path, Manifest]:
    verification = verify_backup(path)
    if not verification.ok:
        raise UsageError(
            f"{verification.path}: refusing to restore a backup that fails verification: "
            + "; ".join(verification.problems)
        )
    file, manifest = _open(path)
    backend = url.get_backend_name()
    if backend != manifest.dialect and {backend, manifest.dialect} != {"mysql", "mariadb"}:
        raise UsageError(f"{file}: a {manifest.dialect} backup cannot be restored into {backend}")
    return file, manifest


def _replace_tables(connection: Connection, url: URL, file: Path, manifest: Manifest) -> None:
    """Each table restored by its tool, in one transaction; this connection holds no lock meanwhile."""
    if connection.in_transaction():
        connection.commit()
    backend = url.get_backend_name()
    tables = [t.name for t in manifest.tables]
    if backend == "sqlite":
        _sqlite_restore(connection, file, tables)
    elif backend == "postgresql":
        _run(
            [
                "pg_restore",
                "--clean",
                "--if-exists",
                "--single-transaction",
                "--no-owner",
                "-d",
                url.database or "",
                str(file),
            ],
            _pg_env(url),
        )
    else:
        with file.open("rb") as dump:
            _run(
                [_first_on_path("mysql", "mariadb") or "mysql", *_mysql_args(url), url.database or ""],
                _mysql_env(url),
                stdin=dump,
            )


def manifest_path(file: Path) -> Path:
    return file.with_name(file.name + MANIFEST_SUFFIX)


# -- SQLite ------------------------------------------------------------------------------------


def _sqlite_backup(connection: Connection, path: Path, tables: list[str]) -> dict[str, int]:
    """Copy the database file with the online backup API, through a connection of its own.

    A separate reader sees the last committed state even while `connection`
    holds the write lock of an apply (which has not written yet), and the
    backup API cannot read from a connection in the middle of a write.
    """
    counts = _counts(connection, tables)
    database = connection.engine.url.database
    in_memory = not database or database == ":memory:"
    source = connection.connection.driver_connection if in_memory else sqlite3.connect(database)
    target = sqlite3.connect(path)
    try:
        source.backup(target)
    finally:
        target.close()
        if not in_memory:
            source.close()
    return counts


def _sqlite_restore(connection: Connection, file: Path, tables: list[str]) -> None:
    raw = connection.connection.driver_connection
    raw.execute("ATTACH DATABASE ? AS trueup_backup", (str(file),))
    try:
        with connection.begin():
            for table in tables:
                name = _sql_quote(split_name(table)[-1])
                if not sa.inspect(connection).has_table(split_name(table)[-1]):  # dropped since: made again as it was
                    ddl = "SELECT sql FROM trueup_backup.sqlite_master WHERE type = 'table' AND name = ?"
                    connection.exec_driver_sql(connection.exec_driver_sql(ddl, (split_name(table)[-1],)).scalar_one())
                connection.exec_driver_sql(f"DELETE FROM main.{name}")
                connection.exec_driver_sql(f"INSERT INTO main.{name} SELECT * FROM trueup_backup.{name}")
    finally:
        raw.execute("DETACH DATABASE trueup_backup")


def _sql_quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -- PostgreSQL --------------------------------------------------------------------------------


def _pg_dump(connection: Connection, url: URL, path: Path, tables: list[str]) -> dict[str, int]:
    """pg_dump inside the snapshot the row counts were taken in, so the manifest matches the file."""
    with connection.engine.connect() as snapshot:
        snapshot = snapshot.execution_options(isolation_level="REPEATABLE READ")
        with snapshot.begin():
            snapshot_id = snapshot.execute(sa.text("SELECT pg_export_snapshot()")).scalar_one()
            counts = _counts(snapshot, tables)
            schema = snapshot.execute(sa.text("SELECT current_schema()")).scalar_one()
            patterns = [arg for t in tables for arg in ("-t", _pg_pattern(t, schema))]
            partial = path.with_name(path.name + ".partial")
            _run(
                ["pg_dump", "-Fc", f"--snapshot={snapshot_id}", *patterns, "-f", str(partial), url.database or ""],
                _pg_env(url),
            )
            partial.replace(path)
    return counts


def _pg_pattern(table: str, default_schema: str) -> str:
    """pg_dump's -t pattern matching exactly this table: each part in double quotes, so case,
    spaces, dots and wildcard characters in it are taken literally."""
    *schema, name = split_name(table)
    return ".".join(_sql_quote(part) for part in (schema[0] if schema else default_schema, name))


def _pg_env(url: URL) -> dict[str, str]:
    env = {"PGHOST": url.host or "", "PGPORT": str(url.port or ""), "PGUSER": url.username or ""}
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    options = url.query.get("options")
    if options:
        env["PGOPTIONS"] = options if isinstance(options, str) else " ".join(options)
    return {k: v for k, v in env.items() if v}


# -- MySQL / MariaDB ---------------------------------------------------------------------------


def _mysqldump(connection: Connection, url: URL, path: Path, tables: list[str], tool: str) -> dict[str, int]:
    """One dump per database the tables live in, each after a `USE` of that database, so a
    `schema.table` is dumped (and restored) from its own database, not the connection's."""
    counts = _counts(connection, tables)
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as out:
        for database, names in _by_database(tables, url.database or "").items():
            out.write(f"USE `{database.replace('`', '``')}`;\n".encode())
            out.flush()
            _run([tool, "--single-transaction", *_mysql_args(url), database, *names], _mysql_env(url), stdout=out)
    partial.replace(path)
    return counts


def _by_database(tables: list[str], default: str) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for table in tables:
        *schema, name = split_name(table)
        groups.setdefault(schema[0] if schema else default, []).append(name)
    return groups


def _mysql_args(url: URL) -> list[str]:
    args = [f"--host={url.host or 'localhost'}", f"--port={url.port or 3306}"]
    return args + ([f"--user={url.username}"] if url.username else [])


def _mysql_env(url: URL) -> dict[str, str]:
    return {"MYSQL_PWD": str(url.password)} if url.password else {}


# -- shared ------------------------------------------------------------------------------------


def _check_tables(connection: Connection, tables: list[str]) -> None:
    """Each name is an existing table (`table` or `schema.table`), or a UsageError names it."""
    inspector = sa.inspect(connection)
    for table in tables:
        try:
            *schema, name = split_name(table)
        except ValueError as error:
            raise UsageError(f"--table {error}") from None
        if len(schema) > 1 or not inspector.has_table(name, schema=schema[0] if schema else None):
            raise UsageError(f"--table {table!r}: no such table in the database")


def _counts(connection: Connection, tables: list[str]) -> dict[str, int]:
    counts = {}
    for table in tables:
        counts[table] = connection.execute(sa.select(sa.func.count()).select_from(table_ref(table))).scalar_one()
    return counts


def _tool_problems(file: Path, manifest: Manifest) -> list[str]:
    names = [split_name(t.name)[-1] for t in manifest.tables]
    if manifest.dialect == "sqlite":
        return _sqlite_problems(file, manifest)
    if manifest.dialect == "postgresql":
        if shutil.which("pg_restore") is None:
            return []
        listing = _run(["pg_restore", "--list", str(file)], {}, capture=True)
        data = [line for line in listing.splitlines() if " TABLE DATA " in line]
        return [f"table {n} has no data in the dump" for n in names if not any(f" {n} " in line for line in data)]
    text = file.read_text(encoding="utf-8", errors="replace")
    quoted = {n: "`" + n.replace("`", "``") + "`" for n in names}
    problems = [f"table {n} is not in the dump" for n in names if f"CREATE TABLE {quoted[n]}" not in text]
    if "-- Dump completed" not in text[-300:]:
        problems.append("the dump does not end with mysqldump's completion line: it was cut short")
    return problems


def _sqlite_problems(file: Path, manifest: Manifest) -> list[str]:
    problems = []
    copy = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
    try:
        if copy.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            problems.append("SQLite integrity check failed")
        for table in manifest.tables:
            found = copy.execute(f"SELECT COUNT(*) FROM {_sql_quote(split_name(table.name)[-1])}").fetchone()[0]
            if found != table.rows:
                problems.append(f"table {table.name} holds {found} rows, the manifest says {table.rows}")
    except sqlite3.DatabaseError as error:
        problems.append(f"not a readable SQLite database: {error}")
    finally:
        copy.close()
    return problems


def _open(path: Path) -> tuple[Path, Manifest]:
    """A backup file and its manifest, from the path of either."""
    manifest_file = path if path.name.endswith(MANIFEST_SUFFIX) else manifest_path(path)
    try:
        manifest = Manifest.model_validate_json(manifest_file.read_bytes())
    except FileNotFoundError:
        raise UsageError(f"{manifest_file}: no manifest beside the backup (trueup backup list shows backups)") from None
    except ValidationError as error:
        raise UsageError(f"{manifest_file}: not a trueup backup manifest: {error.errors()[0]['msg']}") from None
    return manifest_file.with_name(manifest.file), manifest


def _run(args: list[str], env: dict[str, str], *, stdin: Any = None, stdout: Any = None, capture: bool = False) -> str:
    result = subprocess.run(
        args,
        env=os.environ | env,
        stdin=stdin,
        stdout=subprocess.PIPE if capture else stdout,
        stderr=subprocess.PIPE,
        check=False,
    )
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise DatabaseError(f"{args[0]} failed: {message[-1] if message else f'exit {result.returncode}'}")
    return result.stdout.decode(errors="replace") if capture else ""


def _first_on_path(*tools: str) -> str | None:
    return next((tool for tool in tools if shutil.which(tool)), None)


def _missing(tool: str, package: str) -> str:
    return (
        f"{tool} is not on PATH, so no file backup was made; the pre-image of every row changed is still "
        f"kept in trueup_changes (undo uses it). Install {package} for file backups, or pass --no-backup."
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
