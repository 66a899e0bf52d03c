"""`trygg qc evaluate`: a CSV series through the Westgard engine, table and --json, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from gateway.qc.series import SeriesError, parse_series

runner = CliRunner()
TARGETS = ["--target", "L=100,5", "--target", "H=200,10,lot-7"]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "series.csv"
    path.write_text(text, encoding="utf-8")
    return path


SERIES = """run,level,value,time
1,L,100,2026-12-01T08:00:00+01:00
1,H,200,2026-12-01T08:00:00+01:00
2,L,111,2026-12-02T08:00:00+01:00
2,H,221,2026-12-02T08:00:00+01:00
3,L,116,
3,H,195,
4,L,100,
4,H,200,
"""


def test_json_lists_each_run_with_its_violations(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["qc", "evaluate", str(write(tmp_path, SERIES)), *TARGETS, "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [r["verdict"] for r in data["runs"]] == ["accept", "reject", "reject", "accept"]
    assert data["runs"][1]["time"] == "2026-12-02T08:00:00+01:00"
    second = {
        (v["rule"], tuple(v["levels"]), tuple(v["runs"])) for v in data["runs"][1]["violations"]
    }
    assert second == {
        ("1-2s", ("L",), ("2",)),
        ("1-2s", ("H",), ("2",)),
        ("2-2s", ("H", "L"), ("2",)),
    }
    third = {(v["rule"], tuple(v["runs"]), v["error_type"]) for v in data["runs"][2]["violations"]}
    assert ("1-3s", ("3",), "random") in third
    assert ("2-2s", ("2", "3"), "systematic") in third
    assert data["summary"] == {"runs": 4, "rejected": 2, "warnings": 0}


def test_rules_option_limits_the_rules(tmp_path: Path) -> None:
    path = str(write(tmp_path, SERIES))
    result = runner.invoke(app, ["qc", "evaluate", path, *TARGETS, "--rules", "1-3s", "--json"])
    data = json.loads(result.stdout)
    assert data["rules"] == ["1-3s"]
    assert [r["verdict"] for r in data["runs"]] == ["accept", "accept", "reject", "accept"]


def test_table_shows_the_violations_and_a_summary(tmp_path: Path) -> None:
    result = runner.invoke(app, ["qc", "evaluate", str(write(tmp_path, SERIES)), *TARGETS])
    assert result.exit_code == 0, result.output
    assert "1-3s" in result.stdout and "2, 3" in result.stdout
    assert "4 runs: 2 rejected, 0 with a warning only" in result.stdout


@pytest.mark.parametrize(
    ("args", "text", "message"),
    [
        (["--rules", "1-3s,1-4s"], SERIES, "unknown Westgard rule '1-4s'"),
        (["--target", "L=100"], SERIES, "--target 'L=100' is not LEVEL=MEAN,SD"),
        (["--target", "L=100,0"], SERIES, "--target 'L=100,0' is not"),
        ([], "run,level,value\n1,L,100\n1,X,3\n", "line 3: level 'X' has no --target"),
        ([], "run,level,value\n1,L,abc\n", "line 2, column value: 'abc' is not a number"),
        ([], "run,level\n1,L\n", "line 1, column value: this column is missing"),
        ([], "run,level,value\n1,L,100\n1,L,101\n", "line 3, column level: this run already"),
        ([], "run,level,value,time\n1,L,1,2026-12-01T08:00\n", "line 2, column time: "),
    ],
)
def test_errors_name_the_problem(tmp_path: Path, args: list[str], text: str, message: str) -> None:
    result = runner.invoke(app, ["qc", "evaluate", str(write(tmp_path, text)), *TARGETS, *args])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_parse_series_accepts_blank_lines_and_a_bom_free_header() -> None:
    rows = parse_series('Run,Level,Value\n\n1,L,100.5\n2,L,"99,5"\n')
    assert [(r.line, r.run, r.value) for r in rows] == [(3, "1", 100.5), (4, "2", 99.5)]
    with pytest.raises(SeriesError) as info:
        parse_series("run,level,value,colour\n")
    assert (info.value.line, info.value.column) == (1, "colour")
