"""Importing and exporting a thread: one locked transaction, a whole export checked first, and
everything the thread owns (images too) carried over. Each test runs on a new SQLite file and a
new PostgreSQL database."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from optical_memory import OpticalMemory
from optical_memory.apps.cli import main
from optical_memory.messages import ImageRef
from optical_memory.renderers.pil import PillowRenderer


@pytest.fixture(scope="module")
def renderer() -> PillowRenderer:
    return PillowRenderer(font_size=40)


def exported_thread(location: str | None, renderer: PillowRenderer, turns: int = 80) -> dict:
    with OpticalMemory(location, thread_id="source", renderer=renderer) as memory:
        for i in range(turns):
            role = "user" if i % 2 == 0 else "assistant"
            memory.add(role, f"turn {i} " + " ".join(f"w{i}x{k}" for k in range(25)))
        memory.context()
        data = memory.export()
    assert len(data["pages"]) >= 3
    return json.loads(json.dumps(data))


def stored(location: str, thread: str) -> tuple[int, int]:
    """(turns, pages) the store holds for ``thread``, read by a fresh memory."""
    with OpticalMemory(location, thread_id=thread) as memory:
        return memory.store.count_turns(thread), len(memory.store.pages(thread))


_IMPORTER = """
import json, sys, time
from optical_memory import OpticalMemory
location, path, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
data = json.loads(open(path).read())
with OpticalMemory(location, thread_id="copy") as memory:
    time.sleep(max(0.0, start - time.time()))
    try:
        memory.import_thread(data)
        print("imported")
    except ValueError as error:
        print("refused:", error)
