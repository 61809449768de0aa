"""The README's Ledger walkthrough really runs: its Python block, then its shell block through the CLI."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

from typer.testing import CliRunner

from trueup.cli.app import app

README = Path(__file__).resolve().parent.parent / "README.md"


def ledger_blocks() -> dict[str, str]:
    section = README.read_text(encoding="utf-8").split("\n## Ledger\n", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"```(python|sh)\n(.*?)```", section, flags=re.S))


def test_python_walkthrough(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(ledger_blocks()["python"], "README.md", "exec"), {})
    lines = printed.getvalue().splitlines()
    assert lines[0] == "48" and lines[1] == "30" and lines[-2:] == ["600", "True"]
    assert lines[2].startswith("not enough 'pipe-20mm' at 'shop': 40 wanted, 30 available")


def test_shell_walkthrough(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRUEUP_DATABASE_URL", raising=False)
    outputs = []
    for line in ledger_blocks()["sh"].splitlines():
        words = shlex.split(line, comments=True)
        if words[0] == "export":
            name, value = words[1].split("=", 1)
            monkeypatch.setenv(name, value)
            continue
        result = CliRunner().invoke(app, words[1:])
        assert result.exit_code == 0, (line, result.stdout, result.stderr)
        outputs.append(result.stdout.strip())
    assert outputs[3] == "50" and outputs[4] == "0"
