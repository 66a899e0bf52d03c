"""README's "Running it for real", QC, EQA, export and deviation sections list commands that
exist, with options they take."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from gateway.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"


def section_commands() -> list[list[str]]:
    text = README.read_text(encoding="utf-8")
    sections = [
        text.split(heading, 1)[1].split("\n## ", 1)[0]
        for heading in (
            "## Running it for real",
            "## Quality control",
            "## EQA (EKV) and split samples",
            "## QC and EQA exports (Noklus)",
            "## The deviation register (avvik)",
        )
    ]
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", "\n".join(sections), re.S):
        for line in block.splitlines():
            if line.startswith("trygg "):
                words = shlex.split(line.split("  #", 1)[0].replace(" > ", " "))
                commands.append([w for w in words[1:] if not w.endswith(".csv")])
    return commands


def test_every_listed_command_exists_with_its_options() -> None:
    root: Any = typer.main.get_command(app)  # a group: its subcommands in ``commands``
    checked = 0
    for words in section_commands():
        command = root
        path: list[str] = []
        while hasattr(command, "commands"):
            assert words, path
            name = words.pop(0)
            assert name in command.commands, f"trygg {' '.join([*path, name])} does not exist"
            command, path = command.commands[name], [*path, name]
        names = {opt for param in command.params for opt in getattr(param, "opts", [])}
        for word in words:
            if word.startswith("--"):
                assert word in names, f"trygg {' '.join(path)} has no option {word}"
        result = CliRunner().invoke(app, [*path, "--help"])
        assert result.exit_code == 0
        checked += 1
    assert checked >= 20
