"""Options shared by several commands, defined once."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class Output(StrEnum):
    """For commands whose results are a table for people or a JSON document for machines."""

    table = "table"
    json = "json"


class Format(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"
    html = "html"


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", metavar="FILE", help="Config file.", show_default="trueup.toml", envvar="TRUEUP_CONFIG"
    ),
]
DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database", "-d", metavar="URL", help="Database URL, overriding the config and $TRUEUP_DATABASE_URL."
    ),
]
RuleOption = Annotated[
    list[str] | None,
    typer.Option("--rule", "-r", metavar="NAME", help="Only this rule (repeatable).", show_default="all rules"),
]
FormatOption = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
OutputFormatOption = Annotated[Output, typer.Option("--format", "-f", help="Output format.")]
OutputOption = Annotated[
    Path | None,
    typer.Option("--output", "-o", metavar="FILE", help="Write the report to this file.", show_default="stdout"),
]
LimitOption = Annotated[
    int | None,
    typer.Option(
        "--limit",
        "-n",
        min=0,
        metavar="N",
        help="Show only the worst N drifted keys per rule.",
        show_default="20 in tables, all in JSON",
    ),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display or notes.")]
KeyOption = Annotated[
    list[str] | None,
    typer.Option(
        "--key", "-k", metavar="VALUE[,VALUE]", help="Only this item (repeatable); commas separate a composite key."
    ),
]
WhereOption = Annotated[
    str | None, typer.Option("--where", metavar="SQL", help="Only recorded rows matching this SQL condition.")
]
YesOption = Annotated[bool, typer.Option("--yes", "-y", help="Write without asking, even on production.")]
BackupDirOption = Annotated[
    Path,
    typer.Option("--backup-dir", metavar="DIR", envvar="TRUEUP_BACKUP_DIR", help="Where file backups go."),
]
LockTimeoutOption = Annotated[
    float, typer.Option("--lock-timeout", metavar="SECONDS", help="Give up if rows stay locked this long.")
]
TriggeredByOption = Annotated[
    str, typer.Option("--triggered-by", metavar="NAME", help="Recorded on the run: what asked for it.")
]