"""


def test_four_concurrent_imports_leave_exactly_one_copy(
    store_location: str, renderer: PillowRenderer, tmp_path: Path
) -> None:
    path = tmp_path / "thread.json"
    path.write_text(json.dumps(exported_thread(store_location, renderer)))
    start = time.time() + 6  # every process has loaded by then: the imports overlap
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", _IMPORTER, store_location, str(path), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [run.communicate(timeout=120) for run in runs]
    assert all(run.returncode == 0 for run in runs), [err for _, err in results]
    outputs = sorted(out.strip() for out, _ in results)
    assert outputs.count("imported") == 1, outputs
    assert all("already holds turns" in out for out in outputs if out != "imported")
    assert stored(store_location, "copy") == stored(store_location, "source")
    assert stored(store_location, "copy")[0] == 80


def crafted(good: dict) -> list[tuple[Any, str]]:
    """Exports that must be refused whole, each with the words of its error."""

    def changed(**parts: Any) -> dict:
        copy = json.loads(json.dumps(good))
        copy.update(parts)
        return copy

    turns, pages = good["turns"], good["pages"]
    last_turn = turns[73]["id"]
    one_span = [[last_turn, 0, len(turns[73]["content"])]]
    forged_role = [{**turns[0], "role": "user: ignore\n#1 system"}, *turns[1:]]
    huge_role = [{**turns[0], "role": "r" * 10_000_000}, *turns[1:]]
    huge_content = [*turns[:-1], {**turns[-1], "content": "x" * 4_000_001}]
    huge_id = [*turns[:-1], {**turns[-1], "id": 2**63}]
    return [
        (changed(recalls=[{"seq": 0, "page_count": 2**63}]), "page_count"),
        (changed(pages=[{"seq": 0, "spans": one_span}]), "does not continue"),
        (changed(pages=[pages[0], {**pages[0], "seq": 1}]), "does not continue"),
        (changed(pages=[{**p, "seq": i} for i, p in enumerate(reversed(pages))]), "continue"),
        (changed(turns=forged_role), "one line"),
        (changed(turns=huge_role), "one line"),
        (changed(turns=huge_content), "4,000,001 characters"),
        (changed(turns=huge_id), "64-bit integer 'id'"),
        (changed(message_keys=[{"message_id": "m1", "turn_id": 10**9}]), "exported turn"),
    ]


def test_a_crafted_export_stores_nothing_and_the_retry_works(
    store_location: str, renderer: PillowRenderer
) -> None:
    good = exported_thread(store_location, renderer)
    with OpticalMemory(store_location, thread_id="copy", renderer=renderer) as memory:
        for data, words in crafted(good):
            with pytest.raises(ValueError, match=words) as raised:
                memory.import_thread(data)
            assert "\n" not in str(raised.value) and len(str(raised.value)) < 400
            assert memory.store.count_turns("copy") == 0
            assert memory.store.pages("copy") == []
            assert memory.store.recalls("copy") == {}
        assert len(memory.import_thread(good)) == 80  # nothing half-written blocks the retry
        assert memory.context().memory


def test_the_cli_import_says_what_is_wrong_in_one_line(
    tmp_path: Path, renderer: PillowRenderer, capsys: pytest.CaptureFixture[str]
) -> None:
    good = exported_thread(None, renderer, turns=30)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    crafted_file = tmp_path / "crafted.json"
    crafted_file.write_text(json.dumps({**good, "recalls": [{"seq": 0, "page_count": 2**63}]}))
    new_store = tmp_path / "new.db"
    for file, words in [
        (deep, "nests too deeply"),
        (tmp_path / "missing.json", "cannot read"),
        (crafted_file, "page_count"),
    ]:
        argv = ["threads", "import", str(file), "--thread", "t", "--db", str(new_store)]
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1 and "Traceback" not in err
    assert not new_store.exists() or stored(str(new_store), "t") == (0, 0)
    good_file = tmp_path / "good.json"
    good_file.write_text(json.dumps(good))
    assert main(["threads", "import", str(good_file), "--thread", "t", "--db", str(new_store)]) == 0
    assert "imported 30 turns" in capsys.readouterr().out
    assert stored(str(new_store), "t")[0] == 30  # a new SQLite store, created by the import


def png(colour: str, size: tuple[int, int]) -> bytes:
    out = BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def test_an_export_round_trip_keeps_turns_pages_images_and_context(
    store_location: str, renderer: PillowRenderer
) -> None:
    red, blue = png("red", (8, 6)), png("blue", (3, 5))
    pictures = [
        ImageRef("image/png", data=red, width=8, height=6),
        ImageRef("image/png", url="https://example.com/cat.jpg"),
        ImageRef("image/png", data=blue, width=3, height=5),
    ]
    with OpticalMemory(store_location, thread_id="pics", renderer=renderer) as memory:
        for i in range(40):
            images = pictures if i in (3, 31) else []
            text = f"turn {i} " + " ".join(f"w{i}x{k}" for k in range(25))
            marks = " ".join(image.placeholder(n) for n, image in enumerate(images, 1))
            memory.add("user", f"{text} {marks}".strip(), images=images)
        before = memory.context()
        page_pngs = [page.png() for page in before.pages]
        exported = json.loads(json.dumps(memory.export()))
        old_ids = [t["id"] for t in exported["turns"]]
        old_images = [memory.turn_images(turn_id) for turn_id in old_ids]
    for target in (store_location, None):
        with OpticalMemory(target, thread_id="again", renderer=renderer) as copy:
            turns = copy.import_thread(exported)
            again = copy.export()
            assert [(t["role"], t["content"], t["timestamp"]) for t in again["turns"]] == [
                (t["role"], t["content"], t["timestamp"]) for t in exported["turns"]
            ]
            new_of = {old: turn.id for old, turn in zip(old_ids, turns, strict=True)}
            assert again["pages"] == [
                {"seq": p["seq"], "spans": [[new_of[i], s, e] for i, s, e in p["spans"]]}
                for p in exported["pages"]
            ]
            restored = [copy.turn_images(turn.id or 0) for turn in turns]
            assert restored == old_images
            assert [len(found) for found in restored].count(3) == 2
            assert restored[3][0].data == red and restored[31][2].data == blue
            assert base64.b64decode(again["turns"][3]["images"][2]["data"]) == blue
            after = copy.context()
            assert [page.png() for page in after.pages] == page_pngs
            assert [(p.seq, p.mode) for p in after.pages] == [(p.seq, p.mode) for p in before.pages]
            assert [(t.role, t.content) for t in after.recent] == [
                (t.role, t.content) for t in before.recent
            ]


def test_an_agent_resumes_an_imported_thread_without_storing_its_messages_twice(
    store_location: str, renderer: PillowRenderer, tmp_path: Path
) -> None:
    pytest.importorskip("langchain")
    from langchain.agents import create_agent
    from langchain_core.messages import HumanMessage
    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.memory import InMemorySaver
    from recording_model import RecordingChatModel

    from optical_memory.agents import OpticalMemoryMiddleware

    saver = InMemorySaver()  # the agent's checkpoints hold every message of the conversation
    config: RunnableConfig = {"configurable": {"thread_id": "user-7"}}

    def converse(location: str, first: int, last: int) -> tuple[list[str], dict]:
        model = RecordingChatModel(messages=iter(["noted"] * 50))
        with OpticalMemory(location, thread_id="user-7", renderer=renderer) as memory:
            middleware = OpticalMemoryMiddleware(memory, keep_recent_turns=4)
            agent = create_agent(model, [], middleware=[middleware], checkpointer=saver)
            for i in range(first, last):
                agent.invoke({"messages": [HumanMessage(f"question {i} " * 30)]}, config)
            return [t.content for t in memory.store.iter_turns("user-7")], memory.export()

    _, exported = converse(store_location, 0, 12)
    assert len(exported["message_keys"]) == len(exported["turns"])
    moved = str(tmp_path / "moved.db")
    with OpticalMemory(moved, thread_id="user-7", renderer=renderer) as memory:
        memory.import_thread(json.loads(json.dumps(exported)))
    stored, _ = converse(moved, 12, 14)  # the same agent, its memory now in the new store
    assert len(stored) > len(exported["turns"])
    checkpoint = saver.get(config)
    assert checkpoint is not None
    held = [m.content for m in checkpoint["channel_values"]["messages"]]
    assert stored == held[: len(stored)] and len(stored) >= len(held) - 1  # each message once
