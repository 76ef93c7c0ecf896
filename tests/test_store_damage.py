"""Damaged and unusable SQLite stores: clear errors naming the cause, nothing more written.

Real files throughout: bytes flipped on disk, a file owned by another user, a database capped so
SQLite reports it full, a cache folder that cannot be created.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from optical_memory import OpticalMemory
from optical_memory.renderers.pil import PillowRenderer
from optical_memory.store import SQLiteStore, StoreDamagedError, StoreError

NOBODY = 65534


def filled_store(path: Path, turns: int = 400) -> None:
    with SQLiteStore(path) as store:
        for i in range(turns):
            store.add_turn("t", "user", f"turn {i} " + "words " * 40, None, 50)


def flip(path: Path, offset: int, length: int = 4096) -> None:
    data = bytearray(path.read_bytes())
    data[offset : offset + length] = bytes(b ^ 0xFF for b in data[offset : offset + length])
    path.write_bytes(bytes(data))


def test_a_damaged_file_is_refused_at_open_with_the_recovery_command(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    filled_store(path)
    # One page of turns in the middle of the thread (the file also holds the search index).
    flip(path, path.read_bytes().index(b"turn 200 words") // 4096 * 4096)
    damaged = path.read_bytes()
    with pytest.raises(StoreDamagedError, match=r"is damaged.*\.recover") as raised:
        OpticalMemory(path)
    assert path.read_bytes() == damaged  # nothing written on the way out
    # The advice works: one of the commands it names (run as given, in tmp_path) salvages the
    # readable turns into a store that opens.
    commands = re.findall(r"`([^`]+)`", str(raised.value))
    assert commands and ".recover" in commands[0]
    for command in commands:
        (tmp_path / "recovered.db").unlink(missing_ok=True)
        subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True)
        if not (tmp_path / "recovered.db").exists():
            continue
        with sqlite3.connect(tmp_path / "recovered.db") as raw:
            if not raw.execute("SELECT 1 FROM sqlite_master WHERE name = 'turns'").fetchall():
                continue
        with OpticalMemory(tmp_path / "recovered.db", thread_id="t") as memory:
            assert 300 < memory.store.count_turns("t") < 400
            memory.add("user", "still works")
            assert memory.search("still works")[0].turn.content == "still works"
        break
    else:
        pytest.fail(f"none of the recovery commands worked: {commands}")


def test_damage_found_later_stops_every_write(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    filled_store(path)
    reader = SQLiteStore(path)
    writer = SQLiteStore(path)
    flip(path, 8 * 4096, 16 * 4096)  # turns written long ago, behind the reader's back
    writer.add_turn("t", "user", "a newer turn", None, 3)  # invalidates the reader's page cache
    with pytest.raises(StoreDamagedError, match=r"sqlite3 .*m\.db \.recover"):
        list(reader.iter_turns("t"))
    with pytest.raises(StoreDamagedError, match="stopped writing"):
        reader.add_turn("t", "user", "must not be written", None, 3)
    reader.close()
    writer.close()
    assert b"must not be written" not in path.read_bytes()


def test_a_memory_on_a_damaged_store_raises_store_errors_only(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    renderer = PillowRenderer(font_size=40)
    with OpticalMemory(path, renderer=renderer, keep_recent_turns=2) as memory:
        for i in range(60):
            memory.add("user", f"turn {i} " + "words " * 30)
        memory.context()
    memory = OpticalMemory(path, renderer=renderer, keep_recent_turns=2)
    other = SQLiteStore(path)
    flip(path, 4096, path.stat().st_size - 8192)  # everything but the header and last page
    other.add_turn("default", "user", "newer", None, 1)
    for call in (memory.context, lambda: memory.add("user", "more"), memory.stats):
        with pytest.raises(StoreError, match="damaged"):
            call()
    memory.close()
    other.close()


def _as_nobody(action) -> str:
    """Run ``action`` in a child process with the rights of an unprivileged user (root may
    write anywhere); returns what it raised, as text."""
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.close(read)
        message = "no error"
        try:
            if os.geteuid() == 0:
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            action()
        except BaseException as error:
            message = f"{type(error).__name__}: {error}"
        os.write(write, message.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        message = pipe.read().decode()
    os.waitpid(child, 0)
    return message


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A folder every user may enter (pytest's own temp folders are private to their owner)."""
    folder = Path(tempfile.mkdtemp(prefix="optical-memory-ro-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def test_a_read_only_store_is_refused_naming_the_cause(open_folder: Path) -> None:
    path = open_folder / "m.db"
    filled_store(path, 3)
    before = path.read_bytes()
    path.chmod(0o644 if os.geteuid() == 0 else 0o444)  # root's file: read-only for nobody
    message = _as_nobody(lambda: OpticalMemory(path).add("user", "hi"))
    assert message.startswith("StoreError") and "read-only" in message and "chmod" in message
    assert path.read_bytes() == before
    # A writable file in a folder this user cannot write to (SQLite's WAL goes beside it).
    path.chmod(0o666)
    message = _as_nobody(lambda: OpticalMemory(path).add("user", "hi"))
    assert message.startswith("StoreError") and "folder" in message and "not writable" in message
    assert path.read_bytes() == before


def test_a_full_disk_names_the_disk_and_keeps_what_was_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    store = SQLiteStore(path)
    kept = store.add_turn("t", "user", "acknowledged", None, 1)
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")  # SQLite now reports SQLITE_FULL
    with pytest.raises(StoreError, match=r"disk holding .* is full"):
        for i in range(200):
            store.add_turn("t", "user", f"filler {i} " * 200, None, 1)
    assert store.get_turns("t", [kept.id or 0])[0].content == "acknowledged"
    store.close()


def test_a_render_cache_that_cannot_be_written_is_only_a_miss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with OpticalMemory(tmp_path / "m.db", keep_recent_turns=2) as memory:
        for i in range(40):
            memory.add("user", f"turn {i} " + " ".join(f"word{i}x{k}" for k in range(120)))
        store = memory.store
        assert isinstance(store, SQLiteStore)
        store._db.execute("VACUUM")  # no free pages left for a render to fill
        pages = store._db.execute("PRAGMA page_count").fetchone()[0]
        store._db.execute(f"PRAGMA max_page_count = {pages}")
        with caplog.at_level("WARNING", logger="optical_memory"):
            context = memory.context()
            again = memory.context()
        assert context.pages and all(page.image.size[0] > 0 for page in context.pages)
        assert store.count_images() == 0
        assert memory.renders == 2 * len(context.pages)  # drawn again: nothing was cached
        assert [p.png() for p in again.pages] == [p.png() for p in context.pages]
        assert "render not cached" in caplog.text and "is full" in caplog.text


def test_an_unwritable_cache_folder_names_optical_memory_cache(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = {**os.environ, "OPTICAL_MEMORY_CACHE": str(blocker / "cache")}
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "from optical_memory import OpticalMemory\nOpticalMemory().add('user', 'hello')",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert "EncodingFileError" in last and "$OPTICAL_MEMORY_CACHE" in last
    assert str(blocker / "cache") in last


def test_sqlite_errors_never_escape_raw(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    filled_store(path, 50)
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA journal_mode = DELETE")
    flip(path, 0, 100)  # the header itself
    with pytest.raises(StoreError, match="cannot open"):
        SQLiteStore(path)
