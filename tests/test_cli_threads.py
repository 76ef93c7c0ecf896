"""``optical-memory threads list|export|import|delete`` on an SQLite file and on PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from optical_memory import OpticalMemory
from optical_memory.apps.cli import main
from optical_memory.renderers.pil import PillowRenderer


def test_threads_list_export_import_delete(
    store_location: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    renderer = PillowRenderer(font_size=40)
    with (
        OpticalMemory(store_location, thread_id="alice", renderer=renderer) as alice,
        OpticalMemory(store_location, thread_id="bob", renderer=renderer) as bob,
    ):
        for i in range(30):
            alice.add("user", f"alice says {i} " + "word " * 20)
        bob.add("user", "bob says hi")
        alice_pages = [alice.recall(p.page_id) for p in alice.context().memory]
    db = ["--db", store_location]

    assert main(["threads", "list", *db]) == 0
    assert capsys.readouterr().out == "alice\t30 turns\nbob\t1 turns\n"

    exported = tmp_path / "alice.json"
    assert main(["threads", "export", "alice", "--out", str(exported), *db]) == 0
    assert json.loads(exported.read_text())["turns"][0]["content"].startswith("alice says 0")

    assert main(["threads", "delete", "alice", *db]) == 1  # no --yes: refused
    assert "cannot be undone: add --yes" in capsys.readouterr().err
    assert main(["threads", "delete", "alice", "--yes", "--vacuum-full", *db]) == 0
    out = capsys.readouterr().out
    assert "deleted thread 'alice' (30 turns)" in out
    assert ("VACUUM FULL" in out) == store_location.startswith("postgresql://")
    assert main(["threads", "export", "alice", *db]) == 1
    assert "no thread 'alice'" in capsys.readouterr().err

    assert main(["threads", "import", str(exported), "--thread", "alice-2", *db]) == 0
    with OpticalMemory(store_location, thread_id="alice-2", renderer=renderer) as restored:
        assert [restored.recall(p.page_id) for p in restored.context().memory] == alice_pages
    assert main(["threads", "import", str(exported), "--thread", "bob", *db]) == 1
    assert "already holds turns" in capsys.readouterr().err


def test_threads_commands_name_a_missing_store(tmp_path: Path, capsys) -> None:
    assert main(["threads", "list", "--db", str(tmp_path / "none.db")]) == 1
    assert "no memory store at" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()
