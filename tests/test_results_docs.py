"""Measured figures in the docs come from results files: each block between
``<!-- results:NAME -->`` markers is the text of ``docs/results/NAME.md``, which a benchmark
wrote with its ``--results`` option (``python benchmarks/results.py`` refreshes the blocks)."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import pytest

from optical_memory.experiments.results_file import publish, write_results

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"<!-- results:(\S+) -->\n(.*?)<!-- /results:\1 -->", re.S)


def blocks() -> list[tuple[Path, str, str]]:
    return [
        (page, name, body)
        for page in PAGES
        for name, body in MARKER.findall(page.read_text(encoding="utf-8"))
    ]


def test_the_readme_quotes_measured_tables_from_results_files() -> None:
    assert any(page.name == "README.md" for page, _, _ in blocks())


@pytest.mark.parametrize(("page", "name", "body"), blocks(), ids=lambda v: getattr(v, "name", v))
def test_every_quoted_table_is_its_results_file_as_written(
    page: Path, name: str, body: str
) -> None:
    results = ROOT / "docs" / "results" / f"{name}.md"
    assert results.exists(), f"{page.name} quotes {name}, which no results file holds"
    assert body == results.read_text(encoding="utf-8"), (
        f"{page.name}'s {name} table is out of date: run python benchmarks/results.py"
    )
    first = body.splitlines()[0]
    assert re.fullmatch(r"_Measured \d{4}-\d\d-\d\d on .+ cores, Python 3\.\d+.* by `.+`\._", first)


def test_a_results_file_says_when_where_and_how_and_names_data_files_only(tmp_path: Path) -> None:
    data = tmp_path / "private" / "locomo10.json"
    data.parent.mkdir()
    data.write_text("[]")
    path = write_results(
        tmp_path / "out.md", "| a |\n|---|\n| 1 |\n", ["benchmarks/x.py", "--data", str(data)]
    )
    first, blank, *table = path.read_text().splitlines()
    assert first.startswith(f"_Measured {datetime.date.today().isoformat()} on ")
    assert first.endswith("by `python benchmarks/x.py --data locomo10.json`._")
    assert "private" not in first and blank == "" and table == ["| a |", "|---|", "| 1 |"]


def test_a_path_inside_the_working_folder_is_named_as_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "old.md").write_text("before")  # a results file written again
    path = write_results("docs/old.md", "| a |", ["benchmarks/x.py", "--results", "docs/old.md"])
    assert (
        path.read_text()
        .splitlines()[0]
        .endswith("`python benchmarks/x.py --results docs/old.md`._")
    )


def test_a_benchmark_publishes_its_report_and_the_command_that_made_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = ["| a | b |", "|---|---|", "| 1 | 2 |"]
    publish(lines, None, "benchmarks/x.py", ["--quick"])  # printed only
    assert capsys.readouterr().out.splitlines() == lines
    assert list(tmp_path.iterdir()) == []
    path = tmp_path / "x.md"
    publish(lines, path, "benchmarks/x.py", ["--quick"])
    header, blank, *body = path.read_text(encoding="utf-8").splitlines()
    assert header.endswith("by `python benchmarks/x.py --quick`._")
    assert (blank, body) == ("", lines)
